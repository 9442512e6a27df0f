import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isNotFound } from './s3';
import { z } from 'zod';
import { activeHolds, DatasetRecordSchema, type DatasetRecord, type StudyRecord } from '../../schemas/dataset';
import { RetentionScanSchema, type ClaimedDataset, type RetentionScan } from '../../schemas/retention';
import { readStudyRecord } from './catalog';
import { getJson, putJson } from './json';
import {
  CLAIMS_PREFIX,
  claimsKey,
  DATASETS_PREFIX,
  datasetIdOfRecordKey,
  datasetRecordKey,
  sweepClaimsPrefix,
} from './layout';
import { listObjects } from './objects';
import { deleteVersions, listVersions } from './versions';
import { inLanes } from '../runtime/lanes';
import { datasetFacts, decideRetention, explainDecision } from '../retention/precedence';

export { CLAIMS_PREFIX };

/** A claim older than this belongs to a sweep that stopped without finishing; another sweep may take its datasets. */
export const STALE_CLAIM_MS = 24 * 60 * 60 * 1000;

const ClaimsFileSchema = z.object({
  format: z.literal('steward-retention-claims/1'),
  sweepId: z.string(),
  batch: z.number().int(),
  asOf: z.string(),
  claimedAt: z.string(),
  scan: RetentionScanSchema,
});
export type ClaimsFile = z.infer<typeof ClaimsFileSchema>;

export function readClaims(s3: S3Client, bucket: string, key: string): Promise<ClaimsFile | undefined> {
  return getJson(s3, bucket, key, ClaimsFileSchema);
}

/**
 * The datasets claimed for deletion by sweeps still at work (claims not yet released and not stale), by dataset. A
 * sweep asking about others leaves out its own claim files (`except`): otherwise each of its pages would read every
 * page it claimed before, and a sweep of many pages would read its claims quadratically often.
 */
export async function claimedDatasets(
  s3: S3Client,
  bucket: string,
  now: Date,
  except?: string,
): Promise<Map<string, string>> {
  const claimed = new Map<string, string>();
  const own = except === undefined ? undefined : sweepClaimsPrefix(except);
  const files = (await listObjects(s3, bucket, CLAIMS_PREFIX)).filter((f) => !own || !f.key.startsWith(own));
  await inLanes(files, 8, async (file) => {
    const claims = await readClaims(s3, bucket, file.key);
    if (!claims || now.getTime() - Date.parse(claims.claimedAt) > STALE_CLAIM_MS) return;
    for (const d of claims.scan.expired) claimed.set(d.datasetId, claims.sweepId);
  });
  return claimed;
}

export interface ReadRecord {
  key: string;
  record: DatasetRecord;
  version: { versionId: string | null; sha256: string; bytes: number };
}

/** Reads records by key, 32 at a time, each with the version read and its digest; keys with no record are left out. */
export async function readDatasetRecords(s3: S3Client, bucket: string, keys: string[]): Promise<ReadRecord[]> {
  const records = new Array<ReadRecord | undefined>(keys.length);
  await inLanes([...keys.keys()], 32, async (i) => {
    try {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: keys[i]! }));
      const raw = Buffer.from(await res.Body!.transformToByteArray());
      records[i] = {
        key: keys[i]!,
        record: DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8'))),
        version: {
          versionId: res.VersionId && res.VersionId !== 'null' ? res.VersionId : null,
          sha256: createHash('sha256').update(raw).digest('hex'),
          bytes: raw.length,
        },
      };
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  });
  return records.filter((r): r is ReadRecord => r !== undefined);
}

/** A study record per study, read once each. */
export class StudyRecords {
  private readonly cache = new Map<string, Promise<StudyRecord>>();
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly jurisdiction: string,
  ) {}
  get(studyId: string): Promise<StudyRecord> {
    let found = this.cache.get(studyId);
    if (!found) {
      found = readStudyRecord(this.s3, this.bucket, this.jurisdiction, studyId);
      this.cache.set(studyId, found);
    }
    return found;
  }
}

function holdReason(record: DatasetRecord, study: StudyRecord): string {
  const holds = [
    ...activeHolds(record).map((h) => `${h.holdId} on the dataset (${h.reason})`),
    ...activeHolds(study).map((h) => `${h.holdId} on study ${study.studyId} (${h.reason})`),
  ];
  return `kept: legal hold ${holds.join('; ')}`;
}

/**
 * One page of the catalog's dataset records after `after`, each decided by the precedence engine at `asOf`: expired
 * (to delete), held (kept, with why), or kept while its retention runs.
 */
export async function scanDatasets(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  options: { asOf: string; after: string | null; limit: number; studies?: StudyRecords },
): Promise<RetentionScan> {
  const page = await s3.send(
    new ListObjectsV2Command({
      Bucket: bucket,
      Prefix: DATASETS_PREFIX,
      MaxKeys: options.limit,
      ...(options.after ? { StartAfter: datasetRecordKey(options.after) } : {}),
    }),
  );
  const keys = (page.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith('.json'));
  const records = await readDatasetRecords(s3, bucket, keys);
  const studies = options.studies ?? new StudyRecords(s3, bucket, jurisdiction);
  const scan: RetentionScan = { next: null, scanned: records.length, kept: 0, expired: [], held: [] };
  for (const { record } of records) {
    const study = await studies.get(record.studyId);
    const facts = datasetFacts(record, study, options.asOf);
    const decision = decideRetention(facts);
    const reason = decision.reason === 'legal-hold' ? holdReason(record, study) : explainDecision(decision, facts);
    if (decision.action === 'delete') {
      scan.expired.push({
        datasetId: record.datasetId,
        studyId: record.studyId,
        packageId: record.packageId,
        dataClass: record.dataClass,
        retention: record.retention,
        reason,
      });
    } else if (decision.reason === 'legal-hold' && facts.expiresAt !== null && facts.expiresAt <= facts.asOf) {
      // Held data whose retention has ended: what a sweep would have deleted, so it says why it did not.
      scan.held.push({
        datasetId: record.datasetId,
        dataClass: record.dataClass,
        legalBasis: record.retention.legalBasis,
        until: record.retention.until,
        reason,
      });
    } else scan.kept += 1;
  }
  const lastKey = keys[keys.length - 1];
  scan.next = page.IsTruncated && lastKey ? (datasetIdOfRecordKey(lastKey) ?? null) : null;
  return scan;
}

/**
 * Claims for sweep `sweepId` the expired datasets of the next page of the catalog, under the catalog's single writer:
 * the decision is made against the records as they are when claimed, so a hold or a later end of trial recorded
 * before the claim is seen, and none can be recorded after it (the writer refuses holds on claimed datasets).
 * Datasets another running sweep claimed are left to it. Retry-safe: a batch claimed before is returned as it was.
 */
export async function claimExpiredDatasets(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  claim: { sweepId: string; batch: number; asOf: string; now: string; after: string | null; limit: number },
): Promise<RetentionScan> {
  const key = claimsKey(claim.sweepId, claim.batch);
  const earlier = await readClaims(s3, bucket, key);
  if (earlier) return earlier.scan;
  const scan = await scanDatasets(s3, bucket, jurisdiction, claim);
  const others = await claimedDatasets(s3, bucket, new Date(claim.now), claim.sweepId);
  const taken = scan.expired.filter((d) => others.has(d.datasetId));
  const mine = scan.expired.filter((d) => !taken.includes(d));
  const result: RetentionScan = { ...scan, expired: mine, kept: scan.kept + taken.length };
  if (mine.length > 0) {
    const file: ClaimsFile = {
      format: 'steward-retention-claims/1',
      sweepId: claim.sweepId,
      batch: claim.batch,
      asOf: claim.asOf,
      claimedAt: claim.now,
      scan: result,
    };
    await putJson(s3, bucket, key, ClaimsFileSchema, file);
  }
  return result;
}

/** Ends a sweep's claims: every version of its claim files goes. */
export async function releaseClaims(s3: S3Client, bucket: string, sweepId: string): Promise<number> {
  const versions = await listVersions(s3, bucket, sweepClaimsPrefix(sweepId));
  const refused = await deleteVersions(s3, bucket, versions);
  if (refused.length > 0) throw new Error(`could not release ${refused.length} claim files of sweep ${sweepId}`);
  return versions.length;
}

/** The datasets a claim still lists, for the writer to refuse changes to them. */
export function claimProblem(claimed: Map<string, string>, datasetIds: readonly string[]): string | undefined {
  const busy = datasetIds.filter((id) => claimed.has(id));
  if (busy.length === 0) return undefined;
  const shown = busy.slice(0, 5).map((id) => `${id} (sweep ${claimed.get(id)})`);
  return `${busy.length} dataset(s) are being deleted by a retention sweep: ${shown.join(', ')}${busy.length > 5 ? ', …' : ''}`;
}

export type { ClaimedDataset };
