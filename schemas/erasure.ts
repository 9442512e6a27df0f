import { z } from 'zod';
import { AuditChainRefSchema } from './audit';
import { DeletionCertificateSchema, SubjectErasureRecordSchema } from './certificate';
import { PrincipalSchema, Sha256HexSchema } from './common';
import { ESignatureSchema } from './request';

/** Object versions to delete: prefixes (ending in `/`) or exact keys, per bucket. */
export const ObjectTargetSchema = z.object({
  bucket: z.string().min(1),
  prefixes: z.array(z.string().min(1)).min(1),
  /** Delete versions under GOVERNANCE retention (the bucket policy grants this to Steward's workers only). */
  bypassGovernance: z.boolean(),
  /** Versions that stay: an object rewritten without a subject's rows keeps its new version, loses every older one. */
  keep: z.array(z.object({ key: z.string(), versionId: z.string() })).default([]),
});
export type ObjectTarget = z.infer<typeof ObjectTargetSchema>;

/** One object version as it was before its erasure: where, how big, and what it held (SHA-256). */
export const ErasedVersionSchema = z.object({
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  bytes: z.number().int().nonnegative(),
  sha256: Sha256HexSchema.nullable(),
  deleteMarker: z.boolean().default(false),
});
export type ErasedVersion = z.infer<typeof ErasedVersionSchema>;

/** The object versions of one unit, with the checks that must read as absent afterwards. */
export const ObjectErasureSchema = z.object({
  targets: z.array(ObjectTargetSchema),
  /** SHA-256 already known for versions (from a dataset record), so they need not be read before deletion. */
  known: z
    .array(z.object({ bucket: z.string(), key: z.string(), versionId: z.string().nullable(), sha256: Sha256HexSchema }))
    .default([]),
  /**
   * Dataset records (in the catalog) that describe the unit: read before anything is deleted, so the SHA-256 of the
   * outputs they list, and their own, are known without reading those versions.
   */
  records: z.array(z.object({ bucket: z.string(), key: z.string() })).default([]),
  /** Keys that must read as absent afterwards (HEAD → 404). */
  absent: z.array(z.object({ bucket: z.string(), key: z.string() })).default([]),
});
export type ObjectErasure = z.infer<typeof ObjectErasureSchema>;

const DatasetUnitSchema = z.object({ datasetId: z.string(), studyId: z.string() });

/** What one certificate covers: a dataset, a raw package, a study key version; each named by its parts. */
export const ErasureUnitSchema = z
  .object({
    unitId: z.string().min(1).max(500),
    /** The audit event that records the unit's erasure. */
    event: z.enum(['dataset.deleted', 'package.deleted', 'export.deleted', 'key.destroyed', 'subject.erased']),
    targets: z.object({
      datasetId: z.string().optional(),
      studyId: z.string().optional(),
      packageId: z.string().optional(),
      /** An access package's request. */
      requestId: z.string().optional(),
    }),
    reason: DeletionCertificateSchema.shape.reason,
    /** Why, in the words of the audit event (the rule's decision, the signed request's meaning). */
    note: z.string().max(1000),
    /** Rules and dates that decided it, for the audit event: never personal data. */
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
    /**
     * A curated dataset, whole: every version of its objects (GOVERNANCE overridden) and of its catalog record (read
     * first, for the digests it lists), the record's absence, and its vault shard.
     */
    dataset: DatasetUnitSchema.optional(),
    objects: ObjectErasureSchema.optional(),
    /** The study vault's entries for these datasets (identifiers kept for re-identification), through its writer. */
    vault: z.object({ studyId: z.string(), datasetIds: z.array(z.string()).min(1) }).optional(),
    /** A retired study key version, destroyed in the key store (cryptographic erase). */
    keyVersion: z.object({ studyId: z.string(), version: z.number().int().positive() }).optional(),
    /** A subject's erasure request: what its certificate states beyond the versions deleted. */
    subjectRequest: SubjectErasureRecordSchema.optional(),
  })
  .refine((u) => u.dataset || u.objects || u.vault || u.keyVersion || u.subjectRequest, {
    message: 'a unit must name what it erases',
  });
export type ErasureUnit = z.infer<typeof ErasureUnitSchema>;
export type ErasureUnitInput = z.input<typeof ErasureUnitSchema>;

/**
 * One erasure operation: its id (unique, and the journal's name), what it erases, why, and who authorized it. Every
 * deletion Steward makes is one: a retention sweep's batch, a key destruction, a subject's erasure.
 */
export const ErasureOperationSchema = z.object({
  operationId: z
    .string()
    .regex(/^[A-Za-z0-9._:@-]+(?:\/[A-Za-z0-9._:@-]+)*$/)
    .max(300),
  jurisdiction: z.string(),
  /** How the operation names itself in certificates and events, e.g. `retention sweep … batch datasets-3`. */
  label: z.string().min(1).max(300),
  principal: PrincipalSchema,
  requestedBy: ESignatureSchema.nullable(),
  approvedBy: z.array(ESignatureSchema),
  requestId: z.string().nullable(),
  /** Its certificates are stored together in one bundle object (a sweep's batch), or each alone. */
  bundled: z.boolean(),
  /** Added to every event of the operation's details (e.g. the sweep's id). */
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
  units: z.array(ErasureUnitSchema).min(1).max(1000),
});
export type ErasureOperation = z.infer<typeof ErasureOperationSchema>;
export type ErasureOperationInput = z.input<typeof ErasureOperationSchema>;

/** What an operation did, unit by unit: counts only (the versions are in its journal and its certificates). */
export const ErasureResultSchema = z.object({
  operationId: z.string(),
  erased: z.array(
    z.object({
      unitId: z.string(),
      certificateId: z.string(),
      versions: z.number().int().nonnegative(),
      bytes: z.number().int().nonnegative(),
      verified: z.boolean(),
      keyIds: z.array(z.string()),
    }),
  ),
  /** Units not erased, with why (and the failure type, when a step refused outright). */
  failed: z.array(z.object({ unitId: z.string(), reason: z.string(), errorType: z.string().optional() })),
  /** Where the certificates are stored (one object per certificate, or one bundle for several). */
  stored: z.object({ bucket: z.string(), key: z.string(), sha256: Sha256HexSchema }).nullable(),
});
export type ErasureResult = z.infer<typeof ErasureResultSchema>;

export const EraseObjectsInputSchema = z.object({
  jurisdiction: z.string(),
  operationId: ErasureOperationSchema.shape.operationId,
  units: z
    .array(
      z.object({
        unitId: z.string(),
        dataset: DatasetUnitSchema.optional(),
        objects: ObjectErasureSchema.optional(),
      }),
    )
    .min(1),
});
export type EraseObjectsInput = z.input<typeof EraseObjectsInputSchema>;

/** Per unit: how much went, and whether its absence was verified. */
export const EraseObjectsResultSchema = z.object({
  erased: z.array(z.object({ unitId: z.string(), versions: z.number(), bytes: z.number(), verified: z.boolean() })),
  failed: z.array(z.object({ unitId: z.string(), reason: z.string() })),
});
export type EraseObjectsResult = z.infer<typeof EraseObjectsResultSchema>;

/** Versions removed by another writer for a unit (its vault shards), with their verification. */
export const ErasedElsewhereSchema = z.object({
  versions: z.array(ErasedVersionSchema),
  verification: z.string(),
  verified: z.boolean(),
});

export const DestroyedKeySchema = z.object({
  keyId: z.string(),
  version: z.number().int().positive(),
  verification: z.array(z.string()),
  verified: z.boolean(),
});

/** The certificates of one operation, each citing its sealed audit event. */
export const IssueErasureCertificatesInputSchema = z.object({
  jurisdiction: z.string(),
  operationId: ErasureOperationSchema.shape.operationId,
  label: z.string(),
  bundled: z.boolean(),
  requestedBy: ESignatureSchema.nullable(),
  approvedBy: z.array(ESignatureSchema),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }),
  /** The operation's time when it began and ended its deletions outside storage (vault, key store), and now. */
  startedAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  now: z.iso.datetime(),
  certificates: z
    .array(
      z.object({
        unitId: z.string(),
        certificateId: z.string(),
        reason: DeletionCertificateSchema.shape.reason,
        auditChain: AuditChainRefSchema,
        datasetId: z.string().optional(),
        /** The unit's object versions are in the operation's journal. */
        objects: z.boolean(),
        vault: ErasedElsewhereSchema.optional(),
        key: DestroyedKeySchema.optional(),
        subjectRequest: SubjectErasureRecordSchema.optional(),
      }),
    )
    .min(1),
});
export type IssueErasureCertificatesInput = z.input<typeof IssueErasureCertificatesInputSchema>;
