import { z } from 'zod';
import { AuditChainRefSchema } from './audit';
import { BaselineRefSchema, Sha256HexSchema } from './common';
import { ESignatureSchema } from './request';

/** One sanitized object version: where it was and what it held (after NIST SP 800-88 App. G "media" fields). */
export const SanitizedObjectSchema = z.object({
  endpoint: z.string(),
  /** The storage site, as the jurisdiction file names it, where the deployment has more than one. */
  site: z.string().optional(),
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  bytes: z.number().int().nonnegative(),
  /** SHA-256 of the content before deletion. */
  sha256: Sha256HexSchema.nullable(),
  datasetId: z.string().optional(),
});

const ObjectStateSchema = z.object({
  versionId: z.string().nullable(),
  sha256: Sha256HexSchema,
  rows: z.number().int().nonnegative(),
});

/**
 * What a subject's erasure request covered, for its certificate: every place found (an item), what was done with it
 * and on which legal basis (erased: rewritten without the subject's rows, with the versions before and after; kept:
 * the exemption and until when), what remains by design (audit events, encrypted workflow histories) and until when,
 * and how the absence of the subject's tokens was verified.
 */
export const SubjectErasureRecordSchema = z.object({
  requestId: z.string(),
  studies: z.number().int().nonnegative(),
  tokens: z.number().int().nonnegative(),
  tombstoned: z.boolean(),
  items: z.array(
    z.object({
      itemId: z.string(),
      place: z.string(),
      decision: z.enum(['erased', 'kept', 'crypto-erased']),
      legalBasis: z.string(),
      until: z.string().nullable(),
      /** A raw upload rewritten without the subject: each file rewritten, its manifest files last. */
      files: z.array(z.object({ key: z.string(), before: ObjectStateSchema, after: ObjectStateSchema })).optional(),
      object: z
        .object({
          bucket: z.string(),
          key: z.string(),
          before: ObjectStateSchema,
          after: ObjectStateSchema.nullable(),
        })
        .nullable(),
    }),
  ),
  residuals: z.array(z.object({ what: z.string(), legalBasis: z.string(), until: z.string().nullable() })),
  verification: z.object({ performed: z.string(), passed: z.boolean(), details: z.array(z.string()) }),
});
export type SubjectErasureRecord = z.infer<typeof SubjectErasureRecordSchema>;

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
  /** A subject's erasure request: every item found and its outcome, the residuals and the verification. */
  subjectRequest: SubjectErasureRecordSchema.optional(),
  /** The configuration baseline in force when it was issued (absent in certificates issued before baselines). */
  baseline: BaselineRefSchema.nullable().optional(),
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
