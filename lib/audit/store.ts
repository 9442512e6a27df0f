import type { S3Client } from '@aws-sdk/client-s3';
import { DateTime, Duration } from 'luxon';
import type { AuditSegment } from '../../schemas/audit';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import { canonicalJson } from '../crypto/canonical';
import { putBytes, readObjectText } from '../storage/objects';
import { isNotFound } from '../storage/s3';
import { SEGMENTS_PREFIX, segmentKey } from '../storage/layout';
import { listVersions, type StoredVersion } from '../storage/versions';

/** Segments sort by key in sequence order (see `segmentKey`). */
export { SEGMENTS_PREFIX, segmentKey };

/**
 * Where each stored segment is: the version sealed first (the segment; a later version under its key is an
 * overwrite), how many versions its key holds, and whether a delete marker was put on it. Read from the version
 * listing, so a segment hidden by a delete marker is still found, and still read.
 */
export interface StoredSegment {
  seq: number;
  versionId: string | null;
  versions: number;
  deleteMarkers: number;
}

/** The stored segments of a jurisdiction, ascending. */
export async function listStoredSegments(s3: S3Client, bucket: string): Promise<StoredSegment[]> {
  const bySeq = new Map<number, { real: StoredVersion[]; deleteMarkers: number }>();
  for (const v of await listVersions(s3, bucket, SEGMENTS_PREFIX)) {
    const seq = /(\d{12})\.json$/.exec(v.key)?.[1];
    if (seq === undefined) continue;
    const entry = bySeq.get(Number(seq)) ?? { real: [], deleteMarkers: 0 };
    if (v.deleteMarker) entry.deleteMarkers += 1;
    else entry.real.push(v);
    bySeq.set(Number(seq), entry);
  }
  return [...bySeq]
    .filter(([, e]) => e.real.length > 0)
    .map(([seq, e]) => {
      const first = [...e.real].sort((a, b) => (a.lastModified ?? '').localeCompare(b.lastModified ?? ''))[0]!;
      return { seq, versionId: first.versionId, versions: e.real.length, deleteMarkers: e.deleteMarkers };
    })
    .sort((a, b) => a.seq - b.seq);
}

/** The sequence numbers of a jurisdiction's stored segments, ascending. */
export async function listSegmentSeqs(s3: S3Client, bucket: string): Promise<number[]> {
  return (await listStoredSegments(s3, bucket)).map((s) => s.seq);
}

/**
 * A stored segment as JSON, unparsed (a verifier judges it), or undefined when there is none: the version sealed first
 * when the listing named it, else the current one.
 */
export async function readSegment(
  s3: S3Client,
  bucket: string,
  seq: number,
  versionId?: string | null,
): Promise<unknown> {
  let raw: Buffer | undefined;
  try {
    raw = await readObjectText(s3, bucket, segmentKey(seq), undefined, versionId);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    return raw.toString('utf8');
  }
}

/** What an evidence key's extra versions and delete markers say: each is an attempt to replace or remove evidence. */
export function storageProblems(segments: readonly StoredSegment[]): { segment: number; problem: string }[] {
  const problems: { segment: number; problem: string }[] = [];
  for (const s of segments) {
    if (s.deleteMarkers > 0) {
      problems.push({
        segment: s.seq,
        problem: `a delete marker was put on the segment (${s.deleteMarkers}): someone tried to delete it; its sealed version is still stored`,
      });
    }
    if (s.versions > 1) {
      problems.push({
        segment: s.seq,
        problem: `the segment's key holds ${s.versions} versions: it was overwritten; the version sealed first is verified`,
      });
    }
  }
  return problems;
}

/** Until when evidence (audit segments, certificates) is locked: the jurisdiction's rule for the class, from `at`. */
export function evidenceRetainUntil(jurisdiction: Jurisdiction, evidenceClass: string, at: string): Date {
  const rule = jurisdiction.retention[evidenceClass];
  if (!rule) throw new Error(`jurisdiction ${jurisdiction.id} has no retention rule for ${evidenceClass}`);
  return DateTime.fromISO(at, { zone: 'utc' }).plus(Duration.fromISO(rule.duration)).toJSDate();
}

/**
 * Writes an evidence object write-once: SHA-256 checked by the server, under S3 Object Lock in COMPLIANCE mode until
 * `retainUntil`, which no account (root included) can shorten or override.
 */
export async function putEvidence(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer,
  contentType: string,
  retainUntil: Date,
): Promise<void> {
  await putBytes(s3, bucket, key, body, { contentType, lock: { mode: 'COMPLIANCE', until: retainUntil } });
}

export function segmentBytes(segment: AuditSegment): Buffer {
  return Buffer.from(canonicalJson(segment));
}
