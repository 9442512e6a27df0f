import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAuditActivities } from '../activities/audit';
import { appendAuditEventsSignal, auditTrailStatusQuery, flushAuditTrailUpdate } from '../contracts';
import { AuditTrailInputSchema, type AuditEvent, type AuditTrailHead, type AuditTrailInput } from '../schemas/audit';
import { parseInput } from '../schemas/parse';
import { progressFrom } from './progress';

const audit = proxyActivities<ReturnType<typeof createAuditActivities>>({
  // Sealing a segment of at most 500 events takes seconds; one whose worker died is retried within half a minute.
  startToCloseTimeout: '30 seconds',
  // Evidence writes: storage outages are waited out (events stay safe in this workflow's history meanwhile); a second
  // writer is a conflict that retrying cannot fix.
  retry: { initialInterval: '1s', maximumInterval: '1 minute', backoffCoefficient: 2 },
});

/** Events per segment, at most. */
const SEGMENT_EVENTS = 500;
/** How long the first pending event waits for others to share its segment. */
const BATCH_WINDOW = '1 second';
/** Event ids remembered across continue-as-new, so a delivery repeated by a retrying sender is dropped. */
const REMEMBERED = 5000;

/**
 * The single writer of a jurisdiction's audit trail. Events arrive by signal (durable in this workflow's history as
 * soon as the sender's signal returns), are ordered by arrival, and are sealed into hash-chained, signed segments in
 * the jurisdiction's evidence bucket within about a second. Runs for ever, continuing as new before its history grows
 * large.
 */
export async function auditTrailWorkflow(raw: AuditTrailInput): Promise<void> {
  const input = parseInput(AuditTrailInputSchema, raw, 'auditTrailWorkflow');
  const pending: AuditEvent[] = [...(input.pending ?? [])];
  const recent = new Set(input.recent ?? []);
  for (const e of pending) recent.add(e.id);
  let head: AuditTrailHead | undefined = input.head;
  let flushes = 0;
  setHandler(appendAuditEventsSignal, (events) => {
    for (const event of events) {
      if (recent.has(event.id)) continue;
      recent.add(event.id);
      pending.push(event);
    }
  });
  setHandler(auditTrailStatusQuery, () => ({
    ...(head ?? { seq: 0, position: 0, prevEventHash: '', prevSegmentHash: '' }),
    pending: pending.length,
  }));
  progressFrom(() => ({
    phase: pending.length > 0 ? 'sealing events into a segment' : 'waiting for events',
    since: '',
    counts: { pending: pending.length, sealedSegments: head?.seq ?? 0, events: head?.position ?? 0 },
  }));
  setHandler(flushAuditTrailUpdate, async () => {
    flushes += 1;
    await condition(() => pending.length === 0 && head !== undefined);
    flushes -= 1;
    return head!;
  });

  head ??= await audit.readAuditHeadActivity({ jurisdiction: input.jurisdiction });
  for (;;) {
    // Continue-as-new waits for the flushes in progress: they are answered by this run. Waking for it while one is
    // still waiting would loop without yielding, and the trail would stop.
    await condition(() => pending.length > 0 || (workflowInfo().continueAsNewSuggested && flushes === 0));
    if (pending.length > 0) {
      if (pending.length < SEGMENT_EVENTS && flushes === 0) {
        await condition(() => pending.length >= SEGMENT_EVENTS || flushes > 0, BATCH_WINDOW);
      }
      const batch = pending.slice(0, SEGMENT_EVENTS);
      head = await audit.sealAuditSegmentActivity({
        jurisdiction: input.jurisdiction,
        head,
        sealedAt: new Date().toISOString(),
        events: batch,
      });
      pending.splice(0, batch.length);
    }
    // Pending events travel into the next run; a flush waiting for them is answered by this run first.
    if (workflowInfo().continueAsNewSuggested && flushes === 0) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof auditTrailWorkflow>({
        jurisdiction: input.jurisdiction,
        head,
        recent: [...recent].slice(-REMEMBERED),
        pending,
      });
    }
  }
}
