import { z } from 'zod';
import { IsoDurationSchema } from './jurisdiction';
import { PrincipalSchema, REQUEST_ID_PATTERN, Sha256HexSchema, StudyIdSchema } from './common';
import { ESignatureSchema, SignedRequestSchema } from './request';

/** What a data subject asks for: a copy of their data (GDPR Art. 15), its erasure (Art. 17), or its restriction (Art. 18). */
export const SubjectRequestKindSchema = z.enum(['access', 'erasure', 'restriction']);
export type SubjectRequestKind = z.infer<typeof SubjectRequestKindSchema>;

/** The action of the signed request that files each kind. */
export const FILING_ACTIONS = {
  access: 'dsr.access',
  erasure: 'dsr.erase',
  restriction: 'dsr.restrict',
} as const satisfies Record<SubjectRequestKind, string>;

/**
 * Where a request stands. `failed` waits for the DPO's retry (or a cancel); `restricted` holds the restriction in force
 * until it is lifted; `linked` ends a request that an open one of the same kind for the same subject already answers.
 */
export const SubjectRequestStateSchema = z.enum([
  'received',
  'identity-verified',
  'pending-approval',
  'in-progress',
  'restricted',
  'failed',
  'completed',
  'completed-with-exemptions',
  'rejected',
  'cancelled',
  'linked',
]);
export type SubjectRequestState = z.infer<typeof SubjectRequestStateSchema>;

/** States in which the request is still owed an answer: its deadline counts, reminders and escalation apply. */
export const OPEN_STATES: readonly SubjectRequestState[] = [
  'received',
  'identity-verified',
  'pending-approval',
  'in-progress',
  'failed',
];

/** States a request ends in: its workflow is closed. */
export const FINAL_STATES: readonly SubjectRequestState[] = [
  'completed',
  'completed-with-exemptions',
  'rejected',
  'cancelled',
  'linked',
];

const ReasonSchema = z.string().trim().min(3, 'must say why (at least 3 characters)').max(2000);

/** A receipt date (`2026-12-01`, read as midnight UTC) or a moment (`2026-12-01T09:30:00Z`). */
export const ReceivedSchema = z.union([z.iso.date(), z.iso.datetime()], {
  message: 'must be a date (YYYY-MM-DD) or a UTC date-time',
});

/** The parameters of the signed request that files a subject request. */
export const SubjectRequestParamsSchema = z.object({
  /** The subject's identifier as the source systems know it: only keyed digests and tokens of it are kept. */
  subjectId: z.string().trim().min(1).max(256),
  /** Only this study (default: every study of the jurisdiction). */
  studyId: StudyIdSchema.optional(),
  received: ReceivedSchema,
  reason: ReasonSchema,
});
export type SubjectRequestParams = z.infer<typeof SubjectRequestParamsSchema>;

/** The decisions a DPO signs on an open request, each its own action. */
export const DecisionKindSchema = z.enum(['verify-identity', 'approve', 'reject', 'extend', 'lift', 'cancel', 'retry']);
export type DecisionKind = z.infer<typeof DecisionKindSchema>;

/** How the subject's identity was verified; the evidence stays where it was checked, Steward keeps a reference. */
export const IdentityMethodSchema = z.enum([
  'in-person',
  'id-document',
  'account-login',
  'knowledge-based',
  'authorized-representative',
  'other',
]);

export const DecisionParamsSchema = z.discriminatedUnion('decision', [
  z.object({
    decision: z.literal('verify-identity'),
    requestId: z.string().regex(REQUEST_ID_PATTERN),
    method: IdentityMethodSchema,
    /**
     * Where the evidence is kept outside Steward (a case number, a ticket): a reference, never the document. Long
     * text or anything that looks like file content is refused.
     */
    evidenceRef: z
      .string()
      .trim()
      .min(3)
      .max(200)
      .regex(/^[^\n\r]*$/, 'must be one line: a reference to the evidence, not the evidence'),
    reason: ReasonSchema,
  }),
  z.object({
    decision: z.literal('approve'),
    requestId: z.string().regex(REQUEST_ID_PATTERN),
    reason: ReasonSchema,
    /**
     * Datasets the DPO erases although a duty to keep them would exempt them, each with its reason (signed with the
     * approval). A legal hold or a COMPLIANCE lock is never overridden.
     */
    overrides: z
      .array(z.object({ datasetId: z.string().min(1).max(200), reason: ReasonSchema }))
      .max(100)
      .optional(),
  }),
  z.object({ decision: z.literal('reject'), requestId: z.string().regex(REQUEST_ID_PATTERN), reason: ReasonSchema }),
  z.object({
    decision: z.literal('extend'),
    requestId: z.string().regex(REQUEST_ID_PATTERN),
    by: IsoDurationSchema,
    reason: ReasonSchema,
  }),
  z.object({ decision: z.literal('lift'), requestId: z.string().regex(REQUEST_ID_PATTERN), reason: ReasonSchema }),
  z.object({ decision: z.literal('cancel'), requestId: z.string().regex(REQUEST_ID_PATTERN), reason: ReasonSchema }),
  z.object({ decision: z.literal('retry'), requestId: z.string().regex(REQUEST_ID_PATTERN), reason: ReasonSchema }),
]);
export type DecisionParams = z.infer<typeof DecisionParamsSchema>;

/** The update a DPO's decision arrives in: their signed request, checked by the request's workflow. */
export const DecisionInputSchema = z.object({ request: SignedRequestSchema });
export type DecisionInput = z.infer<typeof DecisionInputSchema>;

/** A recorded step of a request: who signed what, when, why. */
export const RequestStepSchema = z.object({
  step: z.string(),
  at: z.iso.datetime(),
  by: PrincipalSchema.nullable(),
  reason: z.string().optional(),
  eSignature: ESignatureSchema.optional(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
});
export type RequestStep = z.infer<typeof RequestStepSchema>;

/** Where a subject's tokens were looked for: under each live key version of a study; destroyed versions crypto-erased. */
export const SubjectTokensSchema = z.object({
  studies: z.array(
    z.object({
      studyId: StudyIdSchema,
      tokens: z.array(z.object({ version: z.number().int().positive(), token: z.string() })),
      /** Key versions destroyed: whatever they pseudonymized cannot be linked to anyone any more. */
      cryptoErased: z.array(z.number().int().positive()),
    }),
  ),
});
export type SubjectTokens = z.infer<typeof SubjectTokensSchema>;

/** What a request's workflow shows (query, `steward dsr status|show`): never the subject's identifier or tokens. */
export const SubjectRequestStatusSchema = z.object({
  requestId: z.string(),
  jurisdiction: z.string(),
  kind: SubjectRequestKindSchema,
  studyId: StudyIdSchema.nullable(),
  state: SubjectRequestStateSchema,
  receivedAt: z.iso.datetime(),
  dueAt: z.iso.datetime(),
  /** The latest the due date may move to, with every extension the law allows; null where none is allowed. */
  latestDueAt: z.iso.datetime().nullable(),
  legalBasis: z.string(),
  overdue: z.boolean(),
  remindersSent: z.array(z.string()),
  extensions: z.array(z.object({ by: IsoDurationSchema, reason: z.string(), at: z.iso.datetime() })),
  identity: z
    .object({ method: IdentityMethodSchema, evidenceRef: z.string(), at: z.iso.datetime(), by: PrincipalSchema })
    .nullable(),
  approval: ESignatureSchema.nullable(),
  /** A request of the same kind for the same subject that was open when this one arrived: it answers this one. */
  linkedTo: z.string().nullable(),
  /** Requests that arrived while this one was open and are answered by it. */
  linked: z.array(z.string()),
  /** The step that failed and why (a retry runs it again), while `failed`. */
  failure: z.object({ step: z.string(), message: z.string(), type: z.string().nullable() }).nullable(),
  /** What the work found and did, per kind (counts and references: no personal data). */
  outcome: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  steps: z.array(RequestStepSchema),
  /** SHA-256 of the filing request's body, as signed. */
  filedSha256: Sha256HexSchema,
  filedBy: PrincipalSchema,
});
export type SubjectRequestStatus = z.infer<typeof SubjectRequestStatusSchema>;

/** Filing a request: the subject's keyed digest (for linking duplicates) and the deadline rule in force. */
export const OpenSubjectRequestInputSchema = z.object({
  subjectId: z.string().min(1),
});
export type OpenSubjectRequestInput = z.infer<typeof OpenSubjectRequestInputSchema>;

export const SubjectTokensInputSchema = z.object({
  subjectId: z.string().min(1),
  studyId: StudyIdSchema.optional(),
});
export type SubjectTokensInput = z.infer<typeof SubjectTokensInputSchema>;

/** A subject's restriction as the catalog keeps it: by token under every key version, never the identifier. */
export const RestrictionSchema = z.object({
  format: z.literal('steward-restriction/1'),
  requestId: z.string(),
  jurisdiction: z.string(),
  /** The subject's keyed digest (which no key rotation changes): absent in restrictions recorded before it was kept. */
  subjectDigest: Sha256HexSchema.optional(),
  since: z.iso.datetime(),
  studies: z.array(z.object({ studyId: StudyIdSchema, tokens: z.array(z.string()).min(1) })),
  liftedAt: z.iso.datetime().nullable(),
  liftedBy: ESignatureSchema.nullable(),
  liftReason: z.string().nullable(),
});
export type Restriction = z.infer<typeof RestrictionSchema>;

/** An erased subject, by token under every key version and by keyed digest (which survives key rotation). */
export const TombstoneSchema = z.object({
  format: z.literal('steward-tombstone/1'),
  requestId: z.string(),
  jurisdiction: z.string(),
  subjectDigest: Sha256HexSchema,
  since: z.iso.datetime(),
  studies: z.array(z.object({ studyId: StudyIdSchema, tokens: z.array(z.string()).min(1) })),
});
export type Tombstone = z.infer<typeof TombstoneSchema>;

/**
 * Tokens a key migration carried for restricted or erased subjects: `from` is a token a restriction or tombstone (or an
 * earlier carry) names, `to` the same subject's token under the study's new key version.
 */
export const CarriedTokensSchema = z.object({
  format: z.literal('steward-carried-tokens/1'),
  jurisdiction: z.string(),
  studyId: StudyIdSchema,
  datasetId: z.string(),
  toVersion: z.number().int().positive(),
  createdAt: z.iso.datetime(),
  entries: z.array(z.object({ from: z.string(), to: z.string() })).min(1),
});
export type CarriedTokens = z.infer<typeof CarriedTokensSchema>;

/** An open request of a kind for a subject (by keyed digest): a second one while it is open is linked to it. */
export const OpenRequestMarkerSchema = z.object({
  format: z.literal('steward-open-request/1'),
  kind: SubjectRequestKindSchema,
  subjectDigest: Sha256HexSchema,
  requestId: z.string(),
  workflowId: z.string(),
  openedAt: z.iso.datetime(),
  linked: z.array(z.string()),
});
export type OpenRequestMarker = z.infer<typeof OpenRequestMarkerSchema>;

/** A place that holds the subject's data, as discovery found it (tokens, ids and counts: no personal data). */
export const SubjectPlaceSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dataset'),
    datasetId: z.string(),
    studyId: StudyIdSchema,
    dataClass: z.string(),
    table: z.string(),
    bucket: z.string(),
    key: z.string(),
    versionId: z.string().nullable(),
    sha256: Sha256HexSchema,
    subjectColumn: z.string(),
    /** The subject's rows in it. */
    rows: z.number().int().positive(),
  }),
  z.object({ kind: z.literal('consent'), studyId: StudyIdSchema, records: z.number().int().positive() }),
  z.object({ kind: z.literal('vault'), studyId: StudyIdSchema, entries: z.number().int().positive() }),
  /** A raw upload naming the subject by identifier: a package in landing or quarantine, or a consent file. */
  z.object({
    kind: z.literal('upload'),
    role: z.enum(['landing', 'quarantine']),
    bucket: z.string(),
    prefix: z.string(),
    packageId: z.string().nullable(),
    studyId: z.string().nullable(),
    /** Its files that name the subject. */
    files: z.number().int().positive(),
  }),
  /** An access package made for the subject earlier, in the exports bucket. */
  z.object({
    kind: z.literal('export'),
    requestId: z.string().regex(REQUEST_ID_PATTERN),
    bucket: z.string(),
    prefix: z.string(),
  }),
]);
export type SubjectPlace = z.infer<typeof SubjectPlaceSchema>;

/** A place the subject index knows: a table of a dataset (one object version), or an access package. */
export const IndexPlaceSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dataset'),
    datasetId: z.string(),
    table: z.string(),
    bucket: z.string(),
    key: z.string(),
    versionId: z.string().nullable(),
    sha256: Sha256HexSchema,
    subjectColumn: z.string(),
  }),
  z.object({
    kind: z.literal('export'),
    requestId: z.string().regex(REQUEST_ID_PATTERN),
    bucket: z.string(),
    prefix: z.string(),
  }),
]);
export type IndexPlace = z.infer<typeof IndexPlaceSchema>;

/** One shard of a segment: a run of tokens in sorted order; the fence is its first and last token. */
export const IndexShardSchema = z.object({
  key: z.string(),
  first: z.string(),
  last: z.string(),
  tokens: z.number().int().positive(),
  bytes: z.number().int().nonnegative(),
});

/** An immutable token-sorted run of postings (token → places), in shards. */
export const IndexSegmentSchema = z.object({
  id: z.string(),
  /** The places its postings name, by position. */
  places: z.array(z.string()),
  postings: z.number().int().nonnegative(),
  shards: z.array(IndexShardSchema),
});
export type IndexSegment = z.infer<typeof IndexSegmentSchema>;

/**
 * The jurisdiction's subject index (`subject-index/manifest.json` in its catalog bucket): which places it covers, the
 * dataset records (by ETag) it has read, and its segments with their fences. Holds tokens only, never identifiers.
 */
export const SubjectIndexManifestSchema = z.object({
  format: z.literal('steward-subject-index/1'),
  jurisdiction: z.string(),
  updatedAt: z.iso.datetime(),
  /** Live places by id: a posting naming a place not here is stale (its object was rewritten or deleted). */
  places: z.record(z.string(), IndexPlaceSchema),
  /** The ETag of each dataset record whose places are indexed. */
  datasets: z.record(z.string(), z.string()),
  segments: z.array(IndexSegmentSchema),
  /** The next place id's number. */
  next: z.number().int().nonnegative(),
});
export type SubjectIndexManifest = z.infer<typeof SubjectIndexManifestSchema>;

export const DiscoveryInputSchema = z.object({
  found: SubjectTokensSchema,
  /** Through the subject index (the default), or by reading every table of the subject's studies. */
  by: z.enum(['index', 'scan']).optional(),
});
export type DiscoveryInput = z.infer<typeof DiscoveryInputSchema>;

export const EraseFromIndexInputSchema = z.object({
  tokens: z.array(z.string()),
  rewritten: z.array(
    z.object({ datasetId: z.string(), table: z.string(), versionId: z.string().nullable(), sha256: Sha256HexSchema }),
  ),
  /** Tables kept (a hold, a duty to keep): their postings of the subject stay, so later requests still find them. */
  kept: z.array(z.object({ datasetId: z.string(), table: z.string() })).default([]),
});
export type EraseFromIndexInput = z.infer<typeof EraseFromIndexInputSchema>;

/** Where the subject's data is, and what finding it read. */
export const DiscoverySchema = z.object({
  places: z.array(SubjectPlaceSchema),
  /** Study key versions destroyed: what they pseudonymized is crypto-erased, not searched. */
  cryptoErased: z.array(z.object({ studyId: StudyIdSchema, versions: z.array(z.number().int().positive()) })),
  read: z.object({ objects: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() }),
});
export type Discovery = z.infer<typeof DiscoverySchema>;

export const AccessPackageInputSchema = z.object({
  requestId: z.string().regex(REQUEST_ID_PATTERN),
  found: SubjectTokensSchema,
  places: z.array(SubjectPlaceSchema),
  /** Workflow time: the package's date and its expiry count from it. */
  at: z.iso.datetime(),
});
export type AccessPackageInput = z.infer<typeof AccessPackageInputSchema>;

export const PackageFileSchema = z.object({
  path: z.string().regex(/^[A-Za-z0-9._/-]{1,300}$/),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
});

/** The manifest of an access package: every file with its SHA-256; signed (CMS, detached) beside it. */
export const AccessManifestSchema = z.object({
  format: z.literal('steward-access-package/1'),
  requestId: z.string(),
  jurisdiction: z.string(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  files: z.array(PackageFileSchema),
});
export type AccessManifest = z.infer<typeof AccessManifestSchema>;

/** Where an access package is and when it expires: the catalog's record, which sweeps and `dsr export` read. */
export const ExportRecordSchema = z.object({
  format: z.literal('steward-export/1'),
  requestId: z.string(),
  jurisdiction: z.string(),
  bucket: z.string(),
  prefix: z.string(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  legalBasis: z.string(),
  manifestSha256: Sha256HexSchema,
  objects: z.array(
    z.object({ key: z.string(), versionId: z.string().nullable(), sha256: Sha256HexSchema, bytes: z.number() }),
  ),
});
export type ExportRecord = z.infer<typeof ExportRecordSchema>;

export const AccessPackageSummarySchema = z.object({
  bucket: z.string(),
  prefix: z.string(),
  files: z.number().int().nonnegative(),
  datasets: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  reidentified: z.number().int().nonnegative(),
  manifestSha256: Sha256HexSchema,
  expiresAt: z.iso.datetime(),
});
export type AccessPackageSummary = z.infer<typeof AccessPackageSummarySchema>;

export const ErasureOverrideSchema = z.object({
  datasetId: z.string(),
  reason: z.string(),
  /** Who signed it, and when: the approval's e-signature. */
  by: z.string(),
  at: z.iso.datetime(),
});
export type ErasureOverride = z.infer<typeof ErasureOverrideSchema>;

export const DecideErasureInputSchema = z.object({
  places: z.array(SubjectPlaceSchema),
  overrides: z.array(ErasureOverrideSchema).optional(),
  asOf: z.iso.datetime(),
  /** The jurisdiction gives no right to erasure: every place is kept on this basis. */
  noRight: z.string().optional(),
});
export type DecideErasureInput = z.infer<typeof DecideErasureInputSchema>;

export const ErasureItemSchema = z.object({
  itemId: z.string(),
  place: SubjectPlaceSchema,
  decision: z.enum(['erase', 'keep']),
  /** How a table is erased: rewritten without the subject, or (a derived output) deleted whole. */
  action: z.enum(['rewrite', 'delete']).optional(),
  /** A derived output's job, to make it again from its run documentation without the subject. */
  rerun: z.object({ jobId: z.string(), fromDatasetId: z.string() }).optional(),
  /** A DPO's override of the exemption that would have kept it. */
  override: ErasureOverrideSchema.optional(),
  legalBasis: z.string(),
  until: z.string().nullable(),
  lock: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), until: z.string() }).nullable(),
});

/** A raw upload to rewrite without the subject's rows: the identifier is what a raw upload holds. */
export const RewriteUploadInputSchema = z.object({
  item: ErasureItemSchema,
  subjectId: z.string().min(1),
  requestId: z.string(),
  at: z.iso.datetime(),
});
export type RewriteUploadInput = z.infer<typeof RewriteUploadInputSchema>;

export const RewriteInputSchema = z.object({
  item: ErasureItemSchema,
  tokens: z.array(z.string()).min(1),
});
export type RewriteInput = z.infer<typeof RewriteInputSchema>;

/** What `steward dsr index verify|rebuild` asks for. */
export const SubjectIndexParamsSchema = z.object({ jurisdiction: z.string(), reason: z.string().min(1) });
export type SubjectIndexParams = z.infer<typeof SubjectIndexParamsSchema>;

export const SubjectIndexResultSchema = z.object({
  operation: z.enum(['verify', 'rebuild']),
  /** Datasets indexed (rebuild). */
  datasets: z.number().int().nonnegative(),
  /** Postings compared (verify) or distinct tokens indexed (rebuild). */
  tokens: z.number().int().nonnegative(),
  /** Objects read. */
  objects: z.number().int().nonnegative(),
  /** Where the index and the tables disagree (verify): empty when they agree. */
  problems: z.array(z.string()),
});
export type SubjectIndexResult = z.infer<typeof SubjectIndexResultSchema>;

export const DiscoverUploadsInputSchema = z.object({
  subjectId: z.string().min(1),
  studyId: StudyIdSchema.optional(),
});
export type DiscoverUploadsInput = z.infer<typeof DiscoverUploadsInputSchema>;
