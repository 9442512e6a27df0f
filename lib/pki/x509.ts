import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  type X509Certificate,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';
import { z } from 'zod';
import { RoleSchema, type Role } from '../../schemas/common';

/** An X.509 certificate's facts Steward relies on. */
export interface CertificateInfo {
  /** Printed name (subject CN). */
  name: string;
  /** The role of a person's or worker's identity; `signer` for an evidence signer, `ca` for the CA. */
  role: Role | 'signer' | 'ca';
  /** Serial number, lowercase hex. */
  serial: string;
  /** SHA-256 of the DER certificate, lowercase hex. */
  fingerprint: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
}

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

const ORGANIZATION = 'Steward';

/** An RSA key pair from Node's crypto (native, fast), as PEM. */
export function generateKeyPair(bits = 3072): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** A positive serial number of 16 random bytes, hex. */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  bytes[0]! |= 0x01;
  return bytes.toString('hex');
}

function forgePrivateKey(pem: string): forge.pki.rsa.PrivateKey {
  // forge reads PKCS#1 keys; Node writes them from any private key it holds.
  const pkcs1 = createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString();
  return forge.pki.privateKeyFromPem(pkcs1);
}

export interface CertificateRequest {
  commonName: string;
  /** Organizational unit: the role for identities, the purpose for Steward's own certificates. */
  unit: string;
  publicKeyPem: string;
  validDays: number;
  /** A CA certificate (self-signed when `issuer` is absent). */
  ca?: boolean;
  issuer?: { certificatePem: string; privateKeyPem: string };
  /** Signs the certificate when no issuer is given (self-signed). */
  selfPrivateKeyPem?: string;
  /** A TLS endpoint's certificate: its uses, and the names and addresses it answers for. */
  tls?: { server?: boolean; client?: boolean; dnsNames?: string[]; ips?: string[] };
}

/** Issues an X.509 v3 certificate: by the given CA, or self-signed for a CA of its own. */
export function issueCertificate(request: CertificateRequest): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(request.publicKeyPem);
  cert.serialNumber = newSerial();
  const now = new Date();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + request.validDays * 86_400_000);
  const subject: forge.pki.CertificateField[] = [
    {
      name: 'commonName',
      value: request.commonName,
      valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class,
    },
    { name: 'organizationalUnitName', value: request.unit },
    { name: 'organizationName', value: ORGANIZATION },
  ];
  cert.setSubject(subject);
  const issuerCert = request.issuer ? forge.pki.certificateFromPem(request.issuer.certificatePem) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: request.ca === true, critical: true },
    request.ca
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : request.tls
        ? { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true }
        : { name: 'keyUsage', digitalSignature: true, nonRepudiation: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (request.tls) {
    extensions.push({
      name: 'extKeyUsage',
      serverAuth: request.tls.server === true,
      clientAuth: request.tls.client === true,
    });
    const altNames = [
      ...(request.tls.dnsNames ?? []).map((value) => ({ type: 2, value })),
      ...(request.tls.ips ?? []).map((ip) => ({ type: 7, ip })),
    ];
    if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  }
  if (issuerCert) {
    extensions.push({
      name: 'authorityKeyIdentifier',
      keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes(),
    });
  }
  cert.setExtensions(extensions);
  const signingKey = request.issuer?.privateKeyPem ?? request.selfPrivateKeyPem;
  if (!signingKey) throw new Error('a certificate needs an issuer, or its own key to sign itself');
  cert.sign(forgePrivateKey(signingKey), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A certificate's SHA-256 fingerprint (of its DER), lowercase hex: how Steward pins and names a certificate. */
export function fingerprintOf(certificate: X509Certificate): string {
  return certificate.fingerprint256.replaceAll(':', '').toLowerCase();
}

export function certificateDer(pem: string): Buffer {
  return Buffer.from(
    forge.asn1.toDer(forge.pki.certificateToAsn1(forge.pki.certificateFromPem(pem))).getBytes(),
    'binary',
  );
}

/** Reads what Steward needs from a certificate; throws when it is not one of Steward's (no valid role). */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = forge.pki.certificateFromPem(pem);
  const field = (name: string) => cert.subject.getField(name)?.value as string | undefined;
  const role = RoleSchema.or(z.enum(['signer', 'ca'])).safeParse(field('OU'));
  if (!role.success) throw new Error(`certificate ${cert.serialNumber} names no Steward role`);
  return {
    name: Buffer.from(field('CN') ?? '', 'binary').toString('utf8'),
    role: role.data,
    serial: cert.serialNumber.toLowerCase(),
    fingerprint: createHash('sha256').update(certificateDer(pem)).digest('hex'),
    issuer: (cert.issuer.getField('CN')?.value as string | undefined) ?? '',
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
  };
}

/**
 * Why a certificate does not chain to the CA at `at` (bad signature, other issuer, not yet or no longer valid), or
 * undefined when it does.
 */
export function chainProblem(certificatePem: string, caPem: string, at: Date): string | undefined {
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromPem(certificatePem);
  } catch {
    return 'the certificate cannot be read';
  }
  const ca = forge.pki.certificateFromPem(caPem);
  try {
    if (!ca.verify(cert)) return 'the certificate was not issued by the Steward CA';
  } catch {
    return 'the certificate was not issued by the Steward CA';
  }
  if (at < cert.validity.notBefore)
    return `the certificate is not valid before ${cert.validity.notBefore.toISOString()}`;
  if (at > cert.validity.notAfter) return `the certificate expired on ${cert.validity.notAfter.toISOString()}`;
  return undefined;
}

/** A private key for Node's crypto, from PEM (encrypted PKCS#8 with its passphrase, or plain). */
export function privateKey(pem: string, passphrase?: string): KeyObject {
  return createPrivateKey(passphrase === undefined ? pem : { key: pem, format: 'pem', passphrase });
}

/** PKCS#8 PEM encrypted with AES-256-CBC under a key derived from the passphrase (PBES2). */
export function encryptPrivateKey(pem: string, passphrase: string): string {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

export { forgePrivateKey };
