import { z } from 'zod';
import { ActionSchema, PrincipalSchema, REQUEST_ID_PATTERN, RoleSchema, Sha256HexSchema } from './common';

/**
 * What a person asks Steward to do, signed with their identity's key: the canonical JSON (RFC 8785) of a request body,
 * the RSA-SHA256 signature over those bytes, and the signer's X.509 certificate (PEM).
 */
export const SignedRequestSchema = z.object({
  body: z.string().min(2).max(4_000_000),
  signature: z.string().regex(/^[A-Za-z0-9+/]+=*$/, 'must be base64'),
  certificate: z.string().startsWith('-----BEGIN CERTIFICATE-----'),
});
export type SignedRequest = z.infer<typeof SignedRequestSchema>;

/** The signed content: which action, where, when, why, with which parameters. */
export const RequestBodySchema = z.object({
  format: z.literal('steward-request/1'),
  requestId: z.string().regex(REQUEST_ID_PATTERN),
  action: ActionSchema,
  jurisdiction: z.string(),
  issuedAt: z.iso.datetime({ offset: false }),
  /** What the signer means by signing, for e-signed decisions (21 CFR 11.50): e.g. "approve key destruction". */
  meaning: z.string().max(200).optional(),
  params: z.unknown(),
});
export type RequestBody = z.infer<typeof RequestBodySchema>;

/**
 * An electronic signature as a signed record shows it (21 CFR 11.50): printed name, role, UTC date and time and
 * meaning, bound to the record by a signature over the record's hash.
 */
export const ESignatureSchema = z.object({
  printedName: z.string(),
  role: RoleSchema,
  signedAt: z.iso.datetime(),
  meaning: z.string(),
  /** SHA-256 of the signed record (the request body's canonical JSON). */
  recordSha256: Sha256HexSchema,
  certificateSerial: z.string(),
  certificateFingerprint: Sha256HexSchema,
  /** RSA-SHA256 over the record, base64. */
  signature: z.string(),
});
export type ESignature = z.infer<typeof ESignatureSchema>;

/** What verifying a signed request found. */
export const RequestVerdictSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    principal: PrincipalSchema,
    eSignature: ESignatureSchema,
    bodySha256: Sha256HexSchema,
  }),
  z.object({
    ok: z.literal(false),
    reason: z.string(),
    /** Who the certificate names, when it could be read (it may be forged: recorded, not trusted). */
    claimed: PrincipalSchema.optional(),
  }),
]);
export type RequestVerdict = z.infer<typeof RequestVerdictSchema>;

export const VerifyRequestInputSchema = z.object({
  request: SignedRequestSchema,
  /** The action the workflow performs: the request must ask for exactly this. */
  action: ActionSchema,
  /** Workflow time: freshness is judged against it, so a retry judges alike. */
  now: z.iso.datetime(),
});
export type VerifyRequestInput = z.infer<typeof VerifyRequestInputSchema>;

/** A workflow started by a person: all it is given is their signed request (the parameters are in its body). */
export const SignedWorkflowInputSchema = z.object({ request: SignedRequestSchema });
export type SignedWorkflowInput = z.infer<typeof SignedWorkflowInputSchema>;
