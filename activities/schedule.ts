import type { Client } from '@temporalio/client';
import { ErrorType, nonRetryable } from '../contracts';
import { changeRetentionSchedule, cronProblem } from '../lib/retention/schedule';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../schemas/parse';
import { ScheduleChangeInputSchema, type ScheduleChangeInput, type ScheduleState } from '../schemas/retention';
import { assertOwnJurisdiction } from './guards';

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
