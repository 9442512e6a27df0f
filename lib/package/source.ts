import { createHash, X509Certificate } from 'node:crypto';
import type { PackageProblem } from '../../schemas/ingest';
import { JSON_MANIFEST_FILE, PACKAGE_METADATA_FILE } from '../../schemas/package';
import type { SourceRegistry, SourceSignature } from '../../schemas/source';
import { verifyDetached } from '../pki/cms';
import { fingerprintOf } from '../pki/x509';
import { parseBagManifest } from './rules';

/**
 * The file a source signs: a JSON package's manifest (its metadata is in it), or a bag's tag manifest, which lists the
 * SHA-256 of the payload manifest, bag-info.txt and Steward's metadata file, so the signature covers all three.
 */
export function signedFileOf(layout: 'bagit' | 'json'): string {
  return layout === 'bagit' ? 'tagmanifest-sha256.txt' : JSON_MANIFEST_FILE;
}

/** The detached CMS signature (DER) beside the signed file, as `openssl cms -sign -binary -outform DER` writes it. */
export function signatureFileOf(layout: 'bagit' | 'json'): string {
  return `${signedFileOf(layout)}.p7s`;
}

/** The tag files a bag's tag manifest must list for its signature to cover the package. */
const COVERED_TAG_FILES = ['manifest-sha256.txt', 'bag-info.txt', PACKAGE_METADATA_FILE];

export interface SourceTrust {
  /** The study's registered sources, or undefined when it registered none. */
  registry: SourceRegistry | undefined;
  /** Whether an unsigned package is refused (the study's registry or the jurisdiction says so). */
  required: boolean;
  /** The Steward CA, and the serials its CRL revokes: a source certificate the CA issued can be revoked there. */
  caPem: string;
  revoked: ReadonlySet<string>;
  now: Date;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Authenticates a package's source: the signature over the signed file verifies, its signer is valid now and not
 * revoked, and (for a bag) the tag manifest covers the payload manifest, bag-info.txt and the metadata as they are.
 * Where the study or jurisdiction requires signatures, the signer must be one of the study's registered sources (by
 * certificate fingerprint) and an unsigned package is refused; elsewhere an unsigned package passes, and a signature
 * that verifies is recorded with whether its signer is registered. A signature that does not verify is always refused. Problems name the file and the rule, never a certificate's or a file's content.
 */
export async function checkSourceSignature(
  layout: 'bagit' | 'json',
  read: (name: string) => Promise<Buffer | undefined>,
  trust: SourceTrust,
): Promise<{ problems: PackageProblem[]; signature: SourceSignature | null }> {
  const signedFile = signedFileOf(layout);
  const signatureFile = signatureFileOf(layout);
  const p7s = await read(signatureFile);
  const refuse = (rule: string, file = signatureFile) => ({ problems: [{ file, rule }], signature: null });
  if (!p7s) {
    return trust.required
      ? refuse('required: the study accepts only packages whose manifest a registered source signed')
      : { problems: [], signature: null };
  }
  const signed = await read(signedFile);
  if (!signed) return refuse(`the signature needs ${signedFile}, which the package lacks`, signedFile);
  let signer: { signerCertificatePem: string; signedAt?: Date };
  try {
    signer = verifyDetached(p7s, signed);
  } catch (error) {
    return refuse(`does not verify: ${(error as Error).message}`);
  }
  const certificate = new X509Certificate(signer.signerCertificatePem);
  const fingerprint = fingerprintOf(certificate);
  const source = trust.registry?.sources.find((s) => s.fingerprint === fingerprint);
  // Where signatures are required, only a registered source's counts; elsewhere another signer is recorded as such.
  if (!source && trust.required) return refuse('signed by a certificate that is not a registered source of the study');
  const name = source?.name ?? certificate.subject.replaceAll('\n', ', ');
  if (new Date(certificate.validTo) < trust.now || new Date(certificate.validFrom) > trust.now) {
    return refuse(`signed by "${name}", whose certificate is not valid now`);
  }
  const ca = new X509Certificate(trust.caPem);
  const serial = certificate.serialNumber.toLowerCase().replace(/^0+/, '');
  if (certificate.checkIssued(ca) && certificate.verify(ca.publicKey) && trust.revoked.has(serial)) {
    return refuse(`signed by "${name}", whose certificate is revoked`);
  }
  if (layout === 'bagit') {
    const problems: PackageProblem[] = [];
    const listed = new Map(parseBagManifest(signed.toString('utf8'), signedFile, problems).map((e) => [e.path, e]));
    for (const name of COVERED_TAG_FILES) {
      const entry = listed.get(name);
      const bytes = await read(name);
      if (!entry) problems.push({ file: signedFile, field: name, rule: 'a signed tag manifest must list this file' });
      else if (!bytes || sha256(bytes) !== entry.sha256) {
        problems.push({ file: name, rule: 'does not match its SHA-256 in the signed tag manifest' });
      }
    }
    if (problems.length > 0) return { problems, signature: null };
  }
  return {
    problems: [],
    signature: {
      source: name,
      registered: source !== undefined,
      fingerprint,
      subject: certificate.subject.replaceAll('\n', ', '),
      serial,
      signedAt: signer.signedAt?.toISOString() ?? null,
      signedFile,
    },
  };
}
