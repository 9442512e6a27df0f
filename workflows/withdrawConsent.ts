import { proxyActivities } from '@temporalio/workflow';
import type { createConsentActivities, SubjectDatasetHit, WithdrawConsentResult } from '../activities/consent';
import type { Principal } from '../schemas/common';
import { requireRole } from './authorize';

const consent = proxyActivities<ReturnType<typeof createConsentActivities>>({
  startToCloseTimeout: '30 minutes',
  // Registry writes and catalog reads: transient storage errors clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

export interface WithdrawConsentWorkflowInput {
  jurisdiction: string;
  studyId: string;
  subjectId: string;
  scopes: string[];
  reason: string;
  requestedBy: Principal;
}

export interface WithdrawConsentWorkflowResult extends WithdrawConsentResult {
  effectiveOn: string;
  /** Datasets already holding the subject's rows: for the DPO to decide on erasure. */
  datasets: SubjectDatasetHit[];
}

/** Records a consent withdrawal, effective today, and reports which existing datasets hold the subject. */
export async function withdrawConsentWorkflow(
  input: WithdrawConsentWorkflowInput,
): Promise<WithdrawConsentWorkflowResult> {
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
  });
  const datasets = await consent.findSubjectDatasetsActivity({ studyId: input.studyId, subjectId: input.subjectId });
  return { ...result, effectiveOn, datasets };
}
