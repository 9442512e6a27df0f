import { ApplicationFailure } from '@temporalio/workflow';
import type { Principal } from '../schemas/common';
import { allowed, denialMessage, type Action } from '../lib/auth/roles';
import { ErrorType } from '../contracts';

/** Fails the workflow, without retries, when the principal it was started for may not do `action`. */
export function requireRole(principal: Principal, action: Action): void {
  if (!allowed(principal, action)) {
    throw ApplicationFailure.nonRetryable(denialMessage(principal, action), ErrorType.AccessDenied);
  }
}
