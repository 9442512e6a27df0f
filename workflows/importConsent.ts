import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import { allowed, denialMessage } from '../lib/roles';
import type { createConsentActivities } from '../activities/consent';
import type { ImportConsentInput, ImportConsentResult } from '../schemas/workflows';
import { ErrorType } from './contracts';

const { importConsentActivity } = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // A registry update is small; storage hiccups clear within a few tries, a bad file never does.
  retry: { maximumAttempts: 5, initialInterval: '2s', nonRetryableErrorTypes: [ErrorType.ConsentImportRejected] },
});

/** Loads a consent CSV into the study's consent registry in its jurisdiction. */
export async function importConsentWorkflow(input: ImportConsentInput): Promise<ImportConsentResult> {
  if (!allowed(input.submittedBy, 'consent.import')) {
    throw ApplicationFailure.nonRetryable(denialMessage(input.submittedBy, 'consent.import'), ErrorType.AccessDenied);
  }
  return importConsentActivity(input);
}
