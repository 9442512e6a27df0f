import { ApplicationFailure } from '@temporalio/common';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { ErrorType, nonRetryable } from '../contracts';
import { KeyStoreError } from '../lib/crypto/keystore';

/**
 * A key that is missing, destroyed or cannot be unsealed stays so: its activity fails at once as non-retryable
 * `KeyUnavailable`, keeping the key store's error as the cause, instead of being retried until it times out.
 */
export class KeyUnavailableInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (error) {
      if (error instanceof KeyStoreError) {
        throw nonRetryable(ErrorType.KeyUnavailable, error.message, { cause: ApplicationFailure.fromError(error) });
      }
      throw error;
    }
  }
}
