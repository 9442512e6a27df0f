import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createConsentActivities } from '../activities/consent';
import { curationTaskQueue } from '../contracts';
import { WithdrawConsentParamsSchema, type WithdrawConsentWorkflowResult } from '../schemas/consent';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const consent = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // Registry writes and catalog reads: transient storage errors clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

/** Records a consent withdrawal, effective today, and reports which existing datasets hold the subject. */
export async function withdrawConsentWorkflow(raw: SignedWorkflowInput): Promise<WithdrawConsentWorkflowResult> {
  const auth = await authorize(raw, 'consent.withdraw', WithdrawConsentParamsSchema);
  const input = { ...auth.params, jurisdiction: auth.jurisdiction };
  const now = new Date().toISOString();
  const effectiveOn = now.slice(0, 10);
  setPhase('recording the withdrawal');
  const result = await consent.withdrawConsentActivity({
    ...input,
    effectiveOn,
    recordedAt: now,
    requestRef: workflowInfo().workflowId,
  });
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: 'consent.withdrawn',
      outcome: 'success',
      reason: input.reason,
      targets: { studyId: input.studyId, requestId: auth.requestId, subjectTokens: [result.token] },
      details: { scopes: input.scopes.join(';') || 'all', status: result.status, effectiveOn },
    },
  ]);
  // Reads every dataset of the study: long work, on the curation queue.
  const scan = proxyActivities<ReturnType<typeof createConsentActivities>>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    // Reads only: storage hiccups clear within a few tries.
    retry: { maximumAttempts: 5, initialInterval: '2s' },
    taskQueue: curationTaskQueue(auth.jurisdiction),
  });
  setPhase('finding datasets that hold the subject');
  const datasets = await scan.findSubjectDatasetsActivity({ studyId: input.studyId, subjectId: input.subjectId });
  const { token: _token, ...shown } = result;
  return { ...shown, effectiveOn, datasets };
}
