import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ErasedVersion, ObjectErasure } from '../../schemas/erasure';
import { inLanes } from '../runtime/lanes';
import { isNotFound } from '../storage/s3';
import { listVersionsOf, versionSha256, type StoredVersion } from '../storage/versions';

export function versionRef(bucket: string, key: string, versionId: string | null): string {
  return `${bucket}/${key}@${versionId ?? 'null'}`;
}

/** Whether a key falls under a target's prefix (ending in `/`) or is its exact key. */
export function underPrefix(key: string, prefix: string): boolean {
  return prefix.endsWith('/') ? key.startsWith(prefix) : key === prefix;
}

/**
 * Every version and delete marker under each unit's targets (ListObjectVersions), with its SHA-256: known from the
 * unit, uploaded with it, or read (`withDigests`). Units are listed together, one listing per bucket.
 */
export async function inventory(
  s3: S3Client,
  units: { unitId: string; objects: ObjectErasure }[],
  withDigests: boolean,
): Promise<Map<string, ErasedVersion[]>> {
  const found = new Map<string, ErasedVersion[]>(units.map((u) => [u.unitId, []]));
  const byBucket = new Map<
    string,
    { unitId: string; known: Map<string, string>; prefix: string; keep: Set<string> }[]
  >();
  for (const unit of units) {
    const known = new Map(unit.objects.known.map((k) => [versionRef(k.bucket, k.key, k.versionId), k.sha256]));
    for (const target of unit.objects.targets) {
      const keep = new Set((target.keep ?? []).map((k) => versionRef(target.bucket, k.key, k.versionId)));
      for (const prefix of target.prefixes) {
        const list = byBucket.get(target.bucket) ?? [];
        list.push({ unitId: unit.unitId, known, prefix, keep });
        byBucket.set(target.bucket, list);
      }
    }
  }
  const pending: { bucket: string; version: StoredVersion; into: ErasedVersion[]; known?: string }[] = [];
  for (const [bucket, entries] of byBucket) {
    const listed = await listVersionsOf(
      s3,
      bucket,
      entries.map((e) => e.prefix),
    );
    for (const { unitId, known, prefix, keep } of entries) {
      for (const version of listed.get(prefix) ?? []) {
        // A version the unit keeps (an object's rewritten version) is neither deleted nor counted as remaining.
        if (keep.has(versionRef(bucket, version.key, version.versionId))) continue;
        const digest = known.get(versionRef(bucket, version.key, version.versionId));
        pending.push({ bucket, version, into: found.get(unitId)!, ...(digest ? { known: digest } : {}) });
      }
    }
  }
  await inLanes(pending, 8, async ({ bucket, version, into, known }) => {
    const sha256 = known ?? (withDigests ? await versionSha256(s3, bucket, version).catch(() => null) : null);
    into.push({
      bucket,
      key: version.key,
      versionId: version.versionId,
      bytes: version.bytes,
      sha256,
      deleteMarker: version.deleteMarker,
    });
  });
  for (const versions of found.values()) {
    versions.sort((a, b) => `${a.bucket}/${a.key}`.localeCompare(`${b.bucket}/${b.key}`));
  }
  return found;
}

/**
 * The absence of one unit, as a certificate states it: no version or delete marker left under its targets (`left`,
 * from a fresh listing) and every key it names reading as absent (HEAD → 404).
 */
export async function verifyAbsence(
  s3: S3Client,
  objects: ObjectErasure,
  left: readonly ErasedVersion[],
): Promise<{ verified: boolean; verification: string[] }> {
  const present: string[] = [];
  for (const { bucket, key } of objects.absent) {
    try {
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      present.push(`${bucket}/${key}`);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  const listed = objects.targets.flatMap((t) => t.prefixes.map((p) => `s3://${t.bucket}/${p}`)).join(', ');
  return {
    verified: left.length === 0 && present.length === 0,
    verification: [
      `ListObjectVersions under ${listed || '(no object)'}: ${left.length} versions or delete markers remain${objects.targets.some((t) => (t.keep ?? []).length > 0) ? ' besides the rewritten versions kept' : ''}`,
      objects.absent.length > 0
        ? `HEAD ${objects.absent.map((h) => `s3://${h.bucket}/${h.key}`).join(', ')}: ${present.length === 0 ? 'not found' : `still found: ${present.join(', ')}`}`
        : 'no key to HEAD',
    ],
  };
}
