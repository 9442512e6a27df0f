import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { z } from 'zod';
import { getObjectOrUndefined } from './objects';

/**
 * The one way Steward writes a JSON object to a bucket: checked against its schema first, so a record that would not
 * read back is never stored. Returns the version written (null in an unversioned bucket).
 */
export async function putJson<S extends z.ZodType>(
  s3: S3Client,
  bucket: string,
  key: string,
  schema: S,
  value: z.input<S>,
  options: {
    pretty?: boolean;
    /**
     * A conditional write: stored only while the object still has this ETag (`ifMatch`), or only when there is no
     * such object yet (`ifNoneMatch: '*'`); otherwise S3 answers 412 and nothing is written.
     */
    condition?: { ifMatch: string } | { ifNoneMatch: '*' };
  } = {},
): Promise<{ versionId: string | null }> {
  const checked = schema.parse(value);
  const condition = options.condition;
  const res = await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: options.pretty ? JSON.stringify(checked, null, 2) : JSON.stringify(checked),
      ContentType: 'application/json',
      ...(condition && 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : {}),
      ...(condition && 'ifNoneMatch' in condition ? { IfNoneMatch: condition.ifNoneMatch } : {}),
    }),
  );
  return { versionId: res.VersionId ?? null };
}

/** The one way Steward reads a JSON object back: parsed with its schema; undefined when there is no such object. */
export async function getJson<S extends z.ZodType>(
  s3: S3Client,
  bucket: string,
  key: string,
  schema: S,
): Promise<z.infer<S> | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, key);
  return raw === undefined ? undefined : parseJson(raw, schema);
}

/** Bytes of a stored JSON object, parsed with its schema (BOM-tolerant). */
function parseJson<S extends z.ZodType>(raw: Buffer, schema: S): z.infer<S> {
  const text = raw.toString('utf8');
  return schema.parse(JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text));
}
