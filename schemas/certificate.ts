import { z } from 'zod';
import { AuditChainRefSchema } from './audit';
import { Sha256HexSchema } from './common';
import { ESignatureSchema } from './request';

/** One sanitized object version: where it was and what it held (after NIST SP 800-88 App. G "media" fields). */
export const SanitizedObjectSchema = z.object({
  endpoint: z.string(),
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  bytes: z.number().int().nonnegative(),
  /** SHA-256 of the content before deletion. */
  sha256: Sha256HexSchema.nullable(),
  datasetId: z.string().optional(),
});

/**
 * A certificate of sanitization (deletion), after NIST SP 800-88 (Rev. 1 App. G sample certificate, Rev. 2):
 * who asked and approved, why and on what legal basis, exactly what was sanitized, how, with which tools, how it was
 * verified and with what result, when, in which workflow, and where the deletion sits in the audit trail. Signed as
 * detached CMS by the jurisdiction's evidence signer and stored write-once in its evidence bucket.
 */
export const DeletionCertificateSchema = z.object({
  format: z.literal('steward-deletion-certificate/1'),
  certificateId: z.string().regex(/^cert-[a-z]{2,8}-[0-9a-f]{32}$/),
  jurisdiction: z.string(),
  reason: z.object({
    kind: z.enum(['retention', 'erasure', 'withdrawal', 'key-destruction']),
    legalBasis: z.string().min(1),
    detail: z.string(),
  }),
  requestedBy: ESignatureSchema.nullable(),
  approvedBy: z.array(ESignatureSchema),
  sanitized: z.object({
    objects: z.array(SanitizedObjectSchema),
    keys: z.array(z.object({ keyId: z.string(), version: z.number().int().positive() })),
  }),
  method: z.object({
    /** NIST SP 800-88 category. */
    category: z.enum(['Clear', 'Purge']),
    techniques: z.array(z.string()).min(1),
    keyIdsDestroyed: z.array(z.string()),
  }),
  tools: z.record(z.string(), z.string()),
  verification: z.object({
    performed: z.array(z.string()).min(1),
    result: z.enum(['passed', 'failed']),
    details: z.array(z.string()),
  }),
  startedAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }),
  auditChain: AuditChainRefSchema,
  issuedAt: z.iso.datetime(),
  issuer: z.object({ name: z.string(), certificateSerial: z.string(), certificateFingerprint: Sha256HexSchema }),
});
export type DeletionCertificate = z.infer<typeof DeletionCertificateSchema>;

export const IssuedCertificateSchema = z.object({
  certificateId: z.string(),
  bucket: z.string(),
  jsonKey: z.string(),
  signatureKey: z.string(),
  sha256: Sha256HexSchema,
});
export type IssuedCertificate = z.infer<typeof IssuedCertificateSchema>;
