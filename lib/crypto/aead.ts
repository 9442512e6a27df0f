import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM: the one sealing primitive of Steward (key store, re-identification vault, payload codec).
 * Output is iv(12) | tag(16) | ciphertext; `aad` binds the ciphertext to its context (key id, token) so it cannot be
 * moved to another.
 */
export function seal(key: Buffer, plain: Uint8Array, aad?: string | Uint8Array): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  if (aad !== undefined) cipher.setAAD(typeof aad === 'string' ? Buffer.from(aad) : aad);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Opens what `seal` produced; throws when the key, the additional data or any byte is wrong. */
export function open(key: Buffer, sealed: Uint8Array, aad?: string | Uint8Array): Buffer {
  const raw = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('sealed data is too short');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  if (aad !== undefined) decipher.setAAD(typeof aad === 'string' ? Buffer.from(aad) : aad);
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}
