import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import type { SubjectPlace } from '../../schemas/subject-request';
import { canonicalizeIdentifier } from '../crypto/pseudonymize';
import { STUDY_METADATA } from '../storage/packages';
import { CONSENT_UPLOADS_PREFIX, PACKAGES_PREFIX, packageIdOf, packagePrefix } from '../storage/layout';
import { listObjects } from '../storage/objects';

type UploadPlace = Extract<SubjectPlace, { kind: 'upload' }>;

/** A line holding the identifier as a whole field (CSV, TSV, JSON): delimiters or quotes on both sides. */
export function fieldPattern(identifier: string): RegExp {
  const escaped = canonicalizeIdentifier(identifier).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?:^|[,;\\t|"\\s])${escaped}(?:[,;\\t|"\\r\\s]|$)`);
}

async function objectHolds(s3: S3Client, bucket: string, key: string, pattern: RegExp): Promise<boolean> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = res.Body as Readable;
  const lines = createInterface({ input: body, crlfDelay: Infinity });
  try {
    for await (const line of lines) if (pattern.test(line)) return true;
    return false;
  } finally {
    lines.close();
    body.destroy();
  }
}

/**
 * The raw uploads of the jurisdiction naming the subject by their real identifier: packages in landing and quarantine,
 * and consent files uploaded for import. They hold identifiers, not tokens, so the subject index cannot name them:
 * they are read, which the raw-staging retention (days) keeps small. With `studyId`, only that study's uploads.
 */
export async function discoverUploads(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  subjectId: string,
  studyId: string | undefined,
  onProgress: (units: number) => void = () => {},
): Promise<{ places: UploadPlace[]; read: { objects: number; bytes: number } }> {
  const pattern = fieldPattern(subjectId);
  const places: UploadPlace[] = [];
  const read = { objects: 0, bytes: 0 };
  let seen = 0;
  for (const role of ['landing', 'quarantine'] as const) {
    const bucket = jurisdiction.buckets[role];
    const units = new Map<string, { key: string; size: number }[]>();
    for (const o of await listObjects(s3, bucket, '')) {
      const packageId = packageIdOf(o.key);
      const unit = packageId ? packagePrefix(packageId) : o.key.startsWith(CONSENT_UPLOADS_PREFIX) ? o.key : undefined;
      if (unit) units.set(unit, [...(units.get(unit) ?? []), o]);
    }
    for (const [prefix, objects] of units) {
      onProgress(++seen);
      const packageId = prefix.startsWith(PACKAGES_PREFIX) ? (packageIdOf(prefix) ?? null) : null;
      let unitStudy: string | null = packageId ? null : (prefix.split('/')[1] ?? null);
      if (packageId) {
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: objects[0]!.key }));
        unitStudy = head.Metadata?.[STUDY_METADATA] ?? null;
      }
      if (studyId && unitStudy !== null && unitStudy !== studyId) continue;
      let files = 0;
      for (const o of objects) {
        read.objects += 1;
        read.bytes += o.size;
        if (await objectHolds(s3, bucket, o.key, pattern)) files += 1;
      }
      if (files > 0) places.push({ kind: 'upload', role, bucket, prefix, packageId, studyId: unitStudy, files });
    }
  }
  return { places, read };
}
