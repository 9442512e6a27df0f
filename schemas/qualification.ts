import { z } from 'zod';
import { Sha256HexSchema } from './common';
import { ESignatureSchema, SignedRequestSchema } from './request';

export const QualificationPhaseSchema = z.enum(['IQ', 'OQ', 'PQ']);
export type QualificationPhase = z.infer<typeof QualificationPhaseSchema>;

/** One requirement of `qualification/requirements.yaml`: what must hold, how much it matters, and what proves it. */
export const RequirementSchema = z.object({
  id: z.string().regex(/^(IQ|OQ|PQ)-[0-9]{2,3}$/, 'must look like IQ-01, OQ-12 or PQ-03'),
  text: z.string().min(10).max(500),
  risk: z.enum(['high', 'medium', 'low']),
  phase: QualificationPhaseSchema,
  /** The check that proves it (a check id Steward knows, e.g. `iq.buckets`). */
  check: z.string().regex(/^[a-z]+\.[a-z-]+$/, 'must be a check id such as iq.buckets'),
});
export type Requirement = z.infer<typeof RequirementSchema>;

/**
 * The performance qualification's acceptance criteria: the reference datasets' size, each shipped pipeline's recorded
 * output digest (and the parameters it runs with), the speed range, and the seeded randomized step's stated variation.
 */
export const PqAcceptanceSchema = z.object({
  rows: z.number().int().min(100).max(10_000_000),
  pipelines: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}@\d+\.\d+\.\d+$/, 'must be NAME@VERSION'),
    z.object({
      parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
      outputSha256: Sha256HexSchema,
    }),
  ),
  /** Ingestion's curation of the reference package: the digest of its output's values. */
  ingestion: z.object({ outputSha256: Sha256HexSchema }).optional(),
  throughput: z.object({ minRowsPerSecond: z.number().positive(), maxSeconds: z.number().positive() }),
  variation: z.object({
    fraction: z.number().gt(0).lt(1),
    seeds: z.array(z.number().int().nonnegative()).min(2),
    maxRelativeDeviation: z.number().gt(0).lt(1),
  }),
});
export type PqAcceptance = z.infer<typeof PqAcceptanceSchema>;

export const RequirementsFileSchema = z.object({
  format: z.literal('steward-requirements/1'),
  requirements: z.array(RequirementSchema).min(1),
  /** What the performance qualification (PQ) measures against. */
  performance: PqAcceptanceSchema.optional(),
});
export type RequirementsFile = z.infer<typeof RequirementsFileSchema>;

/**
 * One thing the installation inventory records: a component (`tool.versitygw`, `bucket.steward-eu-curated.versioning`)
 * and the value found (a SHA-256, a version, a setting). Never personal data or key material: hashes, versions,
 * settings and certificate fingerprints only.
 */
export const InventoryItemSchema = z.object({
  id: z.string().regex(/^[a-z]+(\.[A-Za-z0-9_.@/-]+)+$/),
  /** What it is, for people reading the report. */
  label: z.string(),
  value: z.string(),
  /** The check whose evidence it is. */
  check: z.string(),
});
export type InventoryItem = z.infer<typeof InventoryItemSchema>;

/** What the worker found of the installation it runs in, at one moment. */
export const InventorySchema = z.object({
  takenAt: z.iso.datetime(),
  jurisdiction: z.string(),
  worker: z.object({ identity: z.string(), hostname: z.string() }),
  /** The source tree the worker runs from: its commit and whether it had changes that are not committed. */
  source: z.object({ commit: z.string().nullable(), clean: z.boolean().nullable() }),
  items: z.array(InventoryItemSchema),
  /** Rules every installation must meet whatever its baseline says (versioning on, a bucket policy present, …). */
  rules: z.array(z.object({ check: z.string(), rule: z.string(), ok: z.boolean(), detail: z.string().optional() })),
});
export type Inventory = z.infer<typeof InventorySchema>;

/** An approved configuration: the inventory items as they were when QA approved it. */
export const BaselineSchema = z.object({
  format: z.literal('steward-baseline/1'),
  jurisdiction: z.string(),
  version: z.number().int().positive(),
  recordedAt: z.iso.datetime(),
  source: InventorySchema.shape.source,
  items: z.array(InventoryItemSchema),
});
export type Baseline = z.infer<typeof BaselineSchema>;

export const EvidenceItemSchema = z.object({
  check: z.string(),
  key: z.string(),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
});
export type EvidenceItem = z.infer<typeof EvidenceItemSchema>;

export const CheckResultSchema = z.object({
  id: z.string(),
  title: z.string(),
  covers: z.array(z.string()),
  outcome: z.enum(['passed', 'failed', 'waived']),
  /** Each difference from the baseline and each broken rule, in words that name the component. */
  findings: z.array(z.string()),
  items: z.number().int().nonnegative(),
  evidence: EvidenceItemSchema.nullable(),
});
export type CheckResult = z.infer<typeof CheckResultSchema>;

export const VerdictSchema = z.enum(['QUALIFIED', 'NOT QUALIFIED', 'PROVISIONAL']);
export type Verdict = z.infer<typeof VerdictSchema>;

/** The signed part of a qualification report: everything but the QA signature that approves it. */
export const ReportContentSchema = z.object({
  format: z.literal('steward-qualification/1'),
  reportId: z.string().regex(/^qr-[a-z]{2,8}-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/),
  jurisdiction: z.string(),
  phases: z.array(QualificationPhaseSchema).min(1),
  startedAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  /** Who ran it (the e-signature of the signed request that started it). */
  runBy: ESignatureSchema,
  environment: z.object({
    worker: InventorySchema.shape.worker,
    source: InventorySchema.shape.source,
    node: z.string(),
    temporalServer: z.string(),
    versitygw: z.string(),
  }),
  baseline: z.object({ version: z.number().int().positive(), sha256: Sha256HexSchema }).nullable(),
  requirements: z.array(
    RequirementSchema.extend({
      outcome: z.enum(['passed', 'failed', 'waived', 'no check']),
      checks: z.array(z.string()),
    }),
  ),
  checks: z.array(CheckResultSchema),
  deviations: z.array(z.string()),
  verdict: VerdictSchema,
  /** Why the verdict is not QUALIFIED, one line per cause. */
  causes: z.array(z.string()),
});
export type ReportContent = z.infer<typeof ReportContentSchema>;

/** QA's signature of a report or a baseline: their signed request, which names the document's SHA-256. */
export const QaApprovalSchema = z.object({
  eSignature: ESignatureSchema,
  request: SignedRequestSchema,
});
export type QaApproval = z.infer<typeof QaApprovalSchema>;

/** What QA signs: which document, by its SHA-256, and its CMS signature made with their own key. */
export const QaSignParamsSchema = z.object({
  document: z.string().min(1).max(200),
  sha256: Sha256HexSchema,
  /** Detached CMS (DER, base64) over the document's bytes, by the QA identity that signs the request. */
  p7s: z.string().regex(/^[A-Za-z0-9+/]+=*$/),
});
export type QaSignParams = z.infer<typeof QaSignParamsSchema>;

export const QualifyPhaseOptionSchema = z.enum(['iq', 'oq', 'pq', 'all']);
export type QualifyPhaseOption = z.infer<typeof QualifyPhaseOptionSchema>;

export const QualifyParamsSchema = z.object({
  phase: QualifyPhaseOptionSchema,
  /**
   * For the operational qualification: a request signed by the same QA person for an action their role may not take
   * (a retention preview). The run sends it as is (it must be refused for the role) and altered (it must be refused
   * for its signature).
   */
  probe: SignedRequestSchema.optional(),
  /** Checks to waive (each with why): the verdict is then PROVISIONAL at best. */
  waive: z.array(z.object({ check: z.string(), reason: z.string().min(3).max(500) })).default([]),
});
export type QualifyParams = z.infer<typeof QualifyParamsSchema>;

export const BaselineParamsSchema = z.object({ reason: z.string().min(3).max(1000) });

/** What a qualification or baseline workflow shows while it runs and once it is done. */
export const QualificationStatusSchema = z.object({
  /** `awaiting-tests`: the operational run waits for the testers' script in its scratch study (`document` names it). */
  stage: z.enum(['running', 'awaiting-tests', 'awaiting-signature', 'signed', 'unsigned']),
  document: z.string().nullable(),
  sha256: Sha256HexSchema.nullable(),
  /** The document's bytes (base64) while it awaits QA's signature: what QA reads and signs. */
  content: z.string().nullable(),
  verdict: VerdictSchema.nullable(),
  keys: z.array(z.string()),
});
export type QualificationStatus = z.infer<typeof QualificationStatusSchema>;

export const QaSignInputSchema = z.object({ request: SignedRequestSchema });
export type QaSignInput = z.infer<typeof QaSignInputSchema>;

/** A difference between the live installation and the baseline in force (or a broken rule), as a drift check found it. */
export const DriftFindingSchema = z.object({
  check: z.string(),
  /** The requirements the check proves, and the highest risk among them. */
  requirements: z.array(z.string()),
  risk: z.enum(['high', 'medium', 'low']),
  text: z.string().max(2000),
});
export type DriftFinding = z.infer<typeof DriftFindingSchema>;

export const DeviationStateSchema = z.enum(['open', 'investigated', 'closed']);
export type DeviationState = z.infer<typeof DeviationStateSchema>;

/** A deviation's record: kept in the catalog bucket while it is handled, each step with its e-signature. */
export const DeviationRecordSchema = z.object({
  format: z.literal('steward-deviation/1'),
  deviationId: z.string(),
  jurisdiction: z.string(),
  state: DeviationStateSchema,
  finding: DriftFindingSchema,
  detectedAt: z.string(),
  /** The drift check that found it (its workflow id) and the baseline version it compared with. */
  detectedBy: z.string(),
  baseline: z.number().int().nullable(),
  investigation: z.object({ notes: z.string(), eSignature: ESignatureSchema }).nullable(),
  closure: z
    .object({
      disposition: z.enum(['corrected', 'accepted', 'rebaselined']),
      notes: z.string(),
      eSignature: ESignatureSchema,
    })
    .nullable(),
});
export type DeviationRecord = z.infer<typeof DeviationRecordSchema>;

/** A deviation's decision by QA: investigated with notes, or closed with a disposition. */
export const DeviationDecisionParamsSchema = z.discriminatedUnion('step', [
  z.object({ step: z.literal('investigate'), notes: z.string().min(3).max(4000) }),
  z.object({
    step: z.literal('close'),
    disposition: z.enum(['corrected', 'accepted', 'rebaselined']),
    notes: z.string().min(3).max(4000),
  }),
]);
export type DeviationDecisionParams = z.infer<typeof DeviationDecisionParamsSchema>;

export const DriftCheckParamsSchema = z.object({});

/** What a drift check returns: the findings, and the deviations it opened (or found open already). */
export const DriftResultSchema = z.object({
  jurisdiction: z.string(),
  baseline: z.number().int().nullable(),
  findings: z.array(DriftFindingSchema),
  opened: z.array(z.string()),
  alreadyOpen: z.array(z.string()),
});
export type DriftResult = z.infer<typeof DriftResultSchema>;

/** The kinds of controlled file, by where they live: `jurisdictions/<id>.json`, `pipelines/…`, the requirements. */
export const ControlledKindSchema = z.enum(['jurisdiction', 'pipeline', 'requirements']);
export type ControlledKind = z.infer<typeof ControlledKindSchema>;

/** A proposed change to one controlled file: its new content (base64), or its removal, and why. */
export const ChangeParamsSchema = z.object({
  /** The controlled file's path in the installation, e.g. `jurisdictions/eu.json`. */
  file: z.string().regex(/^[a-z0-9][A-Za-z0-9._/-]{0,199}$/, 'must be a path inside the installation'),
  /** The proposed content, base64 (at most 256 KiB); null to remove the file. */
  content: z
    .string()
    .regex(/^[A-Za-z0-9+/]*=*$/)
    .max(350_000)
    .nullable(),
  sha256: Sha256HexSchema.nullable(),
  reason: z.string().min(3).max(2000),
});
export type ChangeParams = z.infer<typeof ChangeParamsSchema>;

/** QA's decision on a change: approved (to be applied) or rejected, with why. */
export const ChangeDecisionParamsSchema = z.object({
  decision: z.enum(['approve', 'reject']),
  /** The SHA-256 of the proposed content QA read: an approval names exactly what it approves. */
  sha256: Sha256HexSchema.nullable(),
  notes: z.string().min(3).max(4000),
});
export type ChangeDecisionParams = z.infer<typeof ChangeDecisionParamsSchema>;

/** A dataset whose retain-until the change would move. */
export const RetentionMoveSchema = z.object({
  datasetId: z.string(),
  rule: z.string(),
  from: z.string().nullable(),
  to: z.string().nullable(),
  /** Days later (positive) or earlier (negative); null where one of the dates is open. */
  days: z.number().nullable(),
});
export type RetentionMove = z.infer<typeof RetentionMoveSchema>;

/** What a change would do, computed from the proposed content and the live catalog, before anyone approves it. */
export const ChangeImpactSchema = z.object({
  file: z.string(),
  kind: ControlledKindSchema,
  before: Sha256HexSchema.nullable(),
  after: Sha256HexSchema.nullable(),
  /** The top-level fields whose values differ (`retention.real-world.duration`, …). */
  changedFields: z.array(z.string()),
  retention: z.array(RetentionMoveSchema),
  /** Pipelines the change touches, and the datasets they made (the outputs a re-run would replace). */
  pipelines: z.array(z.object({ pipeline: z.string(), outputs: z.array(z.string()) })),
  /** Requirements whose checks must be re-run once it is applied (by the new baseline's qualification). */
  retest: z.array(z.string()),
  /** The dry run: each check made on the proposed content, as it would be loaded. */
  dryRun: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })),
  /** Where the workers must restart to load it (jurisdiction rules are read when a worker starts). */
  restartNeeded: z.boolean(),
  /** The rules a worker will have loaded once it has: what the next baseline records as loaded. */
  loadedSha256: Sha256HexSchema.nullable(),
});
export type ChangeImpact = z.infer<typeof ChangeImpactSchema>;

export const ChangeStateSchema = z.enum([
  'refused',
  'awaiting-approval',
  'rejected',
  'applying',
  'awaiting-restart',
  'awaiting-baseline',
  'applied',
  'expired',
]);
export type ChangeState = z.infer<typeof ChangeStateSchema>;

/** A change's record: kept in the catalog bucket while it is handled; the proposed content is in the evidence bucket. */
export const ChangeRecordSchema = z.object({
  format: z.literal('steward-change/1'),
  changeId: z.string(),
  jurisdiction: z.string(),
  state: ChangeStateSchema,
  file: z.string(),
  reason: z.string(),
  proposedAt: z.string(),
  proposedBy: ESignatureSchema,
  /** The proposed content, write-once in the evidence bucket (key and SHA-256); null for a removal. */
  content: z.object({ key: z.string(), sha256: Sha256HexSchema, bytes: z.number().int() }).nullable(),
  impact: ChangeImpactSchema,
  decision: z
    .object({ decision: z.enum(['approve', 'reject']), notes: z.string(), eSignature: ESignatureSchema })
    .nullable(),
  appliedAt: z.string().nullable(),
  /** The baseline recorded once it was applied. */
  baseline: z.number().int().nullable(),
  /** Why it ended where it did (refused by the dry run, a file changed meanwhile …). */
  problems: z.array(z.string()),
});
export type ChangeRecord = z.infer<typeof ChangeRecordSchema>;

/**
 * What the testers' script did in the operational qualification's scratch study, as QA reports it (signed): the run
 * checks each against Temporal and storage itself, then deletes the scratch study with certificates.
 */
export const FunctionalReportSchema = z.object({
  studyId: z.string(),
  /** A good package's ingestion (to be curated) and a damaged one's (to be rejected and quarantined). */
  curated: z.object({ packageId: z.string(), workflowId: z.string() }).nullable(),
  rejected: z.object({ packageId: z.string(), workflowId: z.string() }).nullable(),
  /** A subject's erasure request in the scratch study (to complete with a certificate). */
  erasure: z.object({ workflowId: z.string() }).nullable(),
  /** Steps of the script that failed before they produced anything to check. */
  problems: z.array(z.string().max(1000)).max(20),
});
export type FunctionalReport = z.infer<typeof FunctionalReportSchema>;
