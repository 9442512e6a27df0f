import { z } from 'zod';
import { KnownJurisdictionSchema } from '../jurisdictions';
import { PrincipalSchema, StudyIdSchema } from './common';
import { DatasetRetentionSchema } from './dataset';
import { DatasetIdSchema } from './ingest';
import { ESignatureSchema, SignedRequestSchema } from './request';

/** What a legal hold covers: one dataset, or a whole study (its datasets now and later, and its raw packages). */
export const HoldScopeSchema = z.union([
  z.object({ datasetId: DatasetIdSchema }).strict(),
  z.object({ studyId: StudyIdSchema }).strict(),
]);
export type HoldScope = z.infer<typeof HoldScopeSchema>;

export const HoldReasonSchema = z
  .string()
  .trim()
  .min(3, 'must say why (at least 3 characters)')
  .max(500)
  .regex(/^[^\p{Cc}]*$/u, 'must be one line of text');

export const HoldSetParamsSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  scope: HoldScopeSchema,
  reason: HoldReasonSchema,
});
export type HoldSetParams = z.infer<typeof HoldSetParamsSchema>;

export const HoldReleaseParamsSchema = HoldSetParamsSchema.extend({
  /** Which hold; may be left out when exactly one is in force on the scope. */
  holdId: z
    .string()
    .regex(/^hold-[0-9a-f]{32}$/)
    .optional(),
});
export type HoldReleaseParams = z.infer<typeof HoldReleaseParamsSchema>;

export const HoldResultSchema = z.object({
  jurisdiction: z.string(),
  action: z.enum(['set', 'released']),
  scope: HoldScopeSchema,
  holdId: z.string(),
  /** Datasets whose objects the change reached. */
  datasets: z.array(z.string()),
  /** Datasets a release left under another hold (their S3 legal hold stays on). */
  stillHeld: z.array(z.string()),
  /** Object versions whose S3 legal hold was switched. */
  versions: z.number().int().nonnegative(),
});
export type HoldResult = z.infer<typeof HoldResultSchema>;

export const TrialEndParamsSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  studyId: StudyIdSchema,
  date: z.iso.date(),
});
export type TrialEndParams = z.infer<typeof TrialEndParamsSchema>;

export const RetentionChangeSchema = z.object({
  datasetId: z.string(),
  rule: z.string(),
  until: z.string().nullable(),
  lockedUntil: z.string().nullable(),
  objectLock: z.enum(['GOVERNANCE', 'COMPLIANCE']),
});
export type RetentionChange = z.infer<typeof RetentionChangeSchema>;

export const TrialEndResultSchema = z.object({
  jurisdiction: z.string(),
  studyId: z.string(),
  date: z.string(),
  /** Every dataset of the study whose retention counts from the end of the trial, with its new dates. */
  datasets: z.array(RetentionChangeSchema),
  versions: z.number().int().nonnegative(),
});
export type TrialEndResult = z.infer<typeof TrialEndResultSchema>;

/** A sweep asked for by a person: an earlier `asOf` deletes less; a later one is allowed only for a dry run. */
export const SweepParamsSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  asOf: z.iso.datetime().optional(),
  dryRun: z.boolean().default(false),
});
export type SweepParams = z.infer<typeof SweepParamsSchema>;

export const SweepTotalsSchema = z.object({
  datasetsScanned: z.number().int().nonnegative(),
  /** Found expired and not held: deleted, or in a dry run, what would be. */
  datasetsExpired: z.number().int().nonnegative(),
  packagesExpired: z.number().int().nonnegative(),
  datasetsDeleted: z.number().int().nonnegative(),
  datasetsHeld: z.number().int().nonnegative(),
  datasetsKept: z.number().int().nonnegative(),
  packagesScanned: z.number().int().nonnegative(),
  packagesDeleted: z.number().int().nonnegative(),
  packagesHeld: z.number().int().nonnegative(),
  /** Access packages past their expiry (the jurisdiction's `access-export` rule). */
  exportsExpired: z.number().int().nonnegative().default(0),
  exportsDeleted: z.number().int().nonnegative().default(0),
  versionsDeleted: z.number().int().nonnegative(),
  bytesDeleted: z.number().int().nonnegative(),
  certificates: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});
export type SweepTotals = z.infer<typeof SweepTotalsSchema>;

/** One dataset or raw package a sweep decided about (deleted, held or found expired in a dry run). */
export const SweepItemSchema = z.object({
  kind: z.enum(['dataset', 'package', 'export']),
  id: z.string(),
  bucket: z.string().optional(),
  outcome: z.enum(['deleted', 'held', 'would-delete', 'failed']),
  /** The precedence engine's reason, as a sentence. */
  reason: z.string(),
  rule: z.string(),
  legalBasis: z.string(),
  until: z.string().nullable(),
  certificateId: z.string().optional(),
  versions: z.number().int().nonnegative().optional(),
});
export type SweepItem = z.infer<typeof SweepItemSchema>;

/**
 * What a sweep carries into its next run when it continues as new: who asked, the moment it decides for, where it is,
 * and what it did so far.
 */
export const SweepStateSchema = z.object({
  sweepId: z.string(),
  jurisdiction: z.string(),
  asOf: z.iso.datetime(),
  dryRun: z.boolean(),
  principal: PrincipalSchema,
  eSignature: ESignatureSchema.nullable(),
  requestId: z.string().nullable(),
  scheduleId: z.string().nullable(),
  startedAt: z.iso.datetime(),
  phase: z.enum(['datasets', 'landing', 'quarantine', 'exports', 'done']),
  cursor: z.string().nullable(),
  batch: z.number().int().nonnegative(),
  totals: SweepTotalsSchema,
  items: z.array(SweepItemSchema),
  /** Items decided beyond those the report keeps. */
  omitted: z.number().int().nonnegative(),
});
export type SweepState = z.infer<typeof SweepStateSchema>;

/** A sweep's input: a signed request, a start by its jurisdiction's schedule, or its own state after continue-as-new. */
export const SweepInputSchema = z.union([
  z.object({ request: SignedRequestSchema }).strict(),
  z.object({ scheduled: z.object({ jurisdiction: KnownJurisdictionSchema }) }).strict(),
  /** Sealed by the run that continued as new (`SweepStateSchema` inside); the sweep opens it, or refuses and audits. */
  z.object({ state: z.unknown() }).strict(),
]);
export type SweepInput = z.infer<typeof SweepInputSchema>;

export const SweepReportSchema = z.object({
  sweepId: z.string(),
  jurisdiction: z.string(),
  asOf: z.string(),
  dryRun: z.boolean(),
  scheduleId: z.string().nullable(),
  startedAt: z.string(),
  completedAt: z.string(),
  totals: SweepTotalsSchema,
  /** Deleted, held and failed items, in the order decided; at most `ITEMS_KEPT` (totals count them all). */
  items: z.array(SweepItemSchema),
  itemsOmitted: z.number().int().nonnegative(),
});
export type SweepReport = z.infer<typeof SweepReportSchema>;

export const SweepProgressSchema = z.object({
  sweepId: z.string(),
  phase: z.string(),
  asOf: z.string(),
  dryRun: z.boolean(),
  totals: SweepTotalsSchema,
});
export type SweepProgress = z.infer<typeof SweepProgressSchema>;

/** A dataset a sweep claimed for deletion: what decided it (its erasure reads the rest from its record). */
export const ClaimedDatasetSchema = z.object({
  datasetId: z.string(),
  studyId: z.string(),
  packageId: z.string(),
  dataClass: z.string(),
  retention: DatasetRetentionSchema,
  reason: z.string(),
});
export type ClaimedDataset = z.infer<typeof ClaimedDatasetSchema>;

/** What one page of the catalog gave a sweep: claimed (or, in a dry run, found expired), held, and kept. */
export const RetentionScanSchema = z.object({
  /** The last dataset id of the page; null when the catalog ends here. */
  next: z.string().nullable(),
  scanned: z.number().int().nonnegative(),
  kept: z.number().int().nonnegative(),
  expired: z.array(ClaimedDatasetSchema),
  held: z.array(
    z.object({
      datasetId: z.string(),
      dataClass: z.string(),
      legalBasis: z.string(),
      until: z.string().nullable(),
      reason: z.string(),
    }),
  ),
});
export type RetentionScan = z.infer<typeof RetentionScanSchema>;

export const ScanDatasetsInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  asOf: z.iso.datetime(),
  after: z.string().nullable(),
  limit: z.number().int().min(1).max(1000),
});
export type ScanDatasetsInput = z.infer<typeof ScanDatasetsInputSchema>;

export const PackageRetentionSchema = z.object({
  /** `landing` or `quarantine`. */
  role: z.enum(['landing', 'quarantine']),
  /** The unit deleted together: `packages/<id>/`, or one consent upload. */
  prefix: z.string(),
  packageId: z.string().nullable(),
  studyId: z.string().nullable(),
  submittedAt: z.iso.datetime(),
  until: z.iso.datetime(),
  reason: z.string(),
});
export type PackageRetention = z.infer<typeof PackageRetentionSchema>;

export const ScanPackagesInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  role: z.enum(['landing', 'quarantine']),
  asOf: z.iso.datetime(),
  after: z.string().nullable(),
});
export type ScanPackagesInput = z.infer<typeof ScanPackagesInputSchema>;

export const ScanExportsInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  asOf: z.iso.datetime(),
  after: z.string().nullable(),
});
export type ScanExportsInput = z.infer<typeof ScanExportsInputSchema>;

/** An access package whose expiry has come. */
export const ExpiredExportSchema = z.object({
  requestId: z.string(),
  bucket: z.string(),
  prefix: z.string(),
  expiresAt: z.iso.datetime(),
  legalBasis: z.string(),
});
export type ExpiredExport = z.infer<typeof ExpiredExportSchema>;

export const ExportScanSchema = z.object({
  next: z.string().nullable(),
  scanned: z.number().int().nonnegative(),
  expired: z.array(ExpiredExportSchema),
});
export type ExportScan = z.infer<typeof ExportScanSchema>;

export const PackageScanSchema = z.object({
  next: z.string().nullable(),
  scanned: z.number().int().nonnegative(),
  kept: z.number().int().nonnegative(),
  expired: z.array(PackageRetentionSchema),
  held: z.array(PackageRetentionSchema),
});
export type PackageScan = z.infer<typeof PackageScanSchema>;

export const LegalHoldChangeInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  datasetIds: z.array(z.string()),
  on: z.boolean(),
});
export type LegalHoldChangeInput = z.infer<typeof LegalHoldChangeInputSchema>;

export const ObjectLockChangeInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  changes: z.array(RetentionChangeSchema),
  /** The workflow's time: a lock date already past by then is not set. */
  now: z.iso.datetime(),
});
export type ObjectLockChangeInput = z.infer<typeof ObjectLockChangeInputSchema>;

/** Heartbeat details of moving Object Lock dates: the changes done so far, in input order, for a retry to skip. */
export const ObjectLockProgressSchema = z.object({
  changesDone: z.number().int().nonnegative(),
  versions: z.number().int().nonnegative(),
});
export type ObjectLockProgress = z.infer<typeof ObjectLockProgressSchema>;

/** A change to a jurisdiction's sweep schedule. */
export const ScheduleChangeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('set'), cron: z.string().min(9).max(100) }),
  z.object({ kind: z.literal('pause'), note: z.string().max(200).optional() }),
  z.object({ kind: z.literal('resume'), note: z.string().max(200).optional() }),
  z.object({ kind: z.literal('trigger') }),
]);
export type ScheduleChange = z.infer<typeof ScheduleChangeSchema>;

export const ScheduleParamsSchema = z.object({ jurisdiction: KnownJurisdictionSchema, change: ScheduleChangeSchema });
export type ScheduleParams = z.infer<typeof ScheduleParamsSchema>;

export const ScheduleStateSchema = z.object({
  scheduleId: z.string(),
  jurisdiction: z.string(),
  cron: z.array(z.string()),
  timezone: z.string(),
  paused: z.boolean(),
  note: z.string().nullable(),
  nextRuns: z.array(z.string()),
  recentRuns: z.array(z.object({ workflowId: z.string(), scheduledAt: z.string(), startedAt: z.string() })),
});
export type ScheduleState = z.infer<typeof ScheduleStateSchema>;

export const ScheduleChangeInputSchema = ScheduleParamsSchema.extend({ by: z.string() });
export type ScheduleChangeInput = z.infer<typeof ScheduleChangeInputSchema>;
