import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
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
import { Sha256HexSchema } from '../../schemas/common';
import { newerConsent } from '../consent/rules';
import { inLanes } from '../runtime/lanes';
import { getJson, putJson } from './json';
import {
  consentPartKey,
  consentPartsPrefix,
  DATASETS_PREFIX,
  datasetRecordKey,
  legacyConsentRegistryKey,
  requestClaimKey,
  runDocumentKey,
  sourceRegistryKey,
  studyRecordKey,
} from './layout';
import { listObjects } from './objects';

export { consentPartsPrefix, datasetRecordKey, legacyConsentRegistryKey, sourceRegistryKey, studyRecordKey };

/** A study's registered sources, or undefined when it registered none. */
export async function readSourceRegistry(
  s3: S3Client,
  bucket: string,
  studyId: string,
): Promise<SourceRegistry | undefined> {
  return getJson(s3, bucket, sourceRegistryKey(studyId), SourceRegistrySchema);
}

/** Written only by the study's source-registry writer. */
export async function writeSourceRegistry(s3: S3Client, bucket: string, registry: SourceRegistry): Promise<void> {
  await putJson(s3, bucket, sourceRegistryKey(registry.studyId), SourceRegistrySchema, registry, { pretty: true });
}

/** A study's record (its recorded end of trial); a blank one when none was written. */
export async function readStudyRecord(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  studyId: string,
): Promise<StudyRecord> {
  return (
    (await getJson(s3, bucket, studyRecordKey(studyId), StudyRecordSchema)) ?? {
      format: 'steward-study/1',
      studyId,
      jurisdiction,
      trialEnd: null,
      holds: [],
    }
  );
}

/** Written only by the jurisdiction's catalog writer. */
export async function writeStudyRecord(s3: S3Client, bucket: string, record: StudyRecord): Promise<void> {
  await putJson(s3, bucket, studyRecordKey(record.studyId), StudyRecordSchema, record, { pretty: true });
}

export async function readDatasetRecord(
  s3: S3Client,
  bucket: string,
  datasetId: string,
): Promise<DatasetRecord | undefined> {
  return getJson(s3, bucket, datasetRecordKey(datasetId), DatasetRecordSchema);
}

/**
 * Writes a dataset record. Only a record's single writer calls this: the ingestion workflow of its package creates
 * it, and later changes go through the catalog writer workflow of the jurisdiction.
 */
export async function writeDatasetRecord(s3: S3Client, bucket: string, record: DatasetRecord): Promise<void> {
  await putJson(s3, bucket, datasetRecordKey(record.datasetId), DatasetRecordSchema, record, { pretty: true });
}

/** A preprocessing job's run documentation, as the job wrote it in the curated bucket; undefined when there is none. */
export async function readRunDocument(s3: S3Client, bucket: string, jobId: string): Promise<RunDocument | undefined> {
  return getJson(s3, bucket, runDocumentKey(jobId), RunDocumentSchema);
}

export async function listDatasetRecords(s3: S3Client, bucket: string): Promise<DatasetRecord[]> {
  const keys = (await listObjects(s3, bucket, DATASETS_PREFIX))
    .filter((o) => o.key.endsWith('.json'))
    .map((o) => o.key);
  const records = new Array<DatasetRecord | undefined>(keys.length);
  await inLanes([...keys.keys()], 8, async (i) => {
    records[i] = await getJson(s3, bucket, keys[i]!, DatasetRecordSchema);
  });
  return records.filter((r): r is DatasetRecord => r !== undefined);
}

/** Writes one registry part under its own key; the same part written again holds the same entries. */
export async function writeConsentPart(s3: S3Client, bucket: string, part: ConsentPart): Promise<void> {
  await putJson(s3, bucket, consentPartKey(part.studyId, part.partId), ConsentPartSchema, part);
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
  const registry = await getJson(s3, bucket, legacyConsentRegistryKey(studyId), ConsentRegistrySchema);
  if (registry) {
    mergeConsentEntries(merged, registry.entries);
    updatedAt = registry.updatedAt;
  }
  const keys = (await listObjects(s3, bucket, consentPartsPrefix(studyId))).map((o) => o.key);
  const parts = new Array<ConsentPart | undefined>(keys.length);
  await inLanes([...keys.keys()], 8, async (i) => {
    parts[i] = await getJson(s3, bucket, keys[i]!, ConsentPartSchema);
  });
  for (const part of parts) {
    if (!part) continue;
    mergeConsentEntries(merged, part.entries);
    if (part.createdAt > updatedAt) updatedAt = part.createdAt;
  }
  const entries = [...merged.values()].sort((a, b) => a.token.localeCompare(b.token));
  return { format: 'steward-consent/1', jurisdiction, studyId, updatedAt: updatedAt || now, entries };
}

/** Which workflow run used a signed request: a request is used by one run only. */
export const RequestClaimSchema = z.object({
  kind: z.literal('request.claimed'),
  requestId: z.string(),
  workflowId: z.string(),
  runId: z.string().optional(),
  bodySha256: Sha256HexSchema,
  claimedAt: z.string(),
});
export type RequestClaim = z.infer<typeof RequestClaimSchema>;

export function readRequestClaim(s3: S3Client, bucket: string, requestId: string): Promise<RequestClaim | undefined> {
  return getJson(s3, bucket, requestClaimKey(requestId), RequestClaimSchema);
}

export async function writeRequestClaim(s3: S3Client, bucket: string, claim: RequestClaim): Promise<void> {
  await putJson(s3, bucket, requestClaimKey(claim.requestId), RequestClaimSchema, claim);
}
