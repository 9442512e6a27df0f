import { createHmac, randomBytes } from 'node:crypto';
import type { KeyStore } from '../crypto/keystore';
import { canonicalizeIdentifier } from '../crypto/pseudonymize';

/** The key-store id of a jurisdiction's subject-digest key. */
export function subjectDigestKeyId(jurisdiction: string): string {
  return `subjects/${jurisdiction}`;
}

/** The jurisdiction's subject-digest key, created on first use; held by its workers only. */
export function subjectDigestKey(keys: KeyStore, jurisdiction: string): Promise<Buffer> {
  return keys.storeSecret(subjectDigestKeyId(jurisdiction), randomBytes(32));
}

/**
 * A subject's keyed digest in a jurisdiction (HMAC-SHA256 of the canonical identifier): links requests for the same
 * subject, and keeps an erased subject out of later ingestions, without keeping the identifier. Unlike a study
 * token it does not change when a study key is rotated.
 */
export function subjectDigest(key: Buffer, subjectId: string): string {
  return createHmac('sha256', key)
    .update(`steward-subject-digest/1\n${canonicalizeIdentifier(subjectId)}`)
    .digest('hex');
}
