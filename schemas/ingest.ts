import { z } from 'zod';
import { SourceSignatureSchema } from './source';
import { PrincipalSchema, Sha256HexSchema } from './common';
import { DatasetOutputSchema, DatasetRecordSchema, DatasetRetentionSchema, RowCountsSchema } from './dataset';
import { KnownJurisdictionSchema } from '../jurisdictions';
import { PackageMetadataSchema } from './package';

export const ObjectLocationSchema = z.object({ bucket: z.string().min(1), prefix: z.string() });
export type ObjectLocation = z.infer<typeof ObjectLocationSchema>;

export const PackageIdSchema = z.string().regex(/^[0-9a-f]{24}$/, 'must be 24 lowercase hex digits');
export const DatasetIdSchema = z
  .string()
  .regex(/^ds-[a-z]{2,8}-[0-9a-f]{24}$/, 'must be a dataset id: ds-<jurisdiction>-<24 hex digits>');

export const UnreadableFileSchema = z.object({ path: z.string(), reason: z.string() });
export type UnreadableFile = z.infer<typeof UnreadableFileSchema>;

export const IngestPackageInputSchema = z.object({
  packageId: PackageIdSchema,
  manifestSha256: Sha256HexSchema,
  layout: z.enum(['bagit', 'json']),
  jurisdiction: KnownJurisdictionSchema,
  landing: ObjectLocationSchema,
  metadata: PackageMetadataSchema,
  /** Files the submitter could not read (symbolic links, special files, permission errors). */
  unreadable: z.array(UnreadableFileSchema),
  submittedBy: PrincipalSchema,
});
export type IngestPackageInput = z.infer<typeof IngestPackageInputSchema>;

/** What an `ingest` request asks for: the package; the submitter is the request's verified signer. */
export const IngestParamsSchema = IngestPackageInputSchema.omit({ submittedBy: true });
export type IngestParams = z.infer<typeof IngestParamsSchema>;

export const IngestPackageResultSchema = z.object({
  datasetId: DatasetIdSchema,
  outcome: z.enum(['curated', 'already-curated']),
  record: DatasetRecordSchema,
});
export type IngestPackageResult = z.infer<typeof IngestPackageResultSchema>;

export const IngestPhaseSchema = z.enum([
  'authorizing',
  'verifying',
  'curating',
  'recording',
  /** Recorded; waiting until the DR site holds it too (production profile). */
  'replicating',
  'quarantining',
  'discarding',
  'done',
  'rejected',
  'failed',
]);
export type IngestPhase = z.infer<typeof IngestPhaseSchema>;

export const IngestProgressSchema = z.object({ phase: IngestPhaseSchema, datasetId: z.string() });
export type IngestProgress = z.infer<typeof IngestProgressSchema>;

/** One reason a package was rejected. Never carries a data value: only where and which rule. */
export const PackageProblemSchema = z.object({
  file: z.string(),
  row: z.number().int().positive().optional(),
  field: z.string().optional(),
  rule: z.string(),
});
export type PackageProblem = z.infer<typeof PackageProblemSchema>;

/** The note beside a quarantined package: why it was rejected, every problem found, and by which workflow run. */
export const RejectionNoteSchema = z.object({
  format: z.literal('steward-rejection/1'),
  packageId: z.string(),
  jurisdiction: z.string(),
  reason: z.string(),
  problems: z.array(PackageProblemSchema),
  rejectedAt: z.string(),
  workflowId: z.string(),
  runId: z.string(),
});
export type RejectionNote = z.infer<typeof RejectionNoteSchema>;

export const VerifiedFileSchema = z.object({
  path: z.string(),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
});
export type VerifiedFile = z.infer<typeof VerifiedFileSchema>;

export const VerifiedPackageSchema = z.object({
  metadata: PackageMetadataSchema,
  files: z.array(VerifiedFileSchema),
  /** Who signed the manifest, as verified; null for an unsigned package where signatures are not required. */
  source: SourceSignatureSchema.nullable().default(null),
});
export type VerifiedPackage = z.infer<typeof VerifiedPackageSchema>;

export const FindDatasetInputSchema = z.object({ datasetId: DatasetIdSchema });
export type FindDatasetInput = z.infer<typeof FindDatasetInputSchema>;

export const CuratePackageInputSchema = z.object({
  packageId: PackageIdSchema,
  datasetId: DatasetIdSchema,
  jurisdiction: KnownJurisdictionSchema,
  landing: ObjectLocationSchema,
  metadata: PackageMetadataSchema,
  files: z.array(VerifiedFileSchema),
  /** The day consent is evaluated for (YYYY-MM-DD), decided by the workflow. */
  asOf: z.iso.date(),
  /** When the dataset is curated (workflow time): its retention counts from here (or from the end of its trial). */
  curatedAt: z.iso.datetime(),
});
export type CuratePackageInput = z.infer<typeof CuratePackageInputSchema>;

export const CuratePackageResultSchema = z.object({
  /** Keys this curation created (a study's first key version): id only. */
  keysCreated: z.array(z.string()).default([]),
  outputs: z.array(DatasetOutputSchema),
  rows: RowCountsSchema,
  keyVersions: z.array(z.number().int().positive()),
  classification: z.string(),
  /** The dataset's retention, as its outputs were locked with. */
  retention: DatasetRetentionSchema,
});
export type CuratePackageResult = z.infer<typeof CuratePackageResultSchema>;

export const QuarantinePackageInputSchema = z.object({
  packageId: PackageIdSchema,
  landing: ObjectLocationSchema,
  problems: z.array(PackageProblemSchema),
  workflowId: z.string(),
  runId: z.string(),
  rejectedAt: z.iso.datetime(),
});
export type QuarantinePackageInput = z.infer<typeof QuarantinePackageInputSchema>;

export const RecordDatasetInputSchema = z.object({
  datasetId: DatasetIdSchema,
  ingest: IngestPackageInputSchema,
  verified: VerifiedPackageSchema,
  curated: CuratePackageResultSchema,
  workflowId: z.string(),
  runId: z.string(),
  /** When the dataset came into being (workflow time, ISO 8601); retention runs from here. */
  createdAt: z.iso.datetime(),
});
export type RecordDatasetInput = z.infer<typeof RecordDatasetInputSchema>;

export const RecordDatasetResultSchema = z.object({ record: DatasetRecordSchema, created: z.boolean() });
export type RecordDatasetResult = z.infer<typeof RecordDatasetResultSchema>;

/** Heartbeat details of package verification: the files checked so far, for a retry to resume after. */
export const VerifyProgressSchema = z.object({
  phase: z.literal('verifying'),
  checked: z.array(VerifiedFileSchema),
  bytes: z.number().int().nonnegative(),
});
export type VerifyProgress = z.infer<typeof VerifyProgressSchema>;

/** A table curation finished: its output in the worker's work directory, for a retry to reuse. */
export const CuratedTableSchema = z.object({
  index: z.number().int().nonnegative(),
  file: z.string().regex(/^out-\d+-a\d+\.parquet$/),
  sha256: Sha256HexSchema,
  rows: RowCountsSchema,
  columns: DatasetOutputSchema.shape.columns,
});
export type CuratedTable = z.infer<typeof CuratedTableSchema>;

/** Heartbeat details of curation: the tables finished so far. */
export const CurateProgressSchema = z.object({ phase: z.string(), tables: z.array(CuratedTableSchema) });
export type CurateProgress = z.infer<typeof CurateProgressSchema>;

export const DiscardCurationInputSchema = z.object({ datasetId: DatasetIdSchema, studyId: z.string() });
export type DiscardCurationInput = z.infer<typeof DiscardCurationInputSchema>;

export const DiscardCurationResultSchema = z.object({
  /** Object versions deleted (curated outputs and the dataset's vault shard); 0 when the dataset was recorded. */
  deleted: z.number().int().nonnegative(),
});
export type DiscardCurationResult = z.infer<typeof DiscardCurationResultSchema>;
