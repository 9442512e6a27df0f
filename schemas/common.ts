import { z } from 'zod';

export const StudyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric');

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 digest');

/** Tag-safe short name: consent scopes, purposes, data classes, source systems. */
export const NameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits or "-"');

export const RoleSchema = z.enum(['steward', 'dpo', 'ops', 'auditor', 'worker']);
export type Role = z.infer<typeof RoleSchema>;

export const PrincipalSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._@-]{1,128}$/, 'must be a principal name such as alice or svc-ingest'),
  role: RoleSchema,
});
export type Principal = z.infer<typeof PrincipalSchema>;
