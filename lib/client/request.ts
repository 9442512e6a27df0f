import { randomUUID } from 'node:crypto';
import type { Action } from '../auth/roles';
import { signRequest } from '../auth/request';
import type { Identity } from '../pki/identity';
import type { SignedWorkflowInput } from '../../schemas/request';

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
