import { randomUUID } from 'node:crypto';
import type { Action } from '../auth/roles';
import { signRequest } from '../auth/request';
import { canonicalJson } from '../crypto/canonical';
import type { Identity } from '../pki/identity';
import {
  RequestBodySchema,
  SignedWorkflowInputSchema,
  type RequestBody,
  type SignedRequest,
  type SignedWorkflowInput,
} from '../../schemas/request';

/**
 * The input of a workflow a person starts: their request, signed with their identity, dated now. `meaning` states
 * what their signature means, for e-signed decisions.
 */
export function signedInput(
  identity: Identity,
  request: { action: Action; jurisdiction: string; params: unknown; requestId?: string; meaning?: string },
): SignedWorkflowInput {
  return {
    request: signRequest(identity, {
      requestId: request.requestId ?? randomUUID(),
      action: request.action,
      jurisdiction: request.jurisdiction,
      issuedAt: new Date().toISOString(),
      params: request.params,
      ...(request.meaning ? { meaning: request.meaning } : {}),
    }),
  };
}

/** A signed request's body, parsed; undefined when it is not a Steward request body. Says nothing of the signature. */
export function bodyOf(request: SignedRequest): RequestBody | undefined {
  try {
    return RequestBodySchema.parse(JSON.parse(request.body));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * How a request differs from the input of a workflow started earlier under the same request id: the fields of the body
 * that differ (action, jurisdiction, meaning, each parameter by name) and `signer` when another certificate signed it.
 * Names only, never values (a parameter may be a subject's identifier). Empty when both ask for the same thing; the
 * time of signing may differ.
 */
export function requestDifferences(earlierInput: unknown, request: SignedRequest): string[] {
  const parsed = SignedWorkflowInputSchema.safeParse(earlierInput);
  const earlier = parsed.success ? bodyOf(parsed.data.request) : undefined;
  const now = bodyOf(request);
  if (!parsed.success || !earlier || !now) return ['request'];
  const same = (a: unknown, b: unknown) => canonicalJson(a ?? null) === canonicalJson(b ?? null);
  const differences: string[] = (['action', 'jurisdiction', 'meaning'] as const).filter(
    (k) => !same(earlier[k], now[k]),
  );
  if (isObject(earlier.params) && isObject(now.params)) {
    const names = [...new Set([...Object.keys(earlier.params), ...Object.keys(now.params)])].sort();
    for (const name of names) {
      if (!same(earlier.params[name], now.params[name])) differences.push(`params.${name}`);
    }
  } else if (!same(earlier.params, now.params)) differences.push('params');
  if (parsed.data.request.certificate !== request.certificate) differences.push('signer');
  return differences;
}
