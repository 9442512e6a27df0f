import { Context } from '@temporalio/activity';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import { driftScheduleId, ErrorType, nonRetryable, retentionScheduleId } from '../contracts';
import { changeRetentionSchedule, cronProblem } from '../lib/retention/schedule';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { ScheduleChangeInputSchema, type ScheduleChangeInput, type ScheduleState } from '../schemas/retention';
import { assertOwnJurisdiction } from './guards';

/** How many times, a second apart, a run is looked for among its schedule's actions. */
const SCHEDULE_LOOKS = 10;

export type ScheduledRunVerdict =
  { ok: true; jurisdiction: string } | { ok: false; reason: string; jurisdiction: string };

/** The jurisdiction's retention sweep schedule, changed through the Temporal client of its worker. */
export function createScheduleActivities({
  jurisdiction,
  temporal,
}: {
  jurisdiction: Jurisdiction;
  /** A client of the Temporal service the worker polls, opened on first use. */
  temporal: () => Promise<Client>;
}) {
  return {
    /**
     * Whether the calling workflow run was started by this jurisdiction's retention schedule (or, with `schedule:
     * 'drift'`, its drift-check schedule), as Temporal's record of
     * the schedule's actions says (not as the run's input or id says). The schedule records a start just after making
     * it, so a run not yet listed is looked for again for a few seconds. A refusal is a verdict, naming the worker's
     * own jurisdiction for the audit trail. Reads only.
     */
    async verifyScheduledRunActivity(raw: {
      jurisdiction: string;
      schedule?: 'retention' | 'drift';
    }): Promise<ScheduledRunVerdict> {
      const deny = (reason: string): ScheduledRunVerdict => ({ ok: false, reason, jurisdiction: jurisdiction.id });
      const drift = raw.schedule === 'drift';
      if (raw.jurisdiction !== jurisdiction.id) {
        return deny(
          `a scheduled ${drift ? 'drift check' : 'sweep'} of ${raw.jurisdiction} sent to a worker of ${jurisdiction.id}`,
        );
      }
      const execution = Context.current().info.workflowExecution;
      if (!execution) return deny('not a workflow run');
      const scheduleId = drift ? driftScheduleId(jurisdiction.id) : retentionScheduleId(jurisdiction.id);
      const handle = (await temporal()).schedule.getHandle(scheduleId);
      for (let look = 0; look < SCHEDULE_LOOKS; look++) {
        let info;
        try {
          info = (await handle.describe()).info;
        } catch (error) {
          if (error instanceof ScheduleNotFoundError) return deny(`no schedule ${scheduleId}`);
          throw error;
        }
        const started = [...info.runningActions, ...info.recentActions.map((r) => r.action)].some(
          (a) => a.workflow.workflowId === execution.workflowId && a.workflow.firstExecutionRunId === execution.runId,
        );
        if (started) return { ok: true, jurisdiction: jurisdiction.id };
        Context.current().heartbeat(look);
        await Context.current().sleep(1000);
      }
      return deny(`this run was not started by the schedule ${scheduleId}`);
    },

    /** Idempotent but for `trigger`, which the workflow asks for once. */
    async changeRetentionScheduleActivity(raw: ScheduleChangeInput): Promise<ScheduleState> {
      const input = parseInput(ScheduleChangeInputSchema, raw, 'changeRetentionScheduleActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      if (input.change.kind === 'set') {
        const problem = cronProblem(input.change.cron);
        if (problem) throw nonRetryable(ErrorType.InvalidInput, `--cron ${problem}`);
      }
      return changeRetentionSchedule(await temporal(), jurisdiction.id, input.change, input.by);
    },
  };
}
