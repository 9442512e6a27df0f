import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import type { SealedBox } from '../../schemas/vault';
import { fingerprintOf } from '../pki/x509';

/**
 * Encrypts a result to one person's certificate: a fresh AES-256-GCM key wrapped with RSA-OAEP (SHA-256) under the
 * certificate's public key. Only the holder of the matching private key can open it; the box names the certificate
 * by its SHA-256 fingerprint. What Steward returns through a workflow history when the result is personal data.
 */
export function sealTo(certificatePem: string, plaintext: Buffer): SealedBox {
  const certificate = new X509Certificate(certificatePem);
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const wrapped = publicEncrypt(
    { key: createPublicKey(certificatePem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    key,
  );
  return {
    format: 'steward-sealed/1',
    recipient: fingerprintOf(certificate),
    key: wrapped.toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
}

/** Opens a box sealed to the certificate of `privateKey`; a wrong key or an altered box is an error. */
export function openSealed(privateKey: KeyObject, box: SealedBox): Buffer {
  const key = privateDecrypt(
    { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    Buffer.from(box.key, 'base64'),
  );
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(box.iv, 'base64'));
  decipher.setAuthTag(Buffer.from(box.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(box.ciphertext, 'base64')), decipher.final()]);
}
