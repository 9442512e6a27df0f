import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  privateEncrypt,
  verify,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';

/** DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2): what PKCS #1 v1.5 signs, followed by the 32-byte digest. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

const nativeKeys = new Map<string, KeyObject>();
const parsedCertificates = new Map<string, forge.pki.Certificate>();

/** A certificate parsed once: a sweep signs a certificate per dataset with the same signer and chain. */
function parsedCertificate(pem: string): forge.pki.Certificate {
  let certificate = parsedCertificates.get(pem);
  if (!certificate) {
    certificate = forge.pki.certificateFromPem(pem);
    parsedCertificates.set(pem, certificate);
  }
  return certificate;
}

/**
 * A private key forge's CMS code can sign with, doing the RSA operation in Node's crypto (OpenSSL) instead of forge's
 * JavaScript: RSASSA-PKCS1-v1_5 over the digest forge computed, so the signature is the same, many times faster.
 */
function nativeRsaKey(privateKeyPem: string): { sign(md: forge.md.MessageDigest, scheme?: string): string } {
  let key = nativeKeys.get(privateKeyPem);
  if (!key) {
    key = createPrivateKey(privateKeyPem);
    nativeKeys.set(privateKeyPem, key);
  }
  const native = key;
  return {
    sign(md) {
      if (md.algorithm !== 'sha256') throw new Error(`unexpected digest ${md.algorithm}: Steward signs with SHA-256`);
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = privateEncrypt(
        { key: native, padding: constants.RSA_PKCS1_PADDING },
        Buffer.concat([SHA256_DIGEST_INFO, digest]),
      );
      return signature.toString('binary');
    },
  };
}

/**
 * Signs `content` as detached CMS/PKCS#7 SignedData (DER): SHA-256, RSA, with content type, message digest and
 * signing time as authenticated attributes, and the signer's certificate chain included, so that
 * `openssl cms -verify -binary -inform DER -in X.p7s -content X -CAfile ca.pem` accepts it.
 */
export function signDetached(
  content: Buffer,
  signer: { certificatePem: string; privateKeyPem: string },
  chain: readonly string[],
  /** The signing time to state (default: now); a fixed one makes the signature's bytes reproducible. */
  signedAt?: Date,
): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  const certificate = parsedCertificate(signer.certificatePem);
  p7.addCertificate(certificate);
  for (const pem of chain) p7.addCertificate(parsedCertificate(pem));
  p7.addSigner({
    key: nativeRsaKey(signer.privateKeyPem) as unknown as forge.pki.rsa.PrivateKey,
    certificate,
    digestAlgorithm: forge.pki.oids.sha256!,
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType!, value: forge.pki.oids.data! },
      { type: forge.pki.oids.messageDigest! },
      signedAt
        ? { type: forge.pki.oids.signingTime!, value: signedAt as never }
        : { type: forge.pki.oids.signingTime! },
    ],
  });
  p7.sign({ detached: true });
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'binary');
}

interface SignerInfoAsn1 {
  value: forge.asn1.Asn1[];
}

/**
 * Checks a detached CMS signature over `content`: the message digest attribute equals the content's SHA-256, and the
 * signature over the authenticated attributes verifies with the certificate it names, which is returned (PEM) for the
 * caller to check against its CA. Throws with the reason otherwise.
 */
export function verifyDetached(p7sDer: Buffer, content: Buffer): { signerCertificatePem: string; signedAt?: Date } {
  let message: forge.pkcs7.PkcsSignedData & { rawCapture?: Record<string, unknown> };
  try {
    message = forge.pkcs7.messageFromAsn1(
      forge.asn1.fromDer(forge.util.createBuffer(p7sDer.toString('binary'))),
    ) as typeof message;
  } catch (error) {
    throw new Error(`not a CMS SignedData structure (${(error as Error).message})`);
  }
  const signerInfos = (message.rawCapture?.signerInfos ?? []) as SignerInfoAsn1[];
  if (signerInfos.length !== 1) throw new Error(`expected one signer, found ${signerInfos.length}`);
  const info = signerInfos[0]!.value;
  // SignerInfo ::= SEQUENCE { version, sid (issuerAndSerialNumber), digestAlgorithm, [0] signedAttrs, sigAlg, signature }
  const sid = info[1]!.value as forge.asn1.Asn1[];
  const serial = forge.util.bytesToHex(sid[1]!.value as string).toLowerCase();
  const signed = info[3]!;
  const signature = Buffer.from(info[5]!.value as string, 'binary');
  const certificate = message.certificates.find(
    (c) => c.serialNumber.toLowerCase().replace(/^0+/, '') === serial.replace(/^0+/, ''),
  );
  if (!certificate) throw new Error('the signer certificate is not included');
  let digest: string | undefined;
  let signedAt: Date | undefined;
  for (const attribute of signed.value as forge.asn1.Asn1[]) {
    const [oid, values] = attribute.value as forge.asn1.Asn1[];
    const type = forge.asn1.derToOid(oid!.value as string);
    const value = (values!.value as forge.asn1.Asn1[])[0]!;
    if (type === forge.pki.oids.messageDigest) digest = forge.util.bytesToHex(value.value as string);
    if (type === forge.pki.oids.signingTime) signedAt = forge.asn1.utcTimeToDate(value.value as string);
  }
  if (digest !== createHash('sha256').update(content).digest('hex')) {
    throw new Error('the content does not match the signed message digest: it was changed after signing');
  }
  // The signature covers the DER of the attributes as a SET OF (tag 0x31), not as the [0] IMPLICIT field.
  const attributes = Buffer.from(forge.asn1.toDer(signed).getBytes(), 'binary');
  attributes[0] = 0x31;
  const certificatePem = forge.pki.certificateToPem(certificate);
  if (!verify('sha256', attributes, createPublicKey(certificatePem), signature)) {
    throw new Error('the signature does not verify with the signer certificate');
  }
  return { signerCertificatePem: certificatePem, ...(signedAt ? { signedAt } : {}) };
}
