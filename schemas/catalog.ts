import { z } from 'zod';
import { Sha256HexSchema, StudyIdSchema } from './common';
import { DatasetOutputSchema, DatasetRecordSchema, LegalHoldSchema } from './dataset';
import { DatasetIdSchema } from './ingest';
import { ESignatureSchema } from './request';
import { HoldScopeSchema, RetentionChangeSchema, RetentionScanSchema } from './retention';
import { SubjectRequestKindSchema } from './subject-request';
import { KnownJurisdictionSchema } from '../jurisdictions';

/**
 * A change to a shared catalog object. Each object has one writer, the catalog writer workflow of its key, which
 * applies changes one at a time; every change is idempotent, so applying one twice leaves the object as once.
 */
export const CatalogMutationSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dataset.outputs-replaced'),
    datasetId: DatasetIdSchema,
    outputs: z.array(DatasetOutputSchema),
    keyVersions: z.array(z.number().int().positive()),
    at: z.iso.datetime(),
  }),
  z.object({
    kind: z.literal('vault.entries-destroyed'),
    studyId: StudyIdSchema,
    tokens: z.array(z.string()).min(1),
  }),
  z.object({
    /** A signed request is used once: by the first workflow that claims its id. */
    kind: z.literal('request.claimed'),
    requestId: z.string(),
    workflowId: z.string(),
    /** The one run that may act on the request. */
    runId: z.string(),
    bodySha256: Sha256HexSchema,
  }),
  z.object({ kind: z.literal('hold.set'), scope: HoldScopeSchema, hold: LegalHoldSchema }),
  z.object({
    kind: z.literal('hold.released'),
    scope: HoldScopeSchema,
    holdId: z.string().optional(),
    at: z.iso.datetime(),
    by: ESignatureSchema,
    reason: z.string(),
  }),
  z.object({
    kind: z.literal('study.trial-ended'),
    studyId: StudyIdSchema,
    date: z.iso.date(),
    at: z.iso.datetime(),
    by: ESignatureSchema,
  }),
  z.object({
    /** Recomputes every dataset's retention under the rules the worker loaded, after an approved change to them. */
    kind: z.literal('retention.rules-changed'),
    changeId: z.string(),
    at: z.iso.datetime(),
  }),
  z.object({
    /** Claims the expired datasets of the next page of the catalog for a sweep (see `claimExpiredDatasets`). */
    kind: z.literal('retention.claim'),
    sweepId: z.string(),
    batch: z.number().int().nonnegative(),
    asOf: z.iso.datetime(),
    /** The sweep's time when it claimed: claims of other sweeps older than a day by then are stale. */
    now: z.iso.datetime(),
    after: z.string().nullable(),
    limit: z.number().int().min(1).max(1000),
  }),
  z.object({ kind: z.literal('retention.released'), sweepId: z.string() }),
  z.object({
    /** Registers (or renames) a source system's certificate for a study; `required` only ever turns on. */
    kind: z.literal('source.registered'),
    studyId: StudyIdSchema,
    name: z.string().min(1).max(120),
    certificatePem: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
    required: z.boolean(),
    at: z.iso.datetime(),
    by: ESignatureSchema,
  }),
  z.object({
    /** Removes the vault shards of datasets a sweep deleted: the study vault's writer does it, nothing else writes them. */
    kind: z.literal('vault.shards-removed'),
    studyId: StudyIdSchema,
    datasetIds: z.array(z.string()).min(1),
  }),
  z.object({
    /**
     * Opens a subject request for a subject (by keyed digest): when one of the same kind is open, the new one is linked
     * to it (the result's `linkedTo`) instead.
     */
    kind: z.literal('subject-request.opened'),
    requestKind: SubjectRequestKindSchema,
    subjectDigest: Sha256HexSchema,
    requestId: z.string(),
    workflowId: z.string(),
    at: z.iso.datetime(),
    /** The open request this one takes the place of: its workflow no longer runs (terminated, or reset away). */
    supersedes: z.string().optional(),
  }),
  z.object({
    /** The request is answered: a later one of its kind for the subject is a new request. */
    kind: z.literal('subject-request.closed'),
    requestKind: SubjectRequestKindSchema,
    subjectDigest: Sha256HexSchema,
    requestId: z.string(),
  }),
  z.object({
    /** A restriction (Art. 18) in force from `at`: processing leaves out these tokens until it is lifted. */
    kind: z.literal('subject.restricted'),
    requestId: z.string(),
    /** The subject's keyed digest: ingestion under a later key version carries the restriction to the new token. */
    subjectDigest: Sha256HexSchema.optional(),
    studies: z.array(z.object({ studyId: StudyIdSchema, tokens: z.array(z.string()).min(1) })),
    at: z.iso.datetime(),
  }),
  z.object({
    /** An erased subject (Art. 17), recorded before any object is rewritten: no later ingestion brings them back. */
    kind: z.literal('subject.tombstoned'),
    requestId: z.string(),
    subjectDigest: Sha256HexSchema,
    studies: z.array(z.object({ studyId: StudyIdSchema, tokens: z.array(z.string()).min(1) })),
    at: z.iso.datetime(),
  }),
  z.object({
    /** A table rewritten without a subject's rows: its new version replaces the old in the record, with the erasure. */
    kind: z.literal('dataset.rows-erased'),
    datasetId: DatasetIdSchema,
    output: DatasetOutputSchema,
    erasure: DatasetRecordSchema.shape.erasures.unwrap().element,
  }),
  z.object({
    kind: z.literal('subject.restriction-lifted'),
    requestId: z.string(),
    at: z.iso.datetime(),
    by: ESignatureSchema,
    reason: z.string(),
  }),
]);
export type CatalogMutation = z.infer<typeof CatalogMutationSchema>;

export const CatalogMutationResultSchema = z.object({
  /** Whether the object changed (false: the change was already there). */
  changed: z.boolean(),
  /** Source registration: the certificate's fingerprint, and whether the study now requires signatures. */
  fingerprint: Sha256HexSchema.optional(),
  required: z.boolean().optional(),
  /** How many items the change touched: vault entries destroyed, outputs replaced. */
  count: z.number().int().nonnegative(),
  /** Legal holds: the hold, the datasets the change reached, and those another hold still covers. */
  holdId: z.string().optional(),
  datasets: z.array(z.string()).optional(),
  stillHeld: z.array(z.string()).optional(),
  /** End of trial: the datasets' new retention. */
  changes: z.array(RetentionChangeSchema).optional(),
  /** Retention claim: what the page held (claimed datasets without their outputs, which the claim file keeps). */
  scan: RetentionScanSchema.optional(),
  /** Subject request opened: the open request of the same kind for the same subject it was linked to. */
  linkedTo: z.string().optional(),
  /** Subject request closed: the requests that were linked to it while it was open. */
  linked: z.array(z.string()).optional(),
  /** Vault shards removed: every version deleted, and what listing them afterwards found. */
  removed: z
    .array(
      z.object({
        datasetId: z.string(),
        versions: z.array(
          z.object({
            key: z.string(),
            versionId: z.string().nullable(),
            bytes: z.number(),
            deleteMarker: z.boolean(),
            sha256: Sha256HexSchema.nullable(),
          }),
        ),
        remaining: z.number().int().nonnegative(),
      }),
    )
    .optional(),
});
export type CatalogMutationResult = z.infer<typeof CatalogMutationResultSchema>;

export const CatalogWriterInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  /** What the writer owns, e.g. `dataset/ds-eu-…` or `vault/ST-1`. */
  target: z.string().regex(/^(datasets|vault|requests|sources|subjects)\/[A-Za-z0-9._-]{1,80}$/),
  /** Carried across continue-as-new, sealed by the run that continued (see `CatalogWriterStateSchema`). */
  state: z.unknown().optional(),
});
export type CatalogWriterInput = z.infer<typeof CatalogWriterInputSchema>;

/**
 * What a writer hands to its next run: the changes it applied (their message ids, with when each was sealed), how many,
 * and the horizon: a change sealed before it is older than every id remembered, so it is refused as a replay.
 */
export const CatalogWriterStateSchema = z.object({
  done: z.array(z.tuple([z.string(), z.iso.datetime()])),
  applied: z.number().int().nonnegative(),
  horizon: z.iso.datetime().nullable(),
});
export type CatalogWriterState = z.infer<typeof CatalogWriterStateSchema>;

/** The body of a sealed `catalog.change` message: the sender is the workflow the outcome goes back to. */
export const CatalogChangeBodySchema = z.object({ mutation: CatalogMutationSchema });
export type CatalogChangeBody = z.infer<typeof CatalogChangeBodySchema>;

/** The body of a sealed `catalog.reply` message, whose id is the change's. */
export const CatalogReplyBodySchema = z.object({
  result: CatalogMutationResultSchema.optional(),
  /** Set when the change failed for good; the caller fails with it. */
  failure: z.object({ type: z.string(), message: z.string() }).optional(),
});
export type CatalogReplyBody = z.infer<typeof CatalogReplyBodySchema>;

/** The catalog object a mutation changes: the key of its single writer. */
export function mutationTarget(mutation: CatalogMutation): string {
  switch (mutation.kind) {
    // Records of datasets and studies have one writer per jurisdiction: a hold, an end of trial or a sweep's claim
    // reads and changes several at once.
    case 'dataset.outputs-replaced':
    case 'dataset.rows-erased':
    case 'hold.set':
    case 'hold.released':
    case 'study.trial-ended':
    case 'retention.rules-changed':
    case 'retention.claim':
    case 'retention.released':
      return 'datasets/all';
    case 'vault.entries-destroyed':
    case 'vault.shards-removed':
      return `vault/${mutation.studyId}`;
    case 'request.claimed':
      return 'requests/all';
    case 'source.registered':
      return `sources/${mutation.studyId}`;
    case 'subject-request.opened':
    case 'subject-request.closed':
    case 'subject.restricted':
    case 'subject.tombstoned':
    case 'subject.restriction-lifted':
      return 'subjects/all';
  }
}
