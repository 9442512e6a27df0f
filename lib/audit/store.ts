import type { S3Client } from '@aws-sdk/client-s3';
import { DateTime, Duration } from 'luxon';
import type { AuditSegment } from '../../schemas/audit';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import { canonicalJson } from '../crypto/canonical';
import { getObjectOrUndefined, listObjects, putBytes } from '../storage/objects';

export const SEGMENTS_PREFIX = 'audit/segments/';

/** Segments sort by key in sequence order. */
export function segmentKey(seq: number): string {
  return `${SEGMENTS_PREFIX}${String(seq).padStart(12, '0')}.json`;
}

/** The sequence numbers of a jurisdiction's stored segments, ascending. */
export async function listSegmentSeqs(s3: S3Client, bucket: string): Promise<number[]> {
  return (await listObjects(s3, bucket, SEGMENTS_PREFIX))
    .map((o) => /(\d{12})\.json$/.exec(o.key)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** A stored segment as JSON, unparsed (a verifier judges it), or undefined when there is none. */
export async function readSegment(s3: S3Client, bucket: string, seq: number): Promise<unknown> {
  const raw = await getObjectOrUndefined(s3, bucket, segmentKey(seq));
  if (!raw) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    return raw.toString('utf8');
  }
}

/** Until when evidence (audit segments, certificates) is locked: the jurisdiction's rule for the class, from `at`. */
export function evidenceRetainUntil(jurisdiction: Jurisdiction, evidenceClass: string, at: string): Date {
  const rule = jurisdiction.retention[evidenceClass];
  if (!rule) throw new Error(`jurisdiction ${jurisdiction.id} has no retention rule for ${evidenceClass}`);
  return DateTime.fromISO(at, { zone: 'utc' }).plus(Duration.fromISO(rule.duration)).toJSDate();
}

/** Writes an evidence object write-once: SHA-256 checked by the server, under S3 Object Lock until `retainUntil`. */
export async function putEvidence(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer,
  contentType: string,
  retainUntil: Date,
): Promise<void> {
  await putBytes(s3, bucket, key, body, { contentType, lock: { mode: 'GOVERNANCE', until: retainUntil } });
}

export function segmentBytes(segment: AuditSegment): Buffer {
  return Buffer.from(canonicalJson(segment));
}
