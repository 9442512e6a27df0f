import { proxyActivities } from '@temporalio/workflow';
import type { createScheduleActivities } from '../activities/schedule';
import { ErrorType, retentionScheduleId } from '../contracts';
import type { SignedWorkflowInput } from '../schemas/request';
import { ScheduleParamsSchema, type ScheduleState } from '../schemas/retention';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const { changeRetentionScheduleActivity } = proxyActivities<ReturnType<typeof createScheduleActivities>>({
  startToCloseTimeout: '1 minute',
  // A trigger is not idempotent: tried once more at most; the other changes are and ride out a busy server.
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: [ErrorType.InvalidInput] },
});

/**
 * Changes a jurisdiction's retention sweep schedule (ops or steward, signed): a new cron, pause, resume, or a run now.
 * The change and who made it are audited.
 */
export async function changeRetentionScheduleWorkflow(raw: SignedWorkflowInput): Promise<ScheduleState> {
  const auth = await authorize(raw, 'retention.schedule', ScheduleParamsSchema);
  const { change } = auth.params;
  const jurisdiction = auth.jurisdiction;
  setPhase(`changing the schedule (${change.kind})`);
  const state = await changeRetentionScheduleActivity({ jurisdiction, change, by: auth.principal.id });
  await recordAudit(jurisdiction, auth.principal, [
    {
      action: 'schedule.changed',
      outcome: 'success',
      ...(change.kind === 'pause' || change.kind === 'resume' ? (change.note ? { reason: change.note } : {}) : {}),
      targets: { requestId: auth.requestId },
      details: {
        scheduleId: retentionScheduleId(jurisdiction),
        change: change.kind,
        cron: change.kind === 'set' ? change.cron : state.cron.join('; '),
        paused: state.paused,
      },
    },
  ]);
  return state;
}
