import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  ConsentPartSchema,
  ConsentRegistrySchema,
  type ConsentEntry,
  type ConsentPart,
  type ConsentRegistry,
} from '../../schemas/consent';
import { DatasetRecordSchema, StudyRecordSchema, type DatasetRecord, type StudyRecord } from '../../schemas/dataset';
import { RunDocumentSchema, type RunDocument } from '../../schemas/preprocess';
import { SourceRegistrySchema, type SourceRegistry } from '../../schemas/source';
import { runDocumentKey } from '../../contracts';
import { newerConsent } from '../consent/rules';
import { inLanes } from '../runtime/lanes';
import { getObjectOrUndefined, listObjects } from './objects';

/** Where a jurisdiction's catalog bucket keeps each kind of record. */
export function datasetRecordKey(datasetId: string): string {
  return `datasets/${datasetId}.json`;
}

/** The registry as one object, as Steward wrote it before registries were made of parts; still read. */
export function legacyConsentRegistryKey(studyId: string): string {
  return `consent/${studyId}/registry.json`;
}

export function studyRecordKey(studyId: string): string {
  return `studies/${studyId}.json`;
}

/** A study's registered source systems (see `steward sources`). */
export function sourceRegistryKey(studyId: string): string {
  return `sources/${studyId}.json`;
}

/** A study's registered sources, or undefined when it registered none. */
export async function readSourceRegistry(
  s3: S3Client,
  bucket: string,
  studyId: string,
): Promise<SourceRegistry | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, sourceRegistryKey(studyId));
  return raw ? SourceRegistrySchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
}

/** Written only by the study's source-registry writer. */
export async function writeSourceRegistry(s3: S3Client, bucket: string, registry: SourceRegistry): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: sourceRegistryKey(registry.studyId),
      Body: JSON.stringify(registry, null, 2),
      ContentType: 'application/json',
    }),
  );
}

/** A study's record (its recorded end of trial); a blank one when none was written. */
export async function readStudyRecord(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  studyId: string,
): Promise<StudyRecord> {
  const raw = await getObjectOrUndefined(s3, bucket, studyRecordKey(studyId));
  return raw
    ? StudyRecordSchema.parse(JSON.parse(raw.toString('utf8')))
    : { format: 'steward-study/1', studyId, jurisdiction, trialEnd: null, holds: [] };
}

/** Written only by the jurisdiction's catalog writer. */
export async function writeStudyRecord(s3: S3Client, bucket: string, record: StudyRecord): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: studyRecordKey(record.studyId),
      Body: JSON.stringify(record, null, 2),
      ContentType: 'application/json',
    }),
  );
}

export function consentPartsPrefix(studyId: string): string {
  return `consent/${studyId}/parts/`;
}

export async function readDatasetRecord(
  s3: S3Client,
  bucket: string,
  datasetId: string,
): Promise<DatasetRecord | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, datasetRecordKey(datasetId));
  return raw ? DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
}

/**
 * Writes a dataset record. Only a record's single writer calls this: the ingestion workflow of its package creates
 * it, and later changes go through the catalog writer workflow of the jurisdiction.
 */
export async function writeDatasetRecord(s3: S3Client, bucket: string, record: DatasetRecord): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: datasetRecordKey(record.datasetId),
      Body: JSON.stringify(record, null, 2),
      ContentType: 'application/json',
    }),
  );
}

/** A preprocessing job's run documentation, as the job wrote it in the curated bucket; undefined when there is none. */
export async function readRunDocument(s3: S3Client, bucket: string, jobId: string): Promise<RunDocument | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, runDocumentKey(jobId));
  return raw ? RunDocumentSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
}

export async function listDatasetRecords(s3: S3Client, bucket: string): Promise<DatasetRecord[]> {
  const keys = (await listObjects(s3, bucket, 'datasets/')).filter((o) => o.key.endsWith('.json')).map((o) => o.key);
  const records = new Array<DatasetRecord | undefined>(keys.length);
  await inLanes([...keys.keys()], 8, async (i) => {
    const raw = await getObjectOrUndefined(s3, bucket, keys[i]!);
    records[i] = raw ? DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
  });
  return records.filter((r): r is DatasetRecord => r !== undefined);
}

/** Writes one registry part under its own key; the same part written again holds the same entries. */
export async function writeConsentPart(s3: S3Client, bucket: string, part: ConsentPart): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `${consentPartsPrefix(part.studyId)}${part.partId}.json`,
      Body: JSON.stringify(ConsentPartSchema.parse(part)),
      ContentType: 'application/json',
    }),
  );
}

/** Merges consent records: per subject token the later decision wins (see `newerConsent`). Order does not matter. */
export function mergeConsentEntries(into: Map<string, ConsentEntry>, entries: Iterable<ConsentEntry>): void {
  for (const entry of entries) {
    const before = into.get(entry.token);
    into.set(entry.token, before ? newerConsent(before, entry) : entry);
  }
}

/**
 * A study's consent registry: the merge of every part (and of the older single-object registry, where one exists).
 * Empty, dated `now`, when nothing was imported yet.
 */
export async function readConsentRegistry(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  studyId: string,
  now: string,
): Promise<ConsentRegistry> {
  const merged = new Map<string, ConsentEntry>();
  let updatedAt = '';
  const legacy = await getObjectOrUndefined(s3, bucket, legacyConsentRegistryKey(studyId));
  if (legacy) {
    const registry = ConsentRegistrySchema.parse(JSON.parse(legacy.toString('utf8')));
    mergeConsentEntries(merged, registry.entries);
    updatedAt = registry.updatedAt;
  }
  const keys = (await listObjects(s3, bucket, consentPartsPrefix(studyId))).map((o) => o.key);
  const parts = new Array<ConsentPart | undefined>(keys.length);
  await inLanes([...keys.keys()], 8, async (i) => {
    const raw = await getObjectOrUndefined(s3, bucket, keys[i]!);
    parts[i] = raw ? ConsentPartSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
  });
  for (const part of parts) {
    if (!part) continue;
    mergeConsentEntries(merged, part.entries);
    if (part.createdAt > updatedAt) updatedAt = part.createdAt;
  }
  const entries = [...merged.values()].sort((a, b) => a.token.localeCompare(b.token));
  return { format: 'steward-consent/1', jurisdiction, studyId, updatedAt: updatedAt || now, entries };
}
