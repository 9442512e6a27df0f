import { z } from 'zod';
import { NameSchema, PrincipalSchema, Sha256HexSchema, StudyIdSchema } from './common';

export const ExclusionReasonSchema = z.enum(['no-consent', 'withdrawn', 'scope', 'expired', 'not-yet-valid']);
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
  retention: z.object({ until: z.string(), duration: z.string(), legalBasis: z.string() }),
  rows: RowCountsSchema,
  inputs: z.array(DatasetInputSchema),
  outputs: z.array(DatasetOutputSchema),
  lineage: z.object({
    landing: z.object({ bucket: z.string(), prefix: z.string() }),
    manifestSha256: Sha256HexSchema,
    workflowId: z.string(),
    runId: z.string(),
    submittedBy: PrincipalSchema,
  }),
});
export type DatasetRecord = z.infer<typeof DatasetRecordSchema>;
