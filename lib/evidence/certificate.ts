import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { certificateBundleKey, certificateKeys } from '../storage/layout';
import { getObjectOrUndefined } from '../storage/objects';
import { EXIT, UserError } from '../runtime/errors';
import { AuditSegmentSchema } from '../../schemas/audit';
import { DeletionCertificateSchema, type DeletionCertificate } from '../../schemas/certificate';
import type { ESignature } from '../../schemas/request';
import { verifyDetached } from '../pki/cms';
import { certificateInfo, chainProblem } from '../pki/x509';

export { CERTIFICATES_PREFIX, certificateBundleKey, certificateKeys } from '../storage/layout';

export const CertificateBundleSchema = z.object({
  format: z.literal('steward-certificate-bundle/1'),
  certificates: z.array(
    z.object({
      certificateId: z.string(),
      /** The certificate's exact bytes (`cert.json`), base64. */
      json: z.string(),
      /** Its detached CMS signature (`cert.p7s`, DER), base64. */
      p7s: z.string(),
    }),
  ),
});
export type CertificateBundle = z.infer<typeof CertificateBundleSchema>;

/**
 * A stored certificate bundle, read back. One that is not a bundle (truncated, changed) fails verification naming the
 * object and the rule broken.
 */
export function parseCertificateBundle(raw: Buffer, source: string): CertificateBundle {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new UserError(
      `${source}: the certificate bundle is not JSON (truncated or changed after it was written)`,
      EXIT.verificationFailed,
    );
  }
  const parsed = CertificateBundleSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(
      `${source}: not a certificate bundle (steward-certificate-bundle/1): ${issue.path.length > 0 ? `field "${issue.path.join('.')}": ` : ''}${issue.message}`,
      EXIT.verificationFailed,
    );
  }
  return parsed.data;
}

/** A certificate's bytes and signature from an evidence bucket: stored alone, or in its bundle. */
export async function readCertificateFiles(
  s3: S3Client,
  bucket: string,
  certificateId: string,
): Promise<{ json: Buffer; p7s: Buffer; source: string } | undefined> {
  const keys = certificateKeys(certificateId);
  const json = await getObjectOrUndefined(s3, bucket, keys.json);
  if (json) {
    const p7s = await getObjectOrUndefined(s3, bucket, keys.p7s);
    return p7s ? { json, p7s, source: `s3://${bucket}/${keys.json}` } : undefined;
  }
  const bundleKey = certificateBundleKey(certificateId);
  const raw = bundleKey ? await getObjectOrUndefined(s3, bucket, bundleKey) : undefined;
  if (!raw) return undefined;
  const entry = parseCertificateBundle(raw, `s3://${bucket}/${bundleKey}`).certificates.find(
    (c) => c.certificateId === certificateId,
  );
  return entry
    ? {
        json: Buffer.from(entry.json, 'base64'),
        p7s: Buffer.from(entry.p7s, 'base64'),
        source: `s3://${bucket}/${bundleKey} (${certificateId})`,
      }
    : undefined;
}

/** The jurisdiction a certificate id names (`cert-<jurisdiction>-<32 hex digits>`). */
export function jurisdictionOfCertificateId(certificateId: string): string | undefined {
  return /^cert-([a-z]{2,8})-[0-9a-f]{32}$/.exec(certificateId)?.[1];
}

/** The bytes that are signed: the certificate as indented JSON, as `cert.json` holds it. */
export function certificateBytes(certificate: DeletionCertificate): Buffer {
  return Buffer.from(`${JSON.stringify(certificate, null, 2)}\n`);
}

function signatureLine(role: string, s: ESignature): string {
  return `${role}: ${s.printedName} (${s.role}), ${s.signedAt} UTC — meaning: ${s.meaning} [certificate ${s.certificateSerial}, record SHA-256 ${s.recordSha256}]`;
}

/** The certificate as a readable document; the manifestation of every e-signature is shown (21 CFR 11.50). */
export function renderCertificate(c: DeletionCertificate): string {
  const lines = [
    `CERTIFICATE OF SANITIZATION ${c.certificateId}`,
    `(after NIST SP 800-88, Rev. 1 App. G / Rev. 2)`,
    '',
    `Jurisdiction      ${c.jurisdiction}`,
    `Reason            ${c.reason.kind}: ${c.reason.detail}`,
    `Legal basis       ${c.reason.legalBasis}`,
    c.requestedBy ? signatureLine('Requested by', c.requestedBy) : 'Requested by: Steward (scheduled)',
    ...c.approvedBy.map((s) => signatureLine('Approved by', s)),
    '',
    `Sanitized (${c.sanitized.objects.length} object versions, ${c.sanitized.keys.length} keys):`,
    ...c.sanitized.objects.map(
      (o) =>
        `  ${o.site ? `${o.site} ` : ''}${o.endpoint} s3://${o.bucket}/${o.key} version ${o.versionId ?? '-'}  ${o.bytes} bytes  sha256 ${o.sha256 ?? '-'}`,
    ),
    ...c.sanitized.keys.map((k) => `  key ${k.keyId} (version ${k.version})`),
    '',
    `Method            ${c.method.category}: ${c.method.techniques.join('; ')}`,
    ...(c.method.keyIdsDestroyed.length ? [`Keys destroyed    ${c.method.keyIdsDestroyed.join(', ')}`] : []),
    `Tools             ${Object.entries(c.tools)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `Verification      ${c.verification.result.toUpperCase()}: ${c.verification.performed.join('; ')}`,
    ...c.verification.details.map((d) => `                  ${d}`),
    `Started           ${c.startedAt}`,
    `Completed         ${c.completedAt}`,
    `Workflow          ${c.workflow.workflowId} (run ${c.workflow.runId})`,
    `Audit trail       ${c.auditChain.jurisdiction} position ${c.auditChain.position} (segment ${c.auditChain.segment}, event ${c.auditChain.eventId}, hash ${c.auditChain.eventHash})`,
    `Issued            ${c.issuedAt} by ${c.issuer.name} (certificate ${c.issuer.certificateSerial})`,
  ];
  return `${lines.join('\n')}\n`;
}

export interface CertificateCheck {
  certificate: DeletionCertificate | undefined;
  problems: string[];
}

/**
 * Checks a certificate file and its detached signature: the CMS signature over exactly these bytes, the signer's
 * chain to the Steward CA, that the signer is an evidence signer and the one the certificate names, and the schema.
 */
export function checkCertificate(json: Buffer, p7s: Buffer, caPem: string): CertificateCheck {
  const problems: string[] = [];
  let certificate: DeletionCertificate | undefined;
  try {
    const parsed = DeletionCertificateSchema.safeParse(JSON.parse(json.toString('utf8')));
    if (parsed.success) certificate = parsed.data;
    else problems.push(`not a deletion certificate: ${z.prettifyError(parsed.error).replace(/\n\s*/g, ' ')}`);
  } catch {
    problems.push('not a deletion certificate: the file is not JSON');
  }
  try {
    const { signerCertificatePem } = verifyDetached(p7s, json);
    const signer = certificateInfo(signerCertificatePem);
    const chain = chainProblem(signerCertificatePem, caPem, new Date(certificate?.issuedAt ?? Date.now()));
    if (chain) problems.push(`signer certificate: ${chain}`);
    if (signer.role !== 'signer') problems.push(`signed by ${signer.name}, who is not an evidence signer`);
    if (certificate && signer.fingerprint !== certificate.issuer.certificateFingerprint) {
      problems.push('signed by another certificate than the issuer it names');
    }
  } catch (error) {
    problems.push(`signature: ${(error as Error).message}`);
  }
  return { certificate, problems };
}

/** Whether the audit segment a certificate cites holds its event, at its position, with its chain hash. */
export function auditReferenceProblem(certificate: DeletionCertificate, segment: unknown): string | undefined {
  const parsed = AuditSegmentSchema.safeParse(segment);
  const ref = certificate.auditChain;
  if (!parsed.success) return `audit segment ${ref.segment} of ${ref.jurisdiction} is missing or unreadable`;
  const entry = parsed.data.entries.find((e) => e.position === ref.position);
  if (!entry) return `audit segment ${ref.segment} holds no event at position ${ref.position}`;
  if (entry.event.id !== ref.eventId || entry.hash !== ref.eventHash) {
    return `the event at position ${ref.position} is not the one the certificate cites`;
  }
  if (
    entry.event.targets.certificateId !== undefined &&
    entry.event.targets.certificateId !== certificate.certificateId
  ) {
    return 'the cited audit event is about another certificate';
  }
  return undefined;
}
