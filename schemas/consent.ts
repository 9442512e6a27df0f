import { z } from 'zod';
import { NameSchema, PrincipalSchema, Sha256HexSchema, StudyIdSchema } from './common';
import { KnownJurisdictionSchema } from '../jurisdictions';

const IsoDateSchema = z.iso.date({ message: 'must be a date in YYYY-MM-DD form' });

/** One row of a consent import CSV, as a data steward or the eConsent system exports it. */
export const ConsentCsvRowSchema = z
  .object({
    subject_id: z.string().trim().min(1, 'must not be empty'),
    scopes: z
      .string()
      .transform((s) =>
        s
          .split(/[;|]/)
          .map((x) => x.trim())
          .filter(Boolean),
      )
      .pipe(z.array(NameSchema).min(1, 'must list at least one scope')),
    status: z.enum(['given', 'withdrawn']),
    icf_version: z.string().trim().min(1, 'must not be empty'),
    given_on: IsoDateSchema,
    withdrawn_on: z.union([z.literal('').transform(() => null), IsoDateSchema]).default(null),
    expires_on: z.union([z.literal('').transform(() => null), IsoDateSchema]).default(null),
  })
  .superRefine((row, ctx) => {
    if (row.status === 'withdrawn' && !row.withdrawn_on) {
      ctx.addIssue({ code: 'custom', path: ['withdrawn_on'], message: 'is required when status is withdrawn' });
    }
    // A withdrawal date on a consent is contradictory: never imported as a consent that silently drops it.
    if (row.status === 'given' && row.withdrawn_on) {
      ctx.addIssue({
        code: 'custom',
        path: ['withdrawn_on'],
        message: 'must be empty when status is given (a withdrawal has status withdrawn)',
      });
    }
    if (row.withdrawn_on && row.withdrawn_on < row.given_on) {
      ctx.addIssue({ code: 'custom', path: ['withdrawn_on'], message: 'must not be before given_on' });
    }
  });
export type ConsentCsvRow = z.infer<typeof ConsentCsvRowSchema>;

export const CONSENT_CSV_COLUMNS = [
  'subject_id',
  'scopes',
  'status',
  'icf_version',
  'given_on',
  'withdrawn_on',
  'expires_on',
] as const;

/** A consent record as the registry stores it: keyed by the subject's token, never the raw identifier. */
export const ConsentEntrySchema = z.object({
  token: z.string(),
  scopes: z.array(NameSchema),
  status: z.enum(['given', 'withdrawn']),
  icfVersion: z.string(),
  givenOn: z.string(),
  withdrawnOn: z.string().nullable(),
  expiresOn: z.string().nullable(),
  importedAt: z.string(),
  /** Set when the DPO recorded a withdrawal (`steward consent withdraw`). */
  withdrawal: z.object({ effectiveOn: z.string(), scopes: z.array(z.string()), reason: z.string() }).optional(),
  /**
   * Set on every record of a subject but the one under the oldest key version (a decision is recorded under the token
   * of every live version, and linked to tokens made later), so the subject is counted once. Says only that: which
   * other record it is stays unknown without the key.
   */
  olderKeyRecord: z.literal(true).optional(),
});
export type ConsentEntry = z.infer<typeof ConsentEntrySchema>;

export const ConsentRegistrySchema = z.object({
  format: z.literal('steward-consent/1'),
  jurisdiction: z.string(),
  studyId: z.string(),
  updatedAt: z.string(),
  entries: z.array(ConsentEntrySchema),
});
export type ConsentRegistry = z.infer<typeof ConsentRegistrySchema>;

/**
 * One write to a study's consent registry: an import, a withdrawal, or links (a subject's newest decision copied to
 * the token a dataset re-keyed or ingested under a newer key version holds). Parts are written once, each under its
 * own key, and never changed: the registry is the merge of all of them (per subject token the later decision wins),
 * so concurrent imports, withdrawals and links cannot overwrite each other.
 */
export const ConsentPartSchema = z.object({
  format: z.literal('steward-consent-part/1'),
  jurisdiction: z.string(),
  studyId: z.string(),
  partId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
  kind: z.enum(['import', 'withdrawal', 'link']),
  createdAt: z.string(),
  entries: z.array(ConsentEntrySchema),
});
export type ConsentPart = z.infer<typeof ConsentPartSchema>;

export const ImportConsentInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  studyId: StudyIdSchema,
  source: z.object({ bucket: z.string(), key: z.string(), sha256: Sha256HexSchema }),
  fileName: z.string(),
  submittedBy: PrincipalSchema,
});
export type ImportConsentInput = z.infer<typeof ImportConsentInputSchema>;

/** What a `consent.import` request asks for; the submitter is the request's verified signer. */
export const ImportConsentParamsSchema = ImportConsentInputSchema.omit({ submittedBy: true });
export type ImportConsentParams = z.infer<typeof ImportConsentParamsSchema>;

export const ImportConsentActivityInputSchema = ImportConsentInputSchema.extend({
  /** When the records were imported (workflow time): the tie-break between same-day decisions. */
  importedAt: z.iso.datetime(),
});
export type ImportConsentActivityInput = z.infer<typeof ImportConsentActivityInputSchema>;

export const ImportConsentResultSchema = z.object({
  jurisdiction: z.string(),
  studyId: z.string(),
  rows: z.number().int().nonnegative(),
  given: z.number().int().nonnegative(),
  withdrawn: z.number().int().nonnegative(),
  subjectsInRegistry: z.number().int().nonnegative(),
  /** Subjects whose new record contradicts the stored one of the same date (the later import wins). */
  conflicts: z.number().int().nonnegative(),
  /** The registry part written (catalog bucket key), and keys created for it (a study's first key version). */
  part: z.object({ bucket: z.string(), key: z.string() }).optional(),
  keysCreated: z.array(z.string()).optional(),
});
export type ImportConsentResult = z.infer<typeof ImportConsentResultSchema>;

export const WithdrawConsentWorkflowInputSchema = z.object({
  jurisdiction: KnownJurisdictionSchema,
  studyId: StudyIdSchema,
  subjectId: z.string().min(1),
  /** Scopes to withdraw; none means all of them. */
  scopes: z.array(NameSchema),
  reason: z.string().min(1),
  requestedBy: PrincipalSchema,
});
export type WithdrawConsentWorkflowInput = z.infer<typeof WithdrawConsentWorkflowInputSchema>;

/** What a `consent.withdraw` request asks for. */
export const WithdrawConsentParamsSchema = WithdrawConsentWorkflowInputSchema.omit({ requestedBy: true });
export type WithdrawConsentParams = z.infer<typeof WithdrawConsentParamsSchema>;

export const WithdrawConsentInputSchema = WithdrawConsentWorkflowInputSchema.omit({ requestedBy: true }).extend({
  effectiveOn: z.iso.date(),
  recordedAt: z.iso.datetime(),
  /** The workflow that records the withdrawal: names its registry part, so a retry writes the same part. */
  requestRef: z.string().min(1),
});
export type WithdrawConsentInput = z.infer<typeof WithdrawConsentInputSchema>;

export const WithdrawConsentResultSchema = z.object({
  status: z.enum(['withdrawn', 'scopes-withdrawn']),
  /**
   * The subject's token under the current key version (for the audit trail); the withdrawal is recorded under the
   * token of every live version.
   */
  token: z.string(),
  remainingScopes: z.array(z.string()),
  keyVersionsSearched: z.array(z.number().int().positive()),
});
export type WithdrawConsentResult = z.infer<typeof WithdrawConsentResultSchema>;

export const SubjectDatasetHitSchema = z.object({
  datasetId: z.string(),
  table: z.string(),
  rows: z.number().int().positive(),
});
export type SubjectDatasetHit = z.infer<typeof SubjectDatasetHitSchema>;

export const FindSubjectDatasetsInputSchema = z.object({ studyId: StudyIdSchema, subjectId: z.string().min(1) });
export type FindSubjectDatasetsInput = z.infer<typeof FindSubjectDatasetsInputSchema>;

export const WithdrawConsentWorkflowResultSchema = WithdrawConsentResultSchema.omit({ token: true }).extend({
  effectiveOn: z.iso.date(),
  /** Datasets already holding the subject's rows: for the DPO to decide on erasure. */
  datasets: z.array(SubjectDatasetHitSchema),
});
export type WithdrawConsentWorkflowResult = z.infer<typeof WithdrawConsentWorkflowResultSchema>;
