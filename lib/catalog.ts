import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConsentRegistrySchema, type ConsentRegistry } from '../schemas/consent';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import { getObjectOrUndefined, listObjects } from './objects';

/** Where a jurisdiction's catalog bucket keeps each kind of record. */
export function datasetRecordKey(datasetId: string): string {
  return `datasets/${datasetId}.json`;
}

export function consentRegistryKey(studyId: string): string {
  return `consent/${studyId}/registry.json`;
}

export async function readDatasetRecord(
  s3: S3Client,
  bucket: string,
  datasetId: string,
): Promise<DatasetRecord | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, datasetRecordKey(datasetId));
  return raw ? DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
}

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

export async function listDatasetRecords(s3: S3Client, bucket: string): Promise<DatasetRecord[]> {
  const records: DatasetRecord[] = [];
  for (const object of await listObjects(s3, bucket, 'datasets/')) {
    if (!object.key.endsWith('.json')) continue;
    const raw = await getObjectOrUndefined(s3, bucket, object.key);
    if (raw) records.push(DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8'))));
  }
  return records;
}

/** A study's consent registry; an empty one (dated `now`) when none was imported yet. */
export async function readConsentRegistry(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  studyId: string,
  now: string,
): Promise<ConsentRegistry> {
  const raw = await getObjectOrUndefined(s3, bucket, consentRegistryKey(studyId));
  return raw
    ? ConsentRegistrySchema.parse(JSON.parse(raw.toString('utf8')))
    : { format: 'steward-consent/1', jurisdiction, studyId, updatedAt: now, entries: [] };
}

export async function writeConsentRegistry(s3: S3Client, bucket: string, registry: ConsentRegistry): Promise<void> {
  registry.entries.sort((a, b) => a.token.localeCompare(b.token));
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: consentRegistryKey(registry.studyId),
      Body: JSON.stringify(registry),
      ContentType: 'application/json',
    }),
  );
}
