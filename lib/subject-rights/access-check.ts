import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AccessManifestSchema, type AccessManifest } from '../../schemas/subject-request';
import { verifyDetached } from '../pki/cms';
import { certificateInfo, chainProblem } from '../pki/x509';
import { MANIFEST_FILE, SIGNATURE_FILE } from './access-package';

/**
 * Checks an access package: the manifest's CMS signature (by an evidence signer whose certificate chains to the
 * Steward CA), and that the files are exactly those the manifest lists, each with its SHA-256. Empty problems: intact.
 */
export function checkAccessPackage(
  files: ReadonlyMap<string, Buffer>,
  caPem: string,
): { manifest: AccessManifest | undefined; problems: string[] } {
  const problems: string[] = [];
  const manifestBytes = files.get(MANIFEST_FILE);
  const signature = files.get(SIGNATURE_FILE);
  if (!manifestBytes) return { manifest: undefined, problems: [`${MANIFEST_FILE} is missing`] };
  let manifest: AccessManifest | undefined;
  try {
    const parsed = AccessManifestSchema.safeParse(JSON.parse(manifestBytes.toString('utf8')));
    if (parsed.success) manifest = parsed.data;
    else
      problems.push(
        `${MANIFEST_FILE} is not an access manifest: ${z.prettifyError(parsed.error).replace(/\n\s*/g, ' ')}`,
      );
  } catch {
    problems.push(`${MANIFEST_FILE} is not JSON`);
  }
  if (!signature) problems.push(`${SIGNATURE_FILE} is missing`);
  else {
    try {
      const { signerCertificatePem } = verifyDetached(signature, manifestBytes);
      const chain = chainProblem(signerCertificatePem, caPem, new Date(manifest?.createdAt ?? Date.now()));
      if (chain) problems.push(`signer certificate: ${chain}`);
      const signer = certificateInfo(signerCertificatePem);
      if (signer.role !== 'signer') problems.push(`signed by ${signer.name}, who is not an evidence signer`);
    } catch (error) {
      problems.push(`signature: ${(error as Error).message}`);
    }
  }
  if (manifest) {
    const listed = new Set(manifest.files.map((f) => f.path));
    for (const f of manifest.files) {
      const body = files.get(f.path);
      if (!body) problems.push(`${f.path}: listed in the manifest but missing`);
      else if (createHash('sha256').update(body).digest('hex') !== f.sha256) {
        problems.push(`${f.path}: SHA-256 differs from the manifest (altered)`);
      }
    }
    for (const name of files.keys()) {
      if (name !== MANIFEST_FILE && name !== SIGNATURE_FILE && !listed.has(name)) {
        problems.push(`${name}: not listed in the manifest`);
      }
    }
  }
  return { manifest, problems };
}
