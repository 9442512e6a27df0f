import { z } from 'zod';

export const StudyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric');

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256 digest');

/** Tag-safe short name: consent scopes, purposes, data classes, source systems. */
export const NameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits or "-"');

export const RoleSchema = z.enum(['steward', 'dpo', 'ops', 'auditor', 'worker']);
export type Role = z.infer<typeof RoleSchema>;

/**
 * Who acts: the printed name and role of a verified identity (its X.509 certificate's subject), with the certificate's
 * serial number when the identity was verified from a signed request.
 */
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
