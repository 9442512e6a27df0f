import { z } from 'zod';
import { NameSchema } from './common';

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
