import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAuditActivities } from '../activities/audit';
import {
  appendAuditEventsSignal,
  auditTrailStatusQuery,
  ErrorType,
  flushAuditTrailUpdate,
  nonRetryable,
} from '../contracts';
import {
  AuditEventSchema,
  AuditTrailInputSchema,
  AuditTrailStateSchema,
  type AuditEvent,
  type AuditTrailHead,
  type AuditTrailInput,
} from '../schemas/audit';
import { InternalMessageSchema, type InternalMessage } from '../schemas/message';
import { parseInput } from '../contracts/parse';
import { openMessages, openState, rememberNewest, sealState, workerJurisdiction } from './messages';
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
/** Messages opened at once. */
const INBOX_BATCH = 1000;

/** A sealed message's events when they are the sender's own, or why they are refused. */
function eventsOf(message: InternalMessage, jurisdiction: string): { events: AuditEvent[] } | { problem: string } {
  const events = AuditEventSchema.array().min(1).max(SEGMENT_EVENTS).safeParse(message.body);
  if (!events.success) return { problem: 'the message does not hold audit events' };
  const prefix = `${message.from.workflowId}/${message.from.runId}/`;
  for (const event of events.data) {
    if (event.jurisdiction !== jurisdiction) return { problem: `an event of jurisdiction ${event.jurisdiction}` };
    if (!event.id.startsWith(prefix)) return { problem: 'an event whose id is not its sender’s' };
    if (
      event.workflow &&
      (event.workflow.workflowId !== message.from.workflowId || event.workflow.runId !== message.from.runId)
    ) {
      return { problem: 'an event in another workflow’s name' };
    }
  }
  return { events: events.data };
}

/**
 * The single writer of a jurisdiction's audit trail. Events arrive by signal, in messages sealed by the jurisdiction's
 * workers (durable in this workflow's history as soon as the sender's signal returns), are ordered by arrival, and are
 * sealed into hash-chained, signed segments in the jurisdiction's evidence bucket within about a second. A message
 * that is not sealed, not for this trail, malformed, or a replay is dropped, never fatal: the refusal is itself an
 * event of the trail (without the message's content). Runs for ever, continuing as new before its history grows large.
 */
export async function auditTrailWorkflow(raw: AuditTrailInput): Promise<void> {
  const input = parseInput(AuditTrailInputSchema, raw, 'auditTrailWorkflow');
  const jurisdiction = input.jurisdiction;
  const { workflowId, runId } = workflowInfo();
  const inbox: unknown[] = [];
  const pending: AuditEvent[] = [];
  const recent = new Map<string, string>();
  let horizon: string | null = null;
  let head: AuditTrailHead | undefined;
  let refusals = 0;
  let flushes = 0;
  /** Messages taken from the inbox and being opened: neither in the inbox nor pending yet, but not sealed either. */
  let opening = 0;
  const refuse = (reason: string, messages: number) =>
    pending.push({
      id: `${workflowId}/${runId}/refused-${++refusals}`,
      at: new Date().toISOString(),
      jurisdiction,
      principal: null,
      action: 'message.refused',
      outcome: 'denied',
      reason,
      targets: {},
      workflow: { workflowId, runId },
      details: { signal: appendAuditEventsSignal.name, messages },
    });

  // Only this workflow's own continue-as-new hands over state; any other start begins from the stored trail.
  setHandler(appendAuditEventsSignal, (message: unknown) => void inbox.push(message));
  setHandler(auditTrailStatusQuery, () => ({
    ...(head ?? { seq: 0, position: 0, prevEventHash: '', prevSegmentHash: '' }),
    pending: pending.length + inbox.length + opening,
  }));
  progressFrom(() => ({
    phase: pending.length + inbox.length > 0 ? 'sealing events into a segment' : 'waiting for events',
    since: '',
    counts: { pending: pending.length + inbox.length, sealedSegments: head?.seq ?? 0, events: head?.position ?? 0 },
  }));
  setHandler(flushAuditTrailUpdate, async () => {
    flushes += 1;
    await condition(() => pending.length === 0 && inbox.length === 0 && opening === 0 && head !== undefined);
    flushes -= 1;
    return head!;
  });
  // Only after the handlers: an update that arrives in a run's first workflow task, while this waits, is then held until
  // the trail is ready instead of being refused for want of a handler.
  const own = await workerJurisdiction();
  if (own !== jurisdiction) {
    throw nonRetryable(
      ErrorType.JurisdictionViolation,
      `the audit trail of ${jurisdiction} runs only on its own workers, not on a worker of ${own}`,
    );
  }

  if (input.state !== undefined) {
    const saved = await openState(input.state, AuditTrailStateSchema);
    if (saved.ok) {
      head = saved.state.head;
      pending.push(...saved.state.pending);
      for (const [id, at] of saved.state.recent) recent.set(id, at);
      horizon = saved.state.horizon;
    } else {
      refuse(`saved state refused: ${saved.reason}`, 1);
    }
  }
  head ??= await audit.readAuditHeadActivity({ jurisdiction });

  /** Opens what arrived: events of sealed messages join the pending ones, refusals are counted by reason. */
  const admit = async () => {
    const batch = inbox.splice(0, INBOX_BATCH);
    opening += batch.length;
    const verdicts = await openMessages('audit.append', batch);
    opening -= batch.length;
    const refused = new Map<string, number>();
    const count = (reason: string) => refused.set(reason, (refused.get(reason) ?? 0) + 1);
    for (const [i, raw] of batch.entries()) {
      const verdict = verdicts[i]!;
      if (!verdict.ok) {
        count(verdict.reason);
        continue;
      }
      const message = InternalMessageSchema.parse(raw);
      const opened = eventsOf(message, jurisdiction);
      if ('problem' in opened) count(`a sealed message with ${opened.problem}`);
      else if (horizon !== null && message.issuedAt <= horizon)
        count('a message older than the trail remembers: a replay');
      else {
        for (const event of opened.events) {
          if (recent.has(event.id)) continue;
          recent.set(event.id, message.issuedAt);
          pending.push(event);
        }
      }
    }
    for (const [reason, n] of refused) refuse(reason, n);
  };

  for (;;) {
    // Continue-as-new waits for the flushes in progress: they are answered by this run. Waking for it while one is
    // still waiting would loop without yielding, and the trail would stop.
    await condition(
      () => inbox.length > 0 || pending.length > 0 || (workflowInfo().continueAsNewSuggested && flushes === 0),
    );
    if (inbox.length > 0) await admit();
    if (pending.length > 0) {
      if (pending.length < SEGMENT_EVENTS && flushes === 0) {
        await condition(() => pending.length + inbox.length >= SEGMENT_EVENTS || flushes > 0, BATCH_WINDOW);
        if (inbox.length > 0) await admit();
      }
      const batch = pending.slice(0, SEGMENT_EVENTS);
      head = await audit.sealAuditSegmentActivity({
        jurisdiction,
        head,
        sealedAt: new Date().toISOString(),
        events: batch,
      });
      pending.splice(0, batch.length);
    }
    // Pending events travel into the next run; a flush waiting for them is answered by this run first.
    if (workflowInfo().continueAsNewSuggested && flushes === 0) {
      await condition(allHandlersFinished);
      if (inbox.length > 0) await admit();
      const remembered = rememberNewest(recent, REMEMBERED, horizon);
      const state = await sealState(jurisdiction, {
        head,
        pending,
        recent: remembered.kept,
        horizon: remembered.horizon,
      });
      // Messages that arrived while the state was sealed are not in it: this run admits and seals them first.
      if (inbox.length === 0) return continueAsNew<typeof auditTrailWorkflow>({ jurisdiction, state });
    }
  }
}
