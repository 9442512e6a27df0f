import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type ListObjectVersionsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { inLanes } from '../runtime/lanes';

/** One stored version of an object, or a delete marker. */
export interface StoredVersion {
  key: string;
  versionId: string | null;
  bytes: number;
  deleteMarker: boolean;
  lastModified: string | null;
}

/** Every version and delete marker under a prefix, oldest pages first as S3 lists them. */
export async function listVersions(s3: S3Client, bucket: string, prefix: string): Promise<StoredVersion[]> {
  const found: StoredVersion[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(
      new ListObjectVersionsCommand({
        Bucket: bucket,
        Prefix: prefix,
        ...(keyMarker ? { KeyMarker: keyMarker } : {}),
        ...(versionIdMarker ? { VersionIdMarker: versionIdMarker } : {}),
      }),
    );
    collect(page, found, keyMarker, versionIdMarker);
    if (!page.IsTruncated) return found;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
}

/**
 * Adds a page's versions and delete markers. A page asked for after a marker leaves out the marker's own version:
 * S3 starts after it, but versitygw (v1.7.0) starts the next page with it, so every page boundary would list one
 * version twice (and a certificate would name it twice).
 */
function collect(
  page: ListObjectVersionsCommandOutput,
  into: StoredVersion[],
  keyMarker?: string,
  versionIdMarker?: string,
): void {
  const isMarker = (v: { Key?: string | undefined; VersionId?: string | undefined }) =>
    versionIdMarker !== undefined && v.Key === keyMarker && v.VersionId === versionIdMarker;
  for (const v of page.Versions ?? []) {
    if (!v.Key || isMarker(v)) continue;
    into.push({
      key: v.Key,
      versionId: v.VersionId && v.VersionId !== 'null' ? v.VersionId : null,
      bytes: v.Size ?? 0,
      deleteMarker: false,
      lastModified: v.LastModified?.toISOString() ?? null,
    });
  }
  for (const m of page.DeleteMarkers ?? []) {
    if (!m.Key || isMarker(m)) continue;
    into.push({
      key: m.Key,
      versionId: m.VersionId && m.VersionId !== 'null' ? m.VersionId : null,
      bytes: 0,
      deleteMarker: true,
      lastModified: m.LastModified?.toISOString() ?? null,
    });
  }
}

/** Whether `key` is under `prefix`, where a prefix not ending in `/` names exactly one key. */
function under(key: string, prefix: string): boolean {
  return prefix.endsWith('/') ? key.startsWith(prefix) : key === prefix;
}

/**
 * Every version under each of many prefixes (a prefix not ending in `/` is one exact key). Prefixes that sit close
 * together in key order, as a batch of datasets does, are read in one ranged listing (a page per 1000 versions)
 * instead of one listing each; when the range turns out to hold much else, the rest is listed prefix by prefix.
 */
export async function listVersionsOf(
  s3: S3Client,
  bucket: string,
  prefixes: readonly string[],
): Promise<Map<string, StoredVersion[]>> {
  const sorted = [...new Set(prefixes)].sort();
  const result = new Map<string, StoredVersion[]>(sorted.map((p) => [p, []]));
  if (sorted.length === 0) return result;
  const done = new Set<string>();
  if (sorted.length > 1) {
    const first = sorted[0]!;
    const last = sorted[sorted.length - 1]!;
    let common = first;
    while (!last.startsWith(common)) common = common.slice(0, -1);
    // Starts just before the first prefix; gives up the range after a few pages more than the batch itself needs.
    let keyMarker: string | undefined = first.slice(0, -1) || undefined;
    let versionIdMarker: string | undefined;
    let pages = 0;
    const budget = 2 + Math.ceil(sorted.length / 100);
    let index = 0;
    for (;;) {
      const page = await s3.send(
        new ListObjectVersionsCommand({
          Bucket: bucket,
          Prefix: common,
          ...(keyMarker ? { KeyMarker: keyMarker } : {}),
          ...(versionIdMarker ? { VersionIdMarker: versionIdMarker } : {}),
        }),
      );
      pages += 1;
      const found: StoredVersion[] = [];
      collect(page, found, keyMarker, versionIdMarker);
      found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      let lastKey = '';
      for (const version of found) {
        lastKey = version.key;
        while (index < sorted.length && version.key > sorted[index]! && !under(version.key, sorted[index]!)) {
          done.add(sorted[index]!);
          index += 1;
        }
        if (index < sorted.length && under(version.key, sorted[index]!)) result.get(sorted[index]!)!.push(version);
      }
      if (!page.IsTruncated) {
        for (const p of sorted) done.add(p);
        break;
      }
      // Prefixes wholly before the last key listed are complete.
      while (index < sorted.length && lastKey > sorted[index]! && !under(lastKey, sorted[index]!)) {
        done.add(sorted[index]!);
        index += 1;
      }
      if (index >= sorted.length || pages >= budget) break;
      keyMarker = page.NextKeyMarker;
      versionIdMarker = page.NextVersionIdMarker;
    }
  }
  const rest = sorted.filter((p) => !done.has(p));
  await inLanes(rest, 8, async (prefix) => {
    const versions = await listVersions(s3, bucket, prefix);
    result.set(
      prefix,
      versions.filter((v) => under(v.key, prefix)),
    );
  });
  return result;
}

/**
 * Deletes the given versions (and delete markers), in requests of up to 500, a few at a time. With
 * `bypassGovernance`, versions under GOVERNANCE retention go too (the bucket policy must allow the caller); a legal
 * hold or COMPLIANCE retention still refuses. Returns the versions storage refused, with its error code.
 */
export async function deleteVersions(
  s3: S3Client,
  bucket: string,
  versions: readonly { key: string; versionId: string | null }[],
  options: { bypassGovernance?: boolean } = {},
): Promise<{ key: string; versionId: string | null; code: string }[]> {
  const chunks: (typeof versions)[] = [];
  for (let i = 0; i < versions.length; i += 500) chunks.push(versions.slice(i, i + 500));
  const refused: { key: string; versionId: string | null; code: string }[] = [];
  await inLanes(chunks, 4, async (chunk) => {
    const res = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: {
          Objects: chunk.map((v) => ({ Key: v.key, ...(v.versionId ? { VersionId: v.versionId } : {}) })),
          Quiet: true,
        },
        ...(options.bypassGovernance ? { BypassGovernanceRetention: true } : {}),
      }),
    );
    for (const e of res.Errors ?? []) {
      refused.push({ key: e.Key ?? '', versionId: e.VersionId ?? null, code: e.Code ?? 'Unknown' });
    }
  });
  return refused;
}

/**
 * SHA-256 of one stored version: the additional checksum uploaded with it when there is one, else by reading it.
 * Null for a delete marker.
 */
export async function versionSha256(s3: S3Client, bucket: string, version: StoredVersion): Promise<string | null> {
  if (version.deleteMarker) return null;
  const versionId = version.versionId ?? undefined;
  const head = await s3.send(
    new HeadObjectCommand({ Bucket: bucket, Key: version.key, VersionId: versionId, ChecksumMode: 'ENABLED' }),
  );
  if (head.ChecksumSHA256 && !head.ChecksumSHA256.includes('-')) {
    return Buffer.from(head.ChecksumSHA256, 'base64').toString('hex');
  }
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: version.key, VersionId: versionId }));
  const hash = createHash('sha256');
  for await (const chunk of res.Body as Readable) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
