import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SignedRequestSchema, type SignedRequest } from '../../schemas/request';
import type { Principal } from '../../schemas/common';
import { signRequest, verifyRequest, type TrustContext } from '../auth/request';
import type { Identity } from '../pki/identity';

/** The longest a codec grant may last. */
export const GRANT_MAX_MS = 30 * 86_400_000;

export const CodecGrantParamsSchema = z.object({
  grantId: z.string().regex(/^[0-9a-f]{32}$/),
  expiresAt: z.iso.datetime(),
});

export function newGrantId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * A codec grant: an ops or auditor identity's signed statement that payloads may be decoded on its behalf until
 * `expiresAt`. Presented as a bearer token, or kept on the codec server's machine and named in the URL the Temporal UI
 * is given (the UI cannot send credentials to a plain-http endpoint).
 */
export function issueCodecGrant(
  identity: Identity,
  options: { jurisdiction: string; hours: number; grantId?: string },
): { grantId: string; expiresAt: string; request: SignedRequest; token: string } {
  const grantId = options.grantId ?? newGrantId();
  const hours = Math.min(options.hours, GRANT_MAX_MS / 3_600_000);
  const expiresAt = new Date(Date.now() + hours * 3_600_000).toISOString();
  const request = signRequest(identity, {
    requestId: `codec-${grantId}`,
    action: 'codec.decode',
    jurisdiction: options.jurisdiction,
    issuedAt: new Date().toISOString(),
    meaning: 'read workflow payloads in the clear through the codec server',
    params: { grantId, expiresAt },
  });
  return { grantId, expiresAt, request, token: encodeToken(request) };
}

export function encodeToken(request: SignedRequest): string {
  return Buffer.from(JSON.stringify(request)).toString('base64url');
}

export function decodeToken(token: string): SignedRequest | undefined {
  try {
    const parsed = SignedRequestSchema.safeParse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export type GrantVerdict =
  | { ok: true; principal: Principal; grantId: string; expiresAt: string }
  | { ok: false; reason: string; claimed?: Principal };

/**
 * Checks a grant: every check of a signed request (chain to the Steward CA, not revoked, signature, action
 * `codec.decode` in this jurisdiction, a role allowed to decode) and that it has not expired.
 */
export function verifyCodecGrant(request: SignedRequest, jurisdiction: string, trust: TrustContext): GrantVerdict {
  const verdict = verifyRequest(request, { action: 'codec.decode', jurisdiction }, trust, GRANT_MAX_MS);
  if (!verdict.ok)
    return { ok: false, reason: verdict.reason, ...(verdict.claimed ? { claimed: verdict.claimed } : {}) };
  const params = CodecGrantParamsSchema.safeParse((JSON.parse(request.body) as { params?: unknown }).params);
  if (!params.success)
    return { ok: false, reason: 'the grant names no grant id and expiry', claimed: verdict.principal };
  if (params.data.expiresAt <= trust.now.toISOString()) {
    return { ok: false, reason: `the grant expired at ${params.data.expiresAt}`, claimed: verdict.principal };
  }
  return { ok: true, principal: verdict.principal, grantId: params.data.grantId, expiresAt: params.data.expiresAt };
}

/** What the audit trail names a grant by: the first 16 hex digits of its id's SHA-256, which do not open it. */
export function grantFingerprint(grantId: string): string {
  return createHash('sha256').update(grantId).digest('hex').slice(0, 16);
}

/** The audit event of a grant being issued: who may decode, in which jurisdiction's trail, until when. */
export function grantEvent(grant: { grantId: string; expiresAt: string }, principal: Principal) {
  return {
    action: 'codec.granted' as const,
    outcome: 'success' as const,
    principal,
    // The grant id is a credential (the Web UI's codec URL carries it): the trail names its fingerprint only.
    details: { grant: grantFingerprint(grant.grantId), expiresAt: grant.expiresAt },
  };
}
