import { z } from 'zod';

export const StudyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric');

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 digest');

/** Tag-safe short name: consent scopes, purposes, data classes, source systems. */
export const NameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits or "-"');

/** A request id: what a person passes with `--request-id` to resume a command, or what the CLI makes up and prints. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{5,63}$/;

export const RoleSchema = z.enum(['steward', 'dpo', 'ops', 'auditor', 'qa', 'worker']);
export type Role = z.infer<typeof RoleSchema>;

/** What a signed request may ask Steward to do; lib/auth/roles.ts says which roles may do each. */
export const ActionSchema = z.enum([
  'ingest',
  'consent.import',
  'consent.withdraw',
  'keys.rotate',
  'keys.destroy',
  'datasets.repseudonymize',
  'reidentify',
  'audit.query',
  'hold.set',
  'hold.release',
  'trial.end',
  'retention.sweep',
  'retention.preview',
  'retention.schedule',
  'codec.decode',
  'preprocess.run',
  'sources.register',
  'preprocess.verify',
  'dsr.access',
  'dsr.erase',
  'dsr.restrict',
  'dsr.verify-identity',
  'dsr.approve',
  'dsr.reject',
  'dsr.extend',
  'dsr.lift',
  'dsr.cancel',
  'dsr.retry',
  'dsr.read',
  'dsr.export',
  'dsr.index-verify',
  'dsr.index-rebuild',
  'qualify.run',
  'qualify.sign',
  'baseline.record',
  'drift.check',
  'deviation.decide',
  'change.propose',
  'change.decide',
  'workers.deploy',
  'dr.failover',
  'dr.failback',
]);
export type Action = z.infer<typeof ActionSchema>;

/**
 * Who acts: the printed name and role of a verified identity (its X.509 certificate's subject), with the certificate's
 * serial number when the identity was verified from a signed request.
 */
/** The configuration baseline in force when something ran: its version and the SHA-256 of its document. */
export const BaselineRefSchema = z.object({ version: z.number().int().positive(), sha256: Sha256HexSchema });
export type BaselineRef = z.infer<typeof BaselineRefSchema>;

export const PrincipalSchema = z.object({
  id: z
    .string()
    .regex(/^[\p{L}\p{M}\p{N} .'@_-]{1,128}$/u, "must be a printed name of letters, digits, spaces and . ' @ _ -"),
  role: RoleSchema,
  serial: z
    .string()
    .regex(/^[0-9a-f]{1,64}$/)
    .optional(),
});
export type Principal = z.infer<typeof PrincipalSchema>;
