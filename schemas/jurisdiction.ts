import { z } from 'zod';

/** ISO 8601 duration such as `P25Y`, `P6Y`, `P30D`, `PT12H`. */
export const IsoDurationSchema = z
  .string()
  .regex(
    /^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/,
    'must be an ISO 8601 duration such as P25Y or P30D',
  );

export const JurisdictionIdSchema = z.string().regex(/^[a-z]{2,8}$/, 'must be a lowercase jurisdiction id such as eu');

export const BucketRoleSchema = z.enum(['landing', 'quarantine', 'curated', 'catalog', 'evidence', 'exports']);
export type BucketRole = z.infer<typeof BucketRoleSchema>;

const BucketNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    'must be a valid S3 bucket name (3-63 lowercase letters, digits, . or -)',
  );

/**
 * The event a retention period counts from: when the data was curated (or the evidence created), when the trial ended
 * (recorded with `steward trial end`), when the record was last in effect, or when a package was submitted.
 */
export const RetentionEventSchema = z.enum(['curation', 'end-of-trial', 'last-effective-date', 'submission']);
export type RetentionEvent = z.infer<typeof RetentionEventSchema>;

/**
 * A retention rule: keep for `duration` after `countsFrom`, on `legalBasis`, then delete. With `minimum`, the law
 * requires keeping the data that long (a duty to keep, which outweighs an erasure request); without, the duration is
 * only an upper limit (storage limitation). Storage enforces the duration with S3 Object Lock in `objectLock` mode
 * (GOVERNANCE can be overridden by an authorized sweep, COMPLIANCE by nobody).
 */
export const RetentionRuleSchema = z.object({
  duration: IsoDurationSchema,
  countsFrom: RetentionEventSchema.default('curation'),
  minimum: z.boolean().default(true),
  legalBasis: z.string().min(1),
  classification: z.string().regex(/^[A-Za-z0-9 +\-=._:/@]{1,256}$/, 'must be usable as an S3 tag value'),
  objectLock: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'),
});
export type RetentionRule = z.infer<typeof RetentionRuleSchema>;

/**
 * How long a subject request may take: due `deadline` after receipt, extendable by at most `extension` in all (with a
 * recorded reason), with reminders `reminders` before the due date; `legalBasis` names the law.
 */
export const DsrDeadlineSchema = z.object({
  deadline: IsoDurationSchema,
  extension: IsoDurationSchema.optional(),
  legalBasis: z.string().min(1),
  /** Lead times before the due date at which the DPO is reminded, e.g. `P7D` and `P1D`. */
  reminders: z.array(IsoDurationSchema).max(10).default([]),
});
export type DsrDeadline = z.infer<typeof DsrDeadlineSchema>;

/** Retention classes of Steward's own evidence (audit segments, certificates): not data classes a package may declare. */
export const EVIDENCE_CLASSES = ['audit-trail', 'deletion-certificate'] as const;

/** The retention class of raw packages in landing and quarantine: identified data, kept only briefly. */
export const RAW_PACKAGE_CLASS = 'raw-staging';
/** The retention class of access packages in the exports bucket (swept like everything else). */
export const ACCESS_EXPORT_CLASS = 'access-export';

/**
 * Retention classes of what Steward itself stages or produces (raw uploads, access exports, preprocessing outputs,
 * evidence): a package may not declare one as its data class.
 */
export const STEWARD_CLASSES: readonly string[] = [
  ...EVIDENCE_CLASSES,
  RAW_PACKAGE_CLASS,
  'access-export',
  'preprocessing-output',
];

/** A storage site: where one copy of a jurisdiction's buckets lives. */
export const StorageSiteSchema = z.object({
  /** Named in deletion certificates and `steward dr status`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and hyphens, at most 40'),
  /** One of the jurisdiction's `regions`. */
  region: z.string().min(1),
  location: z.string().min(1),
});
export type StorageSite = z.infer<typeof StorageSiteSchema>;

export const JurisdictionSchema = z.object({
  id: JurisdictionIdSchema,
  name: z.string().min(1),
  /** The region of the primary site. */
  region: z.string().min(1),
  /** Every region the jurisdiction's data may rest in; no region belongs to two jurisdictions. */
  regions: z.array(z.string().min(1)).min(1),
  /** The primary storage site, and the disaster-recovery site every object version is replicated to. */
  sites: z.object({ primary: StorageSiteSchema, dr: StorageSiteSchema }),
  law: z.array(z.string().min(1)).min(1),
  buckets: z.record(BucketRoleSchema, BucketNameSchema),
  /** Retention per data class; the key is the data class a package declares. */
  retention: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/), RetentionRuleSchema),
  /**
   * Subject requests the law gives a right to, each with its deadline; `null` where it gives none (HIPAA has no right to
   * erasure): such a request is answered with `noRightBasis`.
   */
  dsr: z.object({
    access: DsrDeadlineSchema,
    erasure: DsrDeadlineSchema.nullable(),
    restriction: DsrDeadlineSchema.nullable(),
    /** Why a request of a kind this jurisdiction gives no right to is refused. */
    noRightBasis: z.partialRecord(z.enum(['erasure', 'restriction']), z.string().min(1)).default({}),
  }),
  /** Every package must carry a signature of its manifest by a registered source of its study (see `steward sources`). */
  requireSourceSignature: z.boolean().default(false),
});
export type Jurisdiction = z.infer<typeof JurisdictionSchema>;
