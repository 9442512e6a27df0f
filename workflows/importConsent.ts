import { proxyActivities } from '@temporalio/workflow';
import type { createConsentActivities } from '../activities/consent';
import { ErrorType, nonRetryable } from '../contracts';
import { ImportConsentParamsSchema, type ImportConsentResult } from '../schemas/consent';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const { importConsentActivity } = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // A registry part is small; storage hiccups clear within a few tries, a bad file never does.
  retry: { maximumAttempts: 5, initialInterval: '2s', nonRetryableErrorTypes: [ErrorType.ConsentImportRejected] },
});

/** Loads a consent CSV into the study's consent registry in its jurisdiction, as a signed request asks. */
export async function importConsentWorkflow(raw: SignedWorkflowInput): Promise<ImportConsentResult> {
  const auth = await authorize(raw, 'consent.import', ImportConsentParamsSchema);
  const { params } = auth;
  if (params.jurisdiction !== auth.jurisdiction) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `consent for ${params.jurisdiction} was sent to ${auth.jurisdiction}`,
    );
  }
  const targets = { studyId: params.studyId, requestId: auth.requestId };
  try {
    setPhase('validating and importing the consent file');
    const result = await importConsentActivity({
      ...params,
      submittedBy: auth.principal,
      importedAt: new Date().toISOString(),
    });
    await recordAudit(auth.jurisdiction, auth.principal, [
      ...(result.keysCreated ?? []).map((id) => ({
        action: 'key.created' as const,
        outcome: 'success' as const,
        targets: { ...targets, keyIds: [id] },
      })),
      {
        action: 'consent.imported',
        outcome: 'success',
        targets: { ...targets, objects: result.part ? [result.part] : [] },
        details: {
          rows: result.rows,
          given: result.given,
          withdrawn: result.withdrawn,
          conflicts: result.conflicts,
          file: params.fileName,
        },
      },
    ]);
    return result;
  } catch (error) {
    await recordAudit(auth.jurisdiction, auth.principal, [
      { action: 'consent.imported', outcome: 'failure', targets, details: { file: params.fileName } },
    ]);
    throw error;
  }
}
