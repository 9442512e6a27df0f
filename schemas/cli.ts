import { z } from 'zod';
import { REQUEST_ID_PATTERN } from '../contracts';
import { NameSchema, StudyIdSchema } from './common';
import { DatasetIdSchema } from './ingest';
import { JurisdictionIdSchema } from './jurisdiction';

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
