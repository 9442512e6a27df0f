import { proxyActivities } from '@temporalio/workflow';
import { requireRole } from './authorize';
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
  requireRole(input.submittedBy, 'consent.import');
  return importConsentActivity(input);
}
