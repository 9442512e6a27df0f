import {
  DAYS_OF_WEEK,
  MONTHS,
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
} from '@temporalio/client';
import { ingestTaskQueue, RequestKind, retentionScheduleId, SEARCH_ATTRIBUTES } from '../../contracts';
import type { ScheduleChange, ScheduleState } from '../../schemas/retention';

/** When sweeps run unless an operator changes it: daily at 02:00 UTC. */
export const DEFAULT_SWEEP_CRON = '0 2 * * *';

/** Standard five-field cron: minute hour day-of-month month day-of-week. */
const CRON = /^(\S+\s+){4}\S+$/;

export function cronProblem(cron: string): string | undefined {
  return CRON.test(cron.trim())
    ? undefined
    : 'must be a cron expression of five fields (minute hour day-of-month month day-of-week), e.g. "0 2 * * *"';
}

function action(jurisdiction: string) {
  return {
    type: 'startWorkflow' as const,
    workflowType: 'retentionSweepWorkflow',
    args: [{ scheduled: { jurisdiction } }],
    taskQueue: ingestTaskQueue(jurisdiction),
    workflowId: retentionScheduleId(jurisdiction),
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction },
      { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.RetentionSweep },
    ],
  };
}

/**
 * Creates the jurisdiction's sweep schedule unless it exists; an existing one is left as operators set it. Sweeps never
 * overlap (a run still going skips the next), and a run missed while the server was down is caught up within a day.
 */
export async function ensureRetentionSchedule(client: Client, jurisdiction: string): Promise<boolean> {
  try {
    await client.schedule.create({
      scheduleId: retentionScheduleId(jurisdiction),
      spec: { cronExpressions: [DEFAULT_SWEEP_CRON], timezone: 'UTC' },
      action: action(jurisdiction),
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' },
      state: { note: `retention sweeps of ${jurisdiction}, created by steward up` },
    });
    return true;
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return false;
    throw error;
  }
}

type Calendar = NonNullable<ScheduleDescription['spec']['calendars']>[number];

/** One field of a calendar as cron writes it: `*`, a value, a range, a step, or a list of them. */
function cronField<T extends string | number>(
  ranges: { start: T; end?: T; step?: number }[],
  all: readonly T[],
  toNumber: (v: T) => number,
): string {
  const first = all[0]!;
  const last = all[all.length - 1]!;
  if (
    ranges.length === 1 &&
    ranges[0]!.start === first &&
    (ranges[0]!.end ?? first) === last &&
    (ranges[0]!.step ?? 1) <= 1
  ) {
    return '*';
  }
  return ranges
    .map((r) => {
      const start = toNumber(r.start);
      const end = toNumber(r.end ?? r.start);
      const step = r.step && r.step > 1 ? `/${r.step}` : '';
      return start === end ? `${start}${step}` : `${start}-${end}${step}`;
    })
    .join(',');
}

const numbers = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A schedule's calendar as the five-field cron expression it was set from. */
export function calendarAsCron(c: Calendar): string {
  return [
    cronField(c.minute, numbers(0, 59), Number),
    cronField(c.hour, numbers(0, 23), Number),
    cronField(c.dayOfMonth, numbers(1, 31), Number),
    cronField(c.month, MONTHS, (m) => MONTHS.indexOf(m) + 1),
    cronField(c.dayOfWeek, DAYS_OF_WEEK, (d) => DAYS_OF_WEEK.indexOf(d)),
  ].join(' ');
}

export function scheduleState(jurisdiction: string, d: ScheduleDescription): ScheduleState {
  return {
    scheduleId: d.scheduleId,
    jurisdiction,
    cron: (d.spec.calendars ?? []).map(calendarAsCron),
    timezone: d.spec.timezone ?? 'UTC',
    paused: d.state.paused,
    note: d.state.note ?? null,
    nextRuns: d.info.nextActionTimes.slice(0, 5).map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.slice(-5).map((r) => ({
      workflowId: r.action.workflow.workflowId,
      scheduledAt: r.scheduledAt.toISOString(),
      startedAt: r.takenAt.toISOString(),
    })),
  };
}

export async function describeRetentionSchedule(client: Client, jurisdiction: string): Promise<ScheduleState> {
  return scheduleState(jurisdiction, await client.schedule.getHandle(retentionScheduleId(jurisdiction)).describe());
}

/** Applies a change to the jurisdiction's sweep schedule (creating it first if it is missing). */
export async function changeRetentionSchedule(
  client: Client,
  jurisdiction: string,
  change: ScheduleChange,
  by: string,
): Promise<ScheduleState> {
  await ensureRetentionSchedule(client, jurisdiction);
  const handle = client.schedule.getHandle(retentionScheduleId(jurisdiction));
  switch (change.kind) {
    case 'set':
      await handle.update((previous) => ({
        ...previous,
        spec: { cronExpressions: [change.cron.trim()], timezone: 'UTC' },
        action: action(jurisdiction),
        state: { ...previous.state, note: `cron set to "${change.cron.trim()}" by ${by}` },
      }));
      break;
    case 'pause':
      await handle.pause(`paused by ${by}${change.note ? `: ${change.note}` : ''}`);
      break;
    case 'resume':
      await handle.unpause(`resumed by ${by}${change.note ? `: ${change.note}` : ''}`);
      break;
    case 'trigger':
      await handle.trigger(ScheduleOverlapPolicy.SKIP);
      break;
  }
  return describeRetentionSchedule(client, jurisdiction);
}
