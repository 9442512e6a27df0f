import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { driftScheduleId, ingestTaskQueue, RequestKind, SEARCH_ATTRIBUTES } from '../../contracts';

/** How often the live installation is compared with its baseline unless operators change the schedule. */
export const DRIFT_INTERVAL = '1 hour';

/**
 * Creates the jurisdiction's drift-check schedule unless it exists (an existing one is left as operators set it):
 * every hour, never two at once, a check missed while the server was down caught up within a day.
 */
export async function ensureDriftSchedule(client: Client, jurisdiction: string): Promise<boolean> {
  try {
    await client.schedule.create({
      scheduleId: driftScheduleId(jurisdiction),
      spec: { intervals: [{ every: DRIFT_INTERVAL }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'driftCheckWorkflow',
        args: [{ scheduled: { jurisdiction } }],
        taskQueue: ingestTaskQueue(jurisdiction),
        workflowId: driftScheduleId(jurisdiction),
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction },
          { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.DriftCheck },
        ],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' },
      state: { note: `drift checks of ${jurisdiction} against its configuration baseline, created by steward up` },
    });
    return true;
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return false;
    throw error;
  }
}
