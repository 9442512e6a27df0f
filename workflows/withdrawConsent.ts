import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createConsentActivities } from '../activities/consent';
import {
  WithdrawConsentWorkflowInputSchema,
  type WithdrawConsentWorkflowInput,
  type WithdrawConsentWorkflowResult,
} from '../schemas/consent';
import { parseInput } from '../schemas/parse';
import { requireRole } from './authorize';

const consent = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // Registry writes and catalog reads: transient storage errors clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

/** Records a consent withdrawal, effective today, and reports which existing datasets hold the subject. */
export async function withdrawConsentWorkflow(
  raw: WithdrawConsentWorkflowInput,
): Promise<WithdrawConsentWorkflowResult> {
  const input = parseInput(WithdrawConsentWorkflowInputSchema, raw, 'withdrawConsentWorkflow');
  requireRole(input.requestedBy, 'consent.withdraw');
  const now = new Date().toISOString();
  const effectiveOn = now.slice(0, 10);
  const result = await consent.withdrawConsentActivity({
    jurisdiction: input.jurisdiction,
    studyId: input.studyId,
    subjectId: input.subjectId,
    scopes: input.scopes,
    reason: input.reason,
    effectiveOn,
    recordedAt: now,
    requestRef: workflowInfo().workflowId,
  });
  const datasets = await consent.findSubjectDatasetsActivity({ studyId: input.studyId, subjectId: input.subjectId });
  return { ...result, effectiveOn, datasets };
}
