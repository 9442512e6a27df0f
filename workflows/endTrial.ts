import { CancellationScope, proxyActivities } from '@temporalio/workflow';
import type { createRetentionActivities } from '../activities/retention';
import { ErrorType, nonRetryable } from '../contracts';
import type { SignedWorkflowInput } from '../schemas/request';
import { TrialEndParamsSchema, type TrialEndResult } from '../schemas/retention';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { changeOrRecordRefusal } from './legalHold';
import { setPhase } from './progress';

/** Moving Object Lock dates: heartbeats its progress, so a worker lost during it is noticed within seconds. */
const locks = proxyActivities<ReturnType<typeof createRetentionActivities>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  // Idempotent, and resumed from its last heartbeat: retried through storage outages for about an hour.
  retry: { maximumAttempts: 60, initialInterval: '2s', maximumInterval: '1 minute' },
});

/*
 * The catalog change, once sent to the catalog's writer, is applied whatever the workflow does next: the Object Lock
 * dates and the audit follow in a non-cancellable scope, so a cancel after authorization never leaves a retention date
 * recorded but not applied in storage, or not audited.
 */

/**
 * Records the end of a study's trial (steward, e-signed): the event clinical-trial retention counts from. Retain-until
 * is recomputed for the study's datasets whose rule counts from it, their Object Lock follows, and each change is
 * audited.
 */
export async function endTrialWorkflow(raw: SignedWorkflowInput): Promise<TrialEndResult> {
  const auth = await authorize(raw, 'trial.end', TrialEndParamsSchema);
  const { studyId, date } = auth.params;
  const jurisdiction = auth.jurisdiction;
  const now = new Date().toISOString();
  if (date > now.slice(0, 10)) {
    throw nonRetryable(
      ErrorType.InvalidInput,
      `the end of a trial is recorded once it happened: ${date} is in the future`,
    );
  }
  const targets = { studyId, requestId: auth.requestId };
  return CancellationScope.nonCancellable(async () => {
    setPhase('recording the end of the trial');
    const ended = await changeOrRecordRefusal(
      jurisdiction,
      { kind: 'study.trial-ended', studyId, date, at: now, by: auth.eSignature },
      (message) => ({ action: 'trial.ended', outcome: 'failure', reason: message, targets, details: { date } }),
      auth.principal,
    );
    const changes = ended.changes ?? [];
    setPhase('moving Object Lock dates', { datasets: changes.length });
    const { versions } = await locks.applyObjectLockActivity({
      jurisdiction,
      changes,
      now: new Date().toISOString(),
    });
    await recordAudit(jurisdiction, auth.principal, [
      {
        action: 'trial.ended',
        outcome: 'success',
        reason: auth.body.meaning,
        targets,
        details: { date, datasets: changes.length, versions, recorded: ended.changed },
      },
      ...changes.map((c): AuditDraft => ({
        action: 'retention.changed',
        outcome: 'success',
        targets: { datasetId: c.datasetId, studyId, requestId: auth.requestId },
        details: { rule: c.rule, until: c.until, lockedUntil: c.lockedUntil, objectLock: c.objectLock },
      })),
    ]);
    return { jurisdiction, studyId, date, datasets: changes, versions };
  });
}
