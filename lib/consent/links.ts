import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ConsentEntry } from '../../schemas/consent';
import { writeConsentPart } from '../storage/catalog';

/** A registry part's id: its kind and a digest of what names it (a file's checksum, a request, a link set). */
export function consentPartId(kind: string, ref: string): string {
  return `${kind}-${createHash('sha256').update(ref).digest('hex').slice(0, 32)}`;
}

/**
 * Writes link records (see `linkEntry`) as one registry part, none when there are none. The part is named by the
 * links it holds, so writing the same links again rewrites the same part, and other links never replace it.
 */
export async function writeConsentLinks(
  s3: S3Client,
  bucket: string,
  part: { jurisdiction: string; studyId: string; createdAt: string; entries: readonly ConsentEntry[] },
): Promise<void> {
  if (part.entries.length === 0) return;
  const entries = [...part.entries].sort((a, b) => a.token.localeCompare(b.token));
  await writeConsentPart(s3, bucket, {
    format: 'steward-consent-part/1',
    jurisdiction: part.jurisdiction,
    studyId: part.studyId,
    partId: consentPartId('link', JSON.stringify(entries)),
    kind: 'link',
    createdAt: part.createdAt,
    entries,
  });
}
