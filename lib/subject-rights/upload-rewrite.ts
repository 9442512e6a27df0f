import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import {
  JSON_MANIFEST_FILE,
  JsonManifestSchema,
  PACKAGE_METADATA_FILE,
  PackageMetadataSchema,
  type PackageMetadata,
  type Table,
  type UploadErasure,
} from '../../schemas/package';
import type { SubjectPlace } from '../../schemas/subject-request';
import { canonicalizeIdentifier } from '../crypto/pseudonymize';
import { packageDigest, parseTagFile } from '../package/rules';
import { signatureFileOf } from '../package/source';
import { putStream } from '../storage/objects';
import { listVersions } from '../storage/versions';

type UploadPlace = Extract<SubjectPlace, { kind: 'upload' }>;

/** One file of a raw upload as it was before the rewrite and as it is after. */
export interface RewrittenFile {
  key: string;
  before: { versionId: string | null; sha256: string; rows: number };
  after: { versionId: string | null; sha256: string; rows: number };
}

export interface RewrittenUpload {
  layout: 'bagit' | 'json';
  /** The package digest (manifest and metadata) the upload had when it was submitted, as its package id was made. */
  originalManifestSha256: string;
  rowsRemoved: number;
  /** The payload files rewritten without the subject's rows, then the manifest files rewritten to match. */
  files: RewrittenFile[];
  /** Every version that stays: the rewritten ones and the files that held nothing of the subject. */
  keep: { key: string; versionId: string }[];
  /** The source's signature, which covered the original manifest: its versions go with the older versions. */
  signatureRemoved: boolean;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Lines of a payload or tag manifest (`<sha256>  <path>`), with the digest of each path in `changed` replaced. */
function replaceManifestLines(text: string, changed: Map<string, string>): string {
  return text
    .split('\n')
    .map((line) => {
      const match = /^([0-9a-fA-F]{64})([ \t]+)(.+?)(\r?)$/.exec(line);
      const digest = match ? changed.get(match[3]!) : undefined;
      return digest ? `${digest}${match![2]}${match![3]}${match![4]}` : line;
    })
    .join('\n');
}

/**
 * The table's bytes without the subject's records, each other record kept byte for byte (CSV records as csv-parse
 * delimits them, so quoted line breaks stay inside their record; NDJSON by line), with the record counts.
 */
export function withoutSubject(
  bytes: Buffer,
  table: Table,
  subjectId: string,
): { bytes: Buffer; rowsBefore: number; rowsAfter: number } {
  const column = table.columns.find((c) => c.role === 'subject-id')!.name;
  // The same identifier as ingestion tokenized it: canonicalized, and no more.
  const wanted = canonicalizeIdentifier(subjectId);
  const isSubject = (value: unknown) =>
    value !== null && value !== undefined && canonicalizeIdentifier(String(value)) === wanted;
  const kept: Buffer[] = [];
  let rowsBefore = 0;
  let rowsAfter = 0;
  if (table.format === 'csv') {
    const records = parse(bytes, { bom: true, info: true, relax_column_count: true }) as unknown as {
      record: string[];
      info: { bytes: number };
    }[];
    const index = (records[0]?.record ?? []).map((h) => h.trim()).indexOf(column);
    let start = 0;
    for (const [i, { record, info }] of records.entries()) {
      const raw = bytes.subarray(start, info.bytes);
      start = info.bytes;
      const empty = record.length === 1 && record[0] === '';
      if (i > 0 && !empty) rowsBefore += 1;
      if (i > 0 && !empty && isSubject(record[index])) continue;
      if (i > 0 && !empty) rowsAfter += 1;
      kept.push(raw);
    }
    kept.push(bytes.subarray(start));
  } else {
    for (const line of bytes.toString('utf8').split(/(?<=\n)/)) {
      if (line.trim() === '') {
        kept.push(Buffer.from(line, 'utf8'));
        continue;
      }
      rowsBefore += 1;
      const row = JSON.parse(line) as Record<string, unknown>;
      if (isSubject(row[column])) continue;
      rowsAfter += 1;
      kept.push(Buffer.from(line, 'utf8'));
    }
  }
  return { bytes: Buffer.concat(kept), rowsBefore, rowsAfter };
}

/**
 * Rewrites a package's raw upload without one subject's rows, as new object versions: each table that names the
 * subject, then a new manifest (JSON layout: `manifest.json` with the erasure recorded under `erasures`; BagIt:
 * `manifest-sha256.txt`, `bag-info.txt` with its Payload-Oxum and `Steward-Erasure` tags, `tagmanifest-sha256.txt`)
 * recording the original package digest and the request. Every other file and byte stays as it was. Always rewrites
 * from the upload's original versions, so a retry after a crash writes the same bytes; the caller deletes every
 * version not in `keep` (the older versions, and the source signature that covered the original manifest).
 */
export async function rewriteUploadWithoutSubject(
  s3: S3Client,
  place: UploadPlace,
  request: { requestId: string; subjectId: string; at: string },
): Promise<RewrittenUpload> {
  const { bucket, prefix } = place;
  // The original of each file: its oldest version (a raw upload is written once; a rewrite adds versions). Storage
  // lists a key's versions newest first, so among versions of the same time the last listed is the oldest.
  const oldest = new Map<string, { versionId: string | null; at: string }>();
  for (const v of await listVersions(s3, bucket, prefix)) {
    const at = v.lastModified ?? '';
    const seen = oldest.get(v.key);
    if (!v.deleteMarker && (!seen || at <= seen.at)) oldest.set(v.key, { versionId: v.versionId, at });
  }
  const original = new Map([...oldest].map(([key, v]) => [key, v.versionId]));
  const rel = (key: string) => key.slice(prefix.length);
  const read = async (name: string): Promise<Buffer | undefined> => {
    const key = `${prefix}${name}`;
    if (!original.has(key)) return undefined;
    const versionId = original.get(key);
    const res = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
    );
    return Buffer.from(await res.Body!.transformToByteArray());
  };
  const metadataOf = async (key: string) =>
    (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata ?? {};
  const write = async (name: string, bytes: Buffer) => {
    const key = `${prefix}${name}`;
    // Submission time and study stay on every version: retention and discovery read them.
    const metadata = await metadataOf(key);
    const { versionId } = await putStream(s3, bucket, key, Readable.from([bytes]), {
      bytes: bytes.length,
      metadata,
      sha256Hex: sha256(bytes),
    });
    return versionId;
  };

  const layout = original.has(`${prefix}bagit.txt`) ? 'bagit' : 'json';
  const manifestName = layout === 'bagit' ? 'manifest-sha256.txt' : JSON_MANIFEST_FILE;
  const manifestBytes = await read(manifestName);
  const metadataBytes = layout === 'bagit' ? await read(PACKAGE_METADATA_FILE) : manifestBytes;
  if (!manifestBytes || !metadataBytes) {
    throw new Error(`raw upload s3://${bucket}/${prefix} has no ${manifestName}: it cannot be rewritten`);
  }
  const json = layout === 'json' ? JsonManifestSchema.parse(JSON.parse(manifestBytes.toString('utf8'))) : undefined;
  const metadata: PackageMetadata = json ?? PackageMetadataSchema.parse(JSON.parse(metadataBytes.toString('utf8')));
  const originalManifestSha256 = packageDigest(
    manifestBytes,
    layout === 'bagit' ? metadataBytes : Buffer.alloc(0),
  ).manifestSha256;

  const files: RewrittenFile[] = [];
  const changed = new Map<string, { sha256: string; bytes: number }>();
  for (const table of metadata.tables) {
    const bytes = await read(table.path);
    if (!bytes) continue;
    const rewritten = withoutSubject(bytes, table, request.subjectId);
    if (rewritten.rowsAfter === rewritten.rowsBefore) continue;
    const key = `${prefix}${table.path}`;
    const after = sha256(rewritten.bytes);
    const versionId = await write(table.path, rewritten.bytes);
    changed.set(table.path, { sha256: after, bytes: rewritten.bytes.length });
    files.push({
      key,
      before: { versionId: original.get(key) ?? null, sha256: sha256(bytes), rows: rewritten.rowsBefore },
      after: { versionId, sha256: after, rows: rewritten.rowsAfter },
    });
  }
  const rowsRemoved = files.reduce((n, f) => n + f.before.rows - f.after.rows, 0);
  const current = async () => {
    const keep: { key: string; versionId: string }[] = [];
    for (const key of original.keys()) {
      const versionId = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).VersionId;
      if (versionId) keep.push({ key, versionId });
    }
    return keep;
  };
  // No table names the subject (rewritten already, by a run whose older versions are gone): nothing to record.
  if (files.length === 0) {
    return { layout, originalManifestSha256, rowsRemoved: 0, files, keep: await current(), signatureRemoved: false };
  }
  const signature = `${prefix}${signatureFileOf(layout)}`;
  const signatureRemoved = original.has(signature);
  const erasure: UploadErasure = {
    requestId: request.requestId,
    at: request.at,
    originalManifestSha256,
    rowsRemoved,
    sourceSignature: signatureRemoved ? 'removed: it covered the original manifest' : null,
  };

  // The manifest files, last: a crash before them leaves the original manifest naming the original versions.
  const tagFiles = new Map<string, Buffer>();
  if (json) {
    const next = {
      ...json,
      files: json.files.map((f) => {
        const c = changed.get(f.path);
        return c ? { ...f, sha256: c.sha256, ...(f.bytes !== undefined ? { bytes: c.bytes } : {}) } : f;
      }),
      erasures: [...(json.erasures ?? []), erasure],
    };
    tagFiles.set(JSON_MANIFEST_FILE, Buffer.from(`${JSON.stringify(next, null, 2)}\n`, 'utf8'));
  } else {
    const manifest = replaceManifestLines(
      manifestBytes.toString('utf8'),
      new Map([...changed].map(([p, c]) => [p, c.sha256])),
    );
    tagFiles.set('manifest-sha256.txt', Buffer.from(manifest, 'utf8'));
    const info = (await read('bag-info.txt'))?.toString('utf8') ?? '';
    const oxum = parseTagFile(info).get('Payload-Oxum');
    const [octets, count] = (oxum ?? '0.0').split('.').map(Number) as [number, number];
    const delta = files.reduce((n, f) => n + changed.get(rel(f.key))!.bytes, 0) - (await beforeBytes(files, read, rel));
    const eol = info.includes('\r\n') ? '\r\n' : '\n';
    const lines = info
      .split(/\r?\n/)
      .filter((l) => l !== '')
      .map((l) => (l.startsWith('Payload-Oxum:') ? `Payload-Oxum: ${octets + delta}.${count}` : l));
    lines.push(
      `Steward-Erasure: request ${erasure.requestId} at ${erasure.at}, ${rowsRemoved} rows removed, original package digest ${originalManifestSha256}${signatureRemoved ? ', source signature removed (it covered the original manifest)' : ''}`,
    );
    tagFiles.set('bag-info.txt', Buffer.from(`${lines.join(eol)}${eol}`, 'utf8'));
    const tags = (await read('tagmanifest-sha256.txt'))?.toString('utf8');
    if (tags) {
      tagFiles.set(
        'tagmanifest-sha256.txt',
        Buffer.from(
          replaceManifestLines(
            tags,
            new Map([...tagFiles].map(([name, bytes]) => [name, sha256(bytes)] as [string, string])),
          ),
          'utf8',
        ),
      );
    }
  }
  for (const [name, bytes] of tagFiles) {
    const key = `${prefix}${name}`;
    const before = await read(name);
    const versionId = await write(name, bytes);
    files.push({
      key,
      before: { versionId: original.get(key) ?? null, sha256: sha256(before!), rows: 0 },
      after: { versionId, sha256: sha256(bytes), rows: 0 },
    });
  }

  const written = new Map(files.map((f) => [f.key, f.after.versionId]));
  const keep: { key: string; versionId: string }[] = [];
  for (const key of original.keys()) {
    if (key === signature) continue;
    const versionId = written.has(key)
      ? written.get(key)
      : (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).VersionId;
    if (versionId) keep.push({ key, versionId });
  }
  return { layout, originalManifestSha256, rowsRemoved, files, keep, signatureRemoved };
}

async function beforeBytes(
  files: RewrittenFile[],
  read: (name: string) => Promise<Buffer | undefined>,
  rel: (key: string) => string,
): Promise<number> {
  let n = 0;
  for (const f of files) n += (await read(rel(f.key)))?.length ?? 0;
  return n;
}
