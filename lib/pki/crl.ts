import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

export interface RevokedCertificate {
  /** Serial number, lowercase hex. */
  serial: string;
  revokedAt: Date;
}

/** An X.509 v2 CRL of the CA, listing the revoked serials, signed with the CA's key (RSA-SHA256), as PEM. */
export async function createCrl(
  ca: { certificatePem: string; privateKeyPem: string },
  revoked: readonly RevokedCertificate[],
  now: Date,
  validDays = 30,
): Promise<string> {
  const issuer = new x509.X509Certificate(ca.certificatePem.replace(/\r/g, ''));
  const der = createPrivateKey(ca.privateKeyPem).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, RSA_SHA256, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + validDays * 86_400_000),
    signingAlgorithm: RSA_SHA256,
    signingKey: signingKey as unknown as x509.X509CrlCreateParams['signingKey'],
    entries: revoked.map((r) => ({
      serialNumber: r.serial,
      revocationDate: r.revokedAt,
      reason: x509.X509CrlReason.cessationOfOperation,
    })),
  });
  // OpenSSL reads CRLs under the PEM label of RFC 7468, "X509 CRL".
  const base64 = Buffer.from(crl.rawData).toString('base64').replace(/.{64}/g, '$&\n').trimEnd();
  return `-----BEGIN X509 CRL-----\n${base64}\n-----END X509 CRL-----\n`;
}

/** The serials a CRL revokes, after checking that the CA signed it; throws when it did not. */
export async function revokedSerials(crlPem: string, caPem: string): Promise<Set<string>> {
  const crl = new x509.X509Crl(crlPem.replace('X509 CRL', 'CRL').replace('X509 CRL', 'CRL'));
  const ca = new x509.X509Certificate(caPem.replace(/\r/g, ''));
  if (!(await crl.verify({ publicKey: ca }))) throw new Error('the CRL is not signed by the Steward CA');
  return new Set(crl.entries.map((e) => e.serialNumber.toLowerCase().replace(/^0+/, '')));
}
