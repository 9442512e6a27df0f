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

export const RequirementsFileSchema = z.object({
  format: z.literal('steward-requirements/1'),
  requirements: z.array(RequirementSchema).min(1),
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

export const QualifyParamsSchema = z.object({
  phase: z.enum(['iq']),
  /** Checks to waive (each with why): the verdict is then PROVISIONAL at best. */
  waive: z.array(z.object({ check: z.string(), reason: z.string().min(3).max(500) })).default([]),
});
export type QualifyParams = z.infer<typeof QualifyParamsSchema>;

export const BaselineParamsSchema = z.object({ reason: z.string().min(3).max(1000) });

/** What a qualification or baseline workflow shows while it runs and once it is done. */
export const QualificationStatusSchema = z.object({
  stage: z.enum(['running', 'awaiting-signature', 'signed', 'unsigned']),
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
