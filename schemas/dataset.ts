import { z } from 'zod';
import { SourceSignatureSchema } from './source';
import { NameSchema, PrincipalSchema, Sha256HexSchema, StudyIdSchema } from './common';
import { RetentionEventSchema } from './jurisdiction';
import { ESignatureSchema } from './request';

/** Why rows were left out: consent (none, withdrawn, out of scope, expired, not yet valid), or the subject's erasure. */
export const ExclusionReasonSchema = z.enum(['no-consent', 'withdrawn', 'scope', 'expired', 'not-yet-valid', 'erased']);
export type ExclusionReason = z.infer<typeof ExclusionReasonSchema>;

export const RowCountsSchema = z.object({
  in: z.number().int().nonnegative(),
  curated: z.number().int().nonnegative(),
  excluded: z.number().int().nonnegative(),
  excludedByReason: z.partialRecord(ExclusionReasonSchema, z.number().int().nonnegative()),
});
export type RowCounts = z.infer<typeof RowCountsSchema>;

export const DatasetInputSchema = z.object({
  path: z.string(),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
});

export const DatasetOutputSchema = z.object({
  table: z.string(),
  source: z.string(),
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
  columns: z.array(z.object({ name: z.string(), type: z.string(), role: z.string() })),
  rows: RowCountsSchema,
});
export type DatasetOutput = z.infer<typeof DatasetOutputSchema>;

/**
 * A dataset's retention: its rule (the data class's, fixed at ingestion), the event it counts from and that event's
 * date, and the resulting retain-until (null while the counting event, e.g. the end of the trial, is not recorded).
 * `lockedUntil` is what S3 Object Lock enforces on its objects.
 */
export const DatasetRetentionSchema = z.object({
  until: z.string().nullable(),
  duration: z.string(),
  legalBasis: z.string(),
  rule: z.string().optional(),
  countsFrom: RetentionEventSchema.default('curation'),
  /** Whether the law requires keeping it until `until` (see the rule's `minimum`). */
  minimum: z.boolean().default(true),
  basisDate: z.string().nullable().optional(),
  objectLock: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'),
  lockedUntil: z.string().nullable().optional(),
});
export type DatasetRetention = z.infer<typeof DatasetRetentionSchema>;

/** A legal hold: while one is active, nothing deletes the dataset, whatever its retention says. */
export const LegalHoldSchema = z.object({
  holdId: z.string(),
  reason: z.string(),
  setAt: z.iso.datetime(),
  setBy: ESignatureSchema,
  releasedAt: z.iso.datetime().nullable().default(null),
  releasedBy: ESignatureSchema.nullable().default(null),
  releaseReason: z.string().nullable().default(null),
});
export type LegalHold = z.infer<typeof LegalHoldSchema>;

/** The catalog entry of one curated dataset, kept in its jurisdiction's catalog bucket. */
export const DatasetRecordSchema = z.object({
  format: z.literal('steward-dataset/1'),
  datasetId: z.string(),
  packageId: z.string(),
  jurisdiction: z.string(),
  studyId: StudyIdSchema,
  protocolId: z.string(),
  dataClass: NameSchema,
  classification: z.string(),
  purpose: NameSchema,
  consentScopes: z.array(NameSchema),
  sourceSystem: z.string(),
  keyVersions: z.array(z.number().int().positive()),
  /** The package's date-shift window; a re-pseudonymization moves dates from the old key's offsets to the new. */
  dateShiftDays: z.number().int().nonnegative().default(0),
  rePseudonymizedAt: z.string().optional(),
  createdAt: z.string(),
  retention: DatasetRetentionSchema,
  holds: z.array(LegalHoldSchema).default([]),
  rows: RowCountsSchema,
  inputs: z.array(DatasetInputSchema),
  outputs: z.array(DatasetOutputSchema),
  /** A dataset a preprocessing job made: the exact inputs it came from, so retention and erasure follow it. */
  derivedFrom: z
    .array(
      z.object({
        datasetId: z.string(),
        table: z.string(),
        bucket: z.string(),
        key: z.string(),
        versionId: z.string().nullable(),
        sha256: Sha256HexSchema,
      }),
    )
    .default([]),
  /** Subjects' rows erased from it (GDPR Art. 17): which request, which table, how many rows, the versions before and after. */
  erasures: z
    .array(
      z.object({
        requestId: z.string(),
        table: z.string(),
        rowsRemoved: z.number().int().nonnegative(),
        before: z.object({ versionId: z.string().nullable(), sha256: Sha256HexSchema, rows: z.number().int() }),
        after: z.object({ versionId: z.string().nullable(), sha256: Sha256HexSchema, rows: z.number().int() }),
        at: z.iso.datetime(),
      }),
    )
    .default([]),
  /** The run documentation of the job that made it. */
  run: z
    .object({
      jobId: z.string(),
      bucket: z.string(),
      key: z.string(),
      versionId: z.string().nullable(),
      sha256: Sha256HexSchema,
    })
    .nullable()
    .default(null),
  lineage: z.object({
    /** Where it came from: the package's landing prefix, or the job's prefix for a preprocessing output. */
    landing: z.object({ bucket: z.string(), prefix: z.string() }),
    manifestSha256: Sha256HexSchema,
    workflowId: z.string(),
    runId: z.string(),
    submittedBy: PrincipalSchema,
    /** The source system whose signature of the package's manifest ingestion verified; null for an unsigned one. */
    source: SourceSignatureSchema.nullable().default(null),
  }),
});
export type DatasetRecord = z.infer<typeof DatasetRecordSchema>;

/**
 * What a study's datasets need from it for retention: the recorded end of the trial (e-signed), and legal holds on the
 * whole study, which cover every dataset of it, those ingested later included.
 */
export const StudyRecordSchema = z.object({
  format: z.literal('steward-study/1'),
  studyId: StudyIdSchema,
  jurisdiction: z.string(),
  trialEnd: z
    .object({ date: z.iso.date(), recordedAt: z.iso.datetime(), recordedBy: ESignatureSchema })
    .nullable()
    .default(null),
  holds: z.array(LegalHoldSchema).default([]),
});
export type StudyRecord = z.infer<typeof StudyRecordSchema>;

/** The legal holds in force on a dataset or a study. */
export function activeHolds(record: { holds: LegalHold[] }): LegalHold[] {
  return record.holds.filter((h) => h.releasedAt === null);
}
