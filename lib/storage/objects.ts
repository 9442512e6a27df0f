import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isNotFound } from './s3';
import { deleteVersions, listVersions, type StoredVersion } from './versions';

export interface ObjectSummary {
  key: string;
  size: number;
  etag: string;
}

export async function listObjects(s3: S3Client, bucket: string, prefix: string): Promise<ObjectSummary[]> {
  const out: ObjectSummary[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
    );
    for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? '' });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function body(s3: S3Client, bucket: string, key: string, versionId?: string | null): Promise<Readable> {
  const res = await s3.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
  );
  return res.Body as Readable;
}

export async function readObjectText(
  s3: S3Client,
  bucket: string,
  key: string,
  maxBytes = 64 * 1024 * 1024,
  versionId?: string | null,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of await body(s3, bucket, key, versionId)) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new Error(`${key} is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function getObjectOrUndefined(s3: S3Client, bucket: string, key: string): Promise<Buffer | undefined> {
  try {
    return await readObjectText(s3, bucket, key);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/** Streams an object through SHA-256 without keeping it. */
export async function hashObject(
  s3: S3Client,
  bucket: string,
  key: string,
  onBytes: (n: number) => void = () => {},
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of await body(s3, bucket, key)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes((chunk as Buffer).length);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Streams an object to a local file, then hashes the file: writing first and hashing the file in large blocks is
 * several times faster than hashing the network's small chunks on the way.
 */
export async function downloadHashed(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  onBytes: (n: number) => void = () => {},
  versionId?: string | null,
): Promise<{ sha256: string; bytes: number }> {
  const source = await body(s3, bucket, key, versionId);
  source.on('data', (chunk: Buffer) => onBytes(chunk.length));
  await pipeline(source, createWriteStream(file, { highWaterMark: 2 ** 20 }));
  return hashFile(file);
}

/**
 * SHA-256 of a local file. Reads 1 MiB blocks into two alternating buffers so the next read runs while the current
 * block is hashed: throughput is then close to SHA-256 itself.
 */
export async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    const buffers = [Buffer.allocUnsafe(2 ** 20), Buffer.allocUnsafe(2 ** 20)];
    let position = 0;
    let current = 0;
    let pending = handle.read(buffers[0]!, 0, 2 ** 20, position);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const block = buffers[current]!;
      position += bytesRead;
      current ^= 1;
      pending = handle.read(buffers[current]!, 0, 2 ** 20, position);
      hash.update(block.subarray(0, bytesRead));
    }
    return { sha256: hash.digest('hex'), bytes: position };
  } finally {
    await handle.close();
  }
}

/** What is stored under a key now: version, size and SHA-256 (from the additional checksum uploaded with it). */
export async function headObject(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<{ versionId: string | null; bytes: number; sha256: string }> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
  if (!head.ChecksumSHA256) throw new Error(`${bucket}/${key} carries no SHA-256 checksum`);
  return {
    versionId: head.VersionId ?? null,
    bytes: head.ContentLength ?? 0,
    sha256: Buffer.from(head.ChecksumSHA256, 'base64').toString('hex'),
  };
}

export function encodeTags(tags: Record<string, string>): string {
  return new URLSearchParams(tags).toString();
}

/**
 * Uploads a local file with its SHA-256 as the S3 additional checksum (the server verifies it), unless the object
 * already holds exactly these bytes, so a retried upload creates no second version.
 */
export async function putFileOnce(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  sha256Hex: string,
  options: {
    tags?: Record<string, string>;
    contentType?: string;
    /** S3 Object Lock retention for the new version. */
    lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: Date };
    /** S3 legal hold on the new version. */
    legalHold?: boolean;
  } = {},
): Promise<{ versionId: string | null; uploaded: boolean }> {
  const checksum = Buffer.from(sha256Hex, 'hex').toString('base64');
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
    if (head.ChecksumSHA256 === checksum) return { versionId: head.VersionId ?? null, uploaded: false };
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  const size = (await stat(file)).size;
  const res = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: createReadStream(file),
      ContentLength: size,
      ChecksumAlgorithm: 'SHA256',
      ChecksumSHA256: checksum,
      ...(options.contentType ? { ContentType: options.contentType } : {}),
      ...(options.tags ? { Tagging: encodeTags(options.tags) } : {}),
      ...(options.lock ? { ObjectLockMode: options.lock.mode, ObjectLockRetainUntilDate: options.lock.until } : {}),
      ...(options.legalHold ? { ObjectLockLegalHoldStatus: 'ON' as const } : {}),
    }),
  );
  return { versionId: res.VersionId ?? null, uploaded: true };
}

/**
 * Uploads a stream of known length, with user metadata, and with its SHA-256 as the S3 additional checksum when the
 * caller knows it (the server then verifies it).
 */
export async function putStream(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Readable,
  options: { bytes: number; metadata?: Record<string, string>; sha256Hex?: string },
): Promise<{ versionId: string | null }> {
  const res = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentLength: options.bytes,
      ...(options.metadata ? { Metadata: options.metadata } : {}),
      ...(options.sha256Hex
        ? {
            ChecksumAlgorithm: 'SHA256' as const,
            ChecksumSHA256: Buffer.from(options.sha256Hex, 'hex').toString('base64'),
          }
        : {}),
    }),
  );
  return { versionId: res.VersionId ?? null };
}

/**
 * Uploads bytes with their SHA-256 as the S3 additional checksum (the server verifies it), under S3 Object Lock when
 * `lock` is given.
 */
export async function putBytes(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer,
  options: { contentType: string; lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: Date } | null },
): Promise<{ versionId: string | null; sha256: string }> {
  const digest = createHash('sha256').update(body).digest();
  const res = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: options.contentType,
      ChecksumAlgorithm: 'SHA256',
      ChecksumSHA256: digest.toString('base64'),
      ...(options.lock ? { ObjectLockMode: options.lock.mode, ObjectLockRetainUntilDate: options.lock.until } : {}),
    }),
  );
  return { versionId: res.VersionId ?? null, sha256: digest.toString('hex') };
}

export async function copyObject(
  s3: S3Client,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
) {
  await s3.send(
    new CopyObjectCommand({
      Bucket: to.bucket,
      Key: to.key,
      CopySource: `${from.bucket}/${from.key.split('/').map(encodeURIComponent).join('/')}`,
    }),
  );
}

/**
 * Deletes every version and delete marker under a prefix, in batches of up to 1000. With `bypassGovernance`, versions
 * under GOVERNANCE retention go too (the caller must be allowed to by the bucket policy); COMPLIANCE retention and
 * legal holds still refuse.
 */
export async function deleteAllVersions(
  s3: S3Client,
  bucket: string,
  prefix: string,
  options: { bypassGovernance?: boolean } = {},
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, MaxKeys: 1000 }));
    const targets = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]
      .filter((v) => v.Key)
      .map((v) => ({ Key: v.Key!, ...(v.VersionId ? { VersionId: v.VersionId } : {}) }));
    if (targets.length === 0) return deleted;
    const res = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: targets, Quiet: true },
        ...(options.bypassGovernance ? { BypassGovernanceRetention: true } : {}),
      }),
    );
    if (res.Errors?.length) {
      throw new Error(
        `could not delete ${res.Errors.length} object versions under ${bucket}/${prefix}: ${res.Errors[0]?.Code}`,
      );
    }
    deleted += targets.length;
  }
}

/**
 * Deletes every version of `key` except `keep` (the one just written), so an overwritten object leaves no older copy.
 * Every listing page is read, however many versions there are. Returns the versions deleted: one storage refuses (a
 * legal hold, COMPLIANCE retention) stays, and is not among them.
 */
export async function deleteOtherVersions(
  s3: S3Client,
  bucket: string,
  key: string,
  keep: string | null | undefined,
  options: { bypassGovernance?: boolean } = {},
): Promise<string[]> {
  const old = (await listVersions(s3, bucket, key)).filter(
    (v): v is StoredVersion & { versionId: string } =>
      v.key === key && !v.deleteMarker && v.versionId !== null && v.versionId !== keep,
  );
  if (old.length === 0) return [];
  const refused = new Set((await deleteVersions(s3, bucket, old, options)).map((r) => r.versionId));
  return old.filter((v) => !refused.has(v.versionId)).map((v) => v.versionId);
}
