import { proxyActivities } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import type { createAuditActivities } from '../activities/audit';
import { curationTaskQueue } from '../contracts';
import { AuditQueryParamsSchema, type AuditQueryResult } from '../schemas/audit';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const queryOptions: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  // Reads only: storage hiccups clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '2s' },
};

/**
 * Answers "who accessed what, when and why" from the jurisdiction's sealed audit trail, for an auditor or the DPO.
 * The query itself is audited, with the subject tokens it used (never the identifier it was given).
 */
export async function queryAuditWorkflow(raw: SignedWorkflowInput): Promise<AuditQueryResult> {
  const auth = await authorize(raw, 'audit.query', AuditQueryParamsSchema);
  // Reads the whole trail: long work, on the curation queue.
  const { queryAuditTrailActivity } = proxyActivities<ReturnType<typeof createAuditActivities>>({
    ...queryOptions,
    taskQueue: curationTaskQueue(auth.jurisdiction),
  });
  setPhase('reading the sealed audit trail');
  const result = await queryAuditTrailActivity({ ...auth.params, jurisdiction: auth.jurisdiction });
  const { subject: _subject, ...filters } = auth.params;
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: 'audit.queried',
      outcome: 'success',
      targets: {
        requestId: auth.requestId,
        ...(filters.datasetId ? { datasetId: filters.datasetId } : {}),
        ...(filters.studyId ? { studyId: filters.studyId } : {}),
        ...(result.subjectTokens.length ? { subjectTokens: result.subjectTokens } : {}),
      },
      details: {
        filters: JSON.stringify({ ...filters, subject: _subject ? 'identifier' : undefined }),
        matched: result.events.length,
      },
    },
  ]);
  return result;
}
