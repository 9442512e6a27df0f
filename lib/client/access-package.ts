import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import { ExportRecordSchema } from '../../schemas/subject-request';
import { EXIT, UserError } from '../runtime/errors';
import { getJson } from '../storage/json';
import { exportRecordKey } from '../storage/layout';
import { readObjectText } from '../storage/objects';
import { checkAccessPackage } from '../subject-rights/access-check';

/**
 * Downloads an access request's package from the jurisdiction's exports bucket (the versions its record names) and
 * checks it before anything is written: the manifest's signature and every file's SHA-256. A package that fails the
 * check is not written at all.
 */
export async function downloadAccessPackage(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  options: { requestId: string; out: string; caPem: string },
): Promise<{ out: string; files: number; expiresAt: string; manifestSha256: string }> {
  const record = await getJson(
    s3,
    jurisdiction.buckets.catalog,
    exportRecordKey(options.requestId),
    ExportRecordSchema,
  );
  if (!record) {
    throw new UserError(`request ${options.requestId} has no access package (yet, or any more)`, EXIT.failure);
  }
  const files = new Map<string, Buffer>();
  for (const object of record.objects) {
    const relative = object.key.slice(record.prefix.length);
    files.set(relative, await readObjectText(s3, record.bucket, object.key, 1024 ** 3, object.versionId));
  }
  const { problems } = checkAccessPackage(files, options.caPem);
  if (problems.length > 0) {
    throw new UserError(
      `the access package failed its check; nothing was written:\n  ${problems.join('\n  ')}`,
      EXIT.verificationFailed,
    );
  }
  await mkdir(options.out, { recursive: true });
  if ((await readdir(options.out)).length > 0) throw new UserError(`${options.out} is not empty`);
  for (const [relative, body] of files) {
    const target = path.join(options.out, relative);
    if (!target.startsWith(options.out + path.sep)) throw new UserError(`${relative}: not a path inside the package`);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, body, { flag: 'wx' });
  }
  return { out: options.out, files: files.size, expiresAt: record.expiresAt, manifestSha256: record.manifestSha256 };
}
