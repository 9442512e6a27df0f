import { createHash, createPublicKey, sign, verify } from 'node:crypto';
import { RequestBodySchema, type RequestBody, type RequestVerdict, type SignedRequest } from '../../schemas/request';
import type { Principal } from '../../schemas/common';
import { canonicalJson } from '../crypto/canonical';
import type { Identity } from '../pki/identity';
import { certificateInfo, chainProblem, type CertificateInfo } from '../pki/x509';
import { allowed, denialMessage, type Action } from './roles';

/** How old a request may be when its workflow starts, and how far ahead of the workflow's clock. */
export const REQUEST_MAX_AGE_MS = 10 * 60_000;
export const REQUEST_MAX_SKEW_MS = 2 * 60_000;

/** Signs a request body with an identity's key: canonical JSON, RSA-SHA256. */
export function signRequest(identity: Identity, body: Omit<RequestBody, 'format'>): SignedRequest {
  const text = canonicalJson(RequestBodySchema.parse({ format: 'steward-request/1', ...body }));
  return {
    body: text,
    signature: sign('sha256', Buffer.from(text), identity.key).toString('base64'),
    certificate: identity.certificatePem,
  };
}

export interface TrustContext {
  caPem: string;
  revoked: ReadonlySet<string>;
  now: Date;
}

export type CertificateVerdict =
  { ok: true; principal: Principal; info: CertificateInfo } | { ok: false; reason: string; claimed?: Principal };

/**
 * Checks a person's certificate, in this order: it is a Steward identity certificate (else `unreadable` is the
 * reason), it chains to the Steward CA and is valid now, it names a person (not a signer or the CA), and it is not
 * revoked. What signed requests and TLS client certificates are both checked by.
 */
export function verifyIdentityCertificate(pem: string, trust: TrustContext, unreadable: string): CertificateVerdict {
  let info: CertificateInfo;
  try {
    info = certificateInfo(pem);
  } catch {
    return { ok: false, reason: unreadable };
  }
  const claimed: Principal | undefined =
    info.role !== 'signer' && info.role !== 'ca' ? { id: info.name, role: info.role, serial: info.serial } : undefined;
  const deny = (reason: string): CertificateVerdict => ({ ok: false, reason, ...(claimed ? { claimed } : {}) });
  const chain = chainProblem(pem, trust.caPem, trust.now);
  if (chain) return deny(chain);
  if (!claimed) return deny('the certificate is not a person’s identity');
  if (trust.revoked.has(claimed.serial!.replace(/^0+/, '')))
    return deny(`the certificate ${claimed.serial} is revoked`);
  return { ok: true, principal: claimed, info };
}

/**
 * Verifies a signed request, in this order: the certificate chains to the Steward CA and is valid now, it is not
 * revoked, the signature over the body verifies with it, the body asks for this action in this jurisdiction, it is
 * fresh, and the certificate's role may do the action. The first failure is the verdict's reason.
 */
export function verifyRequest(
  request: SignedRequest,
  expect: { action: Action; jurisdiction: string },
  trust: TrustContext,
  /** How long a signature stays good: 10 minutes for a request; longer for a grant that says when it expires. */
  maxAgeMs = REQUEST_MAX_AGE_MS,
): RequestVerdict {
  const certificate = verifyIdentityCertificate(
    request.certificate,
    trust,
    'the request does not carry a Steward identity certificate',
  );
  if (!certificate.ok) return certificate;
  const { principal: claimed, info } = certificate;
  const deny = (reason: string): RequestVerdict => ({ ok: false, reason, claimed });
  const signatureOk = verify(
    'sha256',
    Buffer.from(request.body),
    createPublicKey(request.certificate),
    Buffer.from(request.signature, 'base64'),
  );
  if (!signatureOk) return deny('the signature does not verify: the request was altered or signed by another key');
  let body: RequestBody;
  try {
    body = RequestBodySchema.parse(JSON.parse(request.body));
  } catch {
    return deny('the request body is not a Steward request');
  }
  if (body.action !== expect.action) return deny(`the request asks for ${body.action}, not ${expect.action}`);
  if (body.jurisdiction !== expect.jurisdiction) {
    return deny(`the request is for jurisdiction ${body.jurisdiction}, not ${expect.jurisdiction}`);
  }
  const age = trust.now.getTime() - new Date(body.issuedAt).getTime();
  if (age > maxAgeMs) return deny(`the request was signed at ${body.issuedAt}: too old to act on (replayed?)`);
  if (age < -REQUEST_MAX_SKEW_MS) return deny(`the request is dated ${body.issuedAt}, in the future`);
  if (!allowed(claimed, expect.action)) return deny(denialMessage(claimed, expect.action));
  const bodySha256 = createHash('sha256').update(request.body).digest('hex');
  return {
    ok: true,
    principal: claimed,
    bodySha256,
    eSignature: {
      printedName: info.name,
      role: claimed.role,
      signedAt: body.issuedAt,
      meaning: body.meaning ?? `request ${body.action}`,
      recordSha256: bodySha256,
      certificateSerial: info.serial,
      certificateFingerprint: info.fingerprint,
      signature: request.signature,
    },
  };
}
