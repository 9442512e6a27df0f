import { z } from 'zod';
import { PrincipalSchema, Sha256HexSchema } from './common';

/** Every kind of audited operation: a closed list, so a query by action finds all of its kind. */
export const AuditActionSchema = z.enum([
  'package.submitted',
  'package.verified',
  'package.rejected',
  'package.quarantined',
  'package.curated',
  'ingestion.discarded',
  'dataset.recorded',
  'object.written',
  'object.deleted',
  'key.created',
  'key.used',
  'key.rotated',
  'key.destroyed',
  'consent.imported',
  'consent.withdrawn',
  'dataset.repseudonymized',
  'subject.reidentified',
  'request.denied',
  'message.refused',
  'identity.issued',
  'identity.revoked',
  'certificate.issued',
  'audit.queried',
  'legal-hold.set',
  'legal-hold.released',
  'trial.ended',
  'retention.changed',
  'retention.held',
  'dataset.deleted',
  'package.deleted',
  'retention.swept',
  'schedule.changed',
  'payloads.decoded',
  'codec.granted',
  'source.registered',
  'preprocess.started',
  'preprocess.completed',
  'preprocess.failed',
  'preprocess.cancelled',
  'preprocess.refused',
  'preprocess.verified',
  'scratch.wiped',
  'dsr.received',
  'dsr.linked',
  'dsr.identity-verified',
  'dsr.approved',
  'dsr.rejected',
  'dsr.extended',
  'dsr.reminder',
  'dsr.overdue',
  'dsr.started',
  'dsr.failed',
  'dsr.retried',
  'dsr.cancelled',
  'dsr.restricted',
  'dsr.disclosed',
  'subject.erased',
  'dsr.lifted',
  'dsr.completed',
  'dsr.refused',
  'dsr.index-verified',
  'dsr.index-rebuilt',
  'export.deleted',
  'qualification.completed',
  'qualification.unsigned',
  'baseline.approved',
  'qa-signature.refused',
  'drift.checked',
  'deviation.opened',
  'deviation.investigated',
  'deviation.closed',
  'change.proposed',
  'change.refused',
  'change.approved',
  'change.rejected',
  'change.applied',
  'change.expired',
  'workers.deployed',
  'replication.pruned',
  'dr.failed-over',
  'dr.failed-back',
]);
export type AuditAction = z.infer<typeof AuditActionSchema>;

export const ObjectRefSchema = z.object({
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable().optional(),
  sha256: Sha256HexSchema.optional(),
  bytes: z.number().int().nonnegative().optional(),
});
export type ObjectRef = z.infer<typeof ObjectRefSchema>;

/**
 * One audited operation (21 CFR 11.10(e)): who, what, on which objects, datasets and subject tokens, when (UTC, ms),
 * why, with what outcome, in which workflow. Never a raw identifier or a data value: subjects appear as tokens.
 */
export const AuditEventSchema = z.object({
  /** Unique; from a workflow it is derived from the workflow, run and sequence, so a retry repeats it, not adds it. */
  id: z.string().regex(/^[A-Za-z0-9._:/@-]{1,200}$/),
  at: z.iso.datetime({ precision: 3 }),
  jurisdiction: z.string(),
  /** Who acted; null for a refused request whose signer could not be identified. */
  principal: PrincipalSchema.nullable(),
  action: AuditActionSchema,
  outcome: z.enum(['success', 'failure', 'denied']),
  targets: z
    .object({
      datasetId: z.string().optional(),
      packageId: z.string().optional(),
      studyId: z.string().optional(),
      requestId: z.string().optional(),
      certificateId: z.string().optional(),
      objects: z.array(ObjectRefSchema).optional(),
      subjectTokens: z.array(z.string()).optional(),
      keyIds: z.array(z.string()).optional(),
    })
    .default({}),
  /** Purpose or reason the actor gave. */
  reason: z.string().max(1000).optional(),
  workflow: z.object({ workflowId: z.string(), runId: z.string() }).optional(),
  /** Counts, rules, names: never personal data. */
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;
export type AuditEventInput = z.input<typeof AuditEventSchema>;

/** The signed head of a sealed segment: what chains segments together and what the evidence signer signs. */
export const SegmentHeadSchema = z.object({
  format: z.literal('steward-audit-head/1'),
  jurisdiction: z.string(),
  seq: z.number().int().nonnegative(),
  /** Chain position of the segment's first event (positions count from 0 across the jurisdiction's trail). */
  firstPosition: z.number().int().nonnegative(),
  count: z.number().int().positive(),
  /** Chain hash of the event before this segment's first (64 zeros for the first event of the trail). */
  prevEventHash: Sha256HexSchema,
  lastEventHash: Sha256HexSchema,
  /** RFC 9162 Merkle tree hash over the segment's events. */
  merkleRoot: Sha256HexSchema,
  /** SHA-256 of the previous segment's head (64 zeros for the first segment). */
  prevSegmentHash: Sha256HexSchema,
  sealedAt: z.iso.datetime(),
});
export type SegmentHead = z.infer<typeof SegmentHeadSchema>;

/** A sealed segment of a jurisdiction's audit trail, stored write-once in its evidence bucket. */
export const AuditSegmentSchema = z.object({
  format: z.literal('steward-audit-segment/1'),
  head: SegmentHeadSchema,
  /** RSA-SHA256 over the head's canonical JSON, by the jurisdiction's evidence signer; base64. */
  signature: z.string(),
  signerCertificate: z.string(),
  /** The events in chain order, each with its position and chain hash: H(previous chain hash || leaf hash). */
  entries: z
    .array(z.object({ position: z.number().int().nonnegative(), hash: Sha256HexSchema, event: AuditEventSchema }))
    .min(1),
});
export type AuditSegment = z.infer<typeof AuditSegmentSchema>;

/** One event with what proves it belongs to a signed segment, without the segment's other events (RFC 9162 §2.1.3). */
export const InclusionProofSchema = z.object({
  format: z.literal('steward-audit-proof/1'),
  event: AuditEventSchema,
  leafIndex: z.number().int().nonnegative(),
  treeSize: z.number().int().positive(),
  path: z.array(Sha256HexSchema),
  head: SegmentHeadSchema,
  signature: z.string(),
  signerCertificate: z.string(),
  /** The Steward CA certificate, for convenience; an auditor checks against the one they hold. */
  caCertificate: z.string(),
});
export type InclusionProof = z.infer<typeof InclusionProofSchema>;

/** Where an event sits in the sealed trail: what certificates cite. */
export const AuditChainRefSchema = z.object({
  jurisdiction: z.string(),
  eventId: z.string(),
  position: z.number().int().nonnegative(),
  segment: z.number().int().nonnegative(),
  /** The event's chain hash. */
  eventHash: Sha256HexSchema,
});
export type AuditChainRef = z.infer<typeof AuditChainRefSchema>;

/** Where a jurisdiction's trail stands: the next segment number and position, and the hashes the next one links to. */
export const AuditTrailHeadSchema = z.object({
  seq: z.number().int().nonnegative(),
  position: z.number().int().nonnegative(),
  prevEventHash: Sha256HexSchema,
  prevSegmentHash: Sha256HexSchema,
});
export type AuditTrailHead = z.infer<typeof AuditTrailHeadSchema>;

export const AuditTrailInputSchema = z.object({
  jurisdiction: z.string(),
  /** Carried across continue-as-new, sealed by the run that continued (see `AuditTrailStateSchema`). */
  state: z.unknown().optional(),
});
export type AuditTrailInput = z.infer<typeof AuditTrailInputSchema>;

/**
 * What a trail hands to its next run: its head, the events still to seal, the ids of recent events with when their
 * message was sealed (a repeated delivery is dropped), and the horizon: messages sealed before it are older than every
 * id remembered, so they are refused as replays.
 */
export const AuditTrailStateSchema = z.object({
  head: AuditTrailHeadSchema,
  pending: z.array(AuditEventSchema),
  recent: z.array(z.tuple([z.string(), z.iso.datetime()])),
  horizon: z.iso.datetime().nullable(),
});
export type AuditTrailState = z.infer<typeof AuditTrailStateSchema>;

export const SealSegmentInputSchema = z.object({
  jurisdiction: z.string(),
  head: AuditTrailHeadSchema,
  sealedAt: z.iso.datetime(),
  events: z.array(AuditEventSchema).min(1),
});
export type SealSegmentInput = z.infer<typeof SealSegmentInputSchema>;

export const LocateEventInputSchema = z.object({ jurisdiction: z.string(), eventId: z.string() });
export type LocateEventInput = z.infer<typeof LocateEventInputSchema>;

export const LocateEventsInputSchema = z.object({ jurisdiction: z.string(), eventIds: z.array(z.string()).min(1) });
export type LocateEventsInput = z.infer<typeof LocateEventsInputSchema>;

/** What an `audit.query` request asks: events matching every filter given. */
export const AuditQueryParamsSchema = z
  .object({
    /** Printed name or certificate serial of the actor. */
    actor: z.string().optional(),
    datasetId: z.string().optional(),
    /** A subject's real identifier (tokenized under every live key version of `studyId`; never stored or shown). */
    subject: z.string().optional(),
    /** A subject token, as curated data holds it. */
    token: z.string().optional(),
    studyId: z.string().optional(),
    action: AuditActionSchema.optional(),
    since: z.iso.datetime().optional(),
    until: z.iso.datetime().optional(),
    limit: z.number().int().positive().max(10_000).default(1000),
  })
  .refine((q) => !q.subject || q.studyId, { path: ['studyId'], message: 'a subject identifier needs its study' });
export type AuditQueryParams = z.infer<typeof AuditQueryParamsSchema>;

export const AuditQueryInputSchema = AuditQueryParamsSchema.safeExtend({ jurisdiction: z.string() });
export type AuditQueryInput = z.infer<typeof AuditQueryInputSchema>;

export const AuditQueryResultSchema = z.object({
  jurisdiction: z.string(),
  /** Matching sealed events with their chain positions, oldest first. */
  events: z.array(z.object({ position: z.number().int(), segment: z.number().int(), event: AuditEventSchema })),
  segmentsRead: z.number().int(),
  truncated: z.boolean(),
  /** The tokens a subject identifier was looked up by (for the query's own audit event). */
  subjectTokens: z.array(z.string()),
});
export type AuditQueryResult = z.infer<typeof AuditQueryResultSchema>;
