import { proxyActivities } from '@temporalio/workflow';
import type { createConsentActivities } from '../activities/consent';
import { ErrorType } from '../contracts';
import { ImportConsentInputSchema, type ImportConsentInput, type ImportConsentResult } from '../schemas/consent';
import { parseInput } from '../schemas/parse';
import { requireRole } from './authorize';

const { importConsentActivity } = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // A registry part is small; storage hiccups clear within a few tries, a bad file never does.
  retry: { maximumAttempts: 5, initialInterval: '2s', nonRetryableErrorTypes: [ErrorType.ConsentImportRejected] },
});

/** Loads a consent CSV into the study's consent registry in its jurisdiction. */
export async function importConsentWorkflow(raw: ImportConsentInput): Promise<ImportConsentResult> {
  const input = parseInput(ImportConsentInputSchema, raw, 'importConsentWorkflow');
  requireRole(input.submittedBy, 'consent.import');
  return importConsentActivity({ ...input, importedAt: new Date().toISOString() });
}
