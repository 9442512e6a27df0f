import { z } from 'zod';
import { NameSchema, REQUEST_ID_PATTERN, StudyIdSchema } from './common';
import { DatasetIdSchema } from './ingest';
import { JurisdictionIdSchema } from './jurisdiction';
import { IdentityMethodSchema, SubjectRequestStateSchema } from './subject-request';

/** Options of the `steward` commands, validated before anything runs; a mismatch names the option and its rule. */
export const RequestIdSchema = z
  .string()
  .regex(REQUEST_ID_PATTERN, 'must be 6-64 letters, digits, "_" or "-" (as printed by an earlier run)');

const Text = z.string().trim().min(1, 'must not be empty').max(1000, 'must be at most 1000 characters');

export const StudyOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema, study: StudyIdSchema });

export const ConsentImportOptionsSchema = StudyOptionsSchema;

export const ConsentWithdrawOptionsSchema = StudyOptionsSchema.extend({
  subject: Text,
  reason: Text,
  scope: z.array(NameSchema).optional(),
  requestId: RequestIdSchema.optional(),
});

export const KeysRotateOptionsSchema = StudyOptionsSchema.extend({ requestId: RequestIdSchema.optional() });

export const KeysDestroyOptionsSchema = KeysRotateOptionsSchema.extend({ version: z.coerce.number().int().positive() });

export const ReidentifyOptionsSchema = StudyOptionsSchema.extend({
  reason: Text,
  requestId: RequestIdSchema.optional(),
});

export const DatasetArgumentSchema = DatasetIdSchema;

export const DatasetsListOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema.optional(),
  study: StudyIdSchema.optional(),
});

/** `--as-of`: a date (midnight UTC) or an ISO 8601 date-time. */
const AsOfSchema = z
  .string()
  .refine((v) => /^\d{4}-\d{2}-\d{2}(T.+)?$/.test(v) && !Number.isNaN(Date.parse(v)), {
    message: 'must be a date (2026-11-27) or an ISO 8601 date-time (2026-11-27T02:00:00Z)',
  })
  .transform((v) => new Date(/T/.test(v) ? v : `${v}T00:00:00Z`).toISOString());

export const HoldOptionsSchema = z
  .object({
    jurisdiction: JurisdictionIdSchema.optional(),
    dataset: DatasetIdSchema.optional(),
    study: StudyIdSchema.optional(),
    reason: Text,
    hold: z
      .string()
      .regex(/^hold-[0-9a-f]{32}$/, 'must be a hold id such as hold-0123… (see `steward datasets show`)')
      .optional(),
    requestId: RequestIdSchema.optional(),
  })
  .refine((o) => (o.dataset === undefined) !== (o.study === undefined), {
    message: 'name exactly one of --dataset or --study',
    path: ['dataset'],
  })
  .refine((o) => o.dataset !== undefined || o.jurisdiction !== undefined, {
    message: '--jurisdiction is required with --study',
    path: ['jurisdiction'],
  });

export const TrialEndOptionsSchema = StudyOptionsSchema.extend({
  date: z.iso.date('must be a date such as 2026-06-30'),
  requestId: RequestIdSchema.optional(),
});

export const SweepOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  asOf: AsOfSchema.optional(),
  dryRun: z.boolean().default(false),
  requestId: RequestIdSchema.optional(),
});

export const ScheduleOptionsSchema = z.object({ jurisdiction: JurisdictionIdSchema });

export const ScheduleSetOptionsSchema = ScheduleOptionsSchema.extend({
  cron: z
    .string()
    .trim()
    .regex(/^(\S+\s+){4}\S+$/, 'must be five cron fields, e.g. "0 2 * * *"'),
});

export const ScheduleNoteOptionsSchema = ScheduleOptionsSchema.extend({ note: Text.optional() });

export const PreprocessRunOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema,
  dataset: z.array(DatasetIdSchema).min(1, 'name at least one dataset'),
  pipeline: z.string().min(1),
  params: z.string().min(1).optional(),
  seed: z.coerce
    .number()
    .int('must be a whole number')
    .min(0)
    .max(2 ** 31 - 1),
  gpu: z.boolean().default(false),
  wait: z.boolean().default(true),
  requestId: RequestIdSchema.optional(),
});

/** A job is named by its workflow id: `preprocess-<jurisdiction>-<request id>`. */
export const PreprocessJobArgumentSchema = z
  .string()
  .regex(
    /^preprocess-[a-z]{2,8}-[A-Za-z0-9][A-Za-z0-9_-]{5,63}$/,
    'must be a job id: preprocess-<jurisdiction>-<request id>',
  );

export const PreprocessVerifyOptionsSchema = z.object({
  params: z.string().min(1).optional(),
  requestId: RequestIdSchema.optional(),
});

export const WorkerOptionsSchema = z.object({
  role: z.enum(['preprocess']),
  jurisdiction: JurisdictionIdSchema,
  gpu: z.boolean().default(false),
});

const DsrReason = z.string().trim().min(3, 'must say why (at least 3 characters)').max(2000);

export const DsrFileOptionsSchema = z.object({
  subject: Text,
  jurisdiction: JurisdictionIdSchema,
  received: z.union([z.iso.date(), z.iso.datetime()], {
    message: 'must be a date (YYYY-MM-DD) or a UTC date-time such as 2026-12-01T09:30:00Z',
  }),
  reason: DsrReason,
  study: StudyIdSchema.optional(),
  requestId: RequestIdSchema.optional(),
});

export const DsrDecisionOptionsSchema = z.object({ reason: DsrReason });

export const DsrVerifyIdentityOptionsSchema = DsrDecisionOptionsSchema.extend({
  method: IdentityMethodSchema,
  evidenceRef: z
    .string()
    .trim()
    .min(3, 'must name where the evidence is kept')
    .max(200, 'must be a reference (at most 200 characters), not the evidence'),
});

export const DsrExtendOptionsSchema = DsrDecisionOptionsSchema.extend({
  by: z.string().regex(/^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$/, 'must be an ISO 8601 duration such as P1M or P30D'),
});

/** `7d`, `P7D` or `P1W`: a number of days. */
const DaysSchema = z.string().transform((s, ctx) => {
  const m = /^(\d+)d$/i.exec(s) ?? /^P(\d+)D$/.exec(s);
  const w = /^P(\d+)W$/.exec(s);
  if (m) return Number(m[1]);
  if (w) return Number(w[1]) * 7;
  ctx.addIssue({ code: 'custom', message: 'must be a number of days such as 7d, P7D or P1W' });
  return z.NEVER;
});

export const DsrListOptionsSchema = z.object({
  jurisdiction: JurisdictionIdSchema.optional(),
  state: SubjectRequestStateSchema.optional(),
  overdue: z.boolean().optional(),
  dueWithin: DaysSchema.optional(),
});
