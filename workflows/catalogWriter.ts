import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createCatalogActivities } from '../activities/catalog';
import { applyCatalogMutationSignal, catalogMutationDoneSignal, catalogWriterStatusQuery } from '../contracts';
import {
  CatalogWriterInputSchema,
  CatalogWriterStateSchema,
  type CatalogReplyBody,
  type CatalogWriterInput,
} from '../schemas/catalog';
import { InternalMessageSchema, type InternalMessage } from '../schemas/message';
import { parseInput } from '../contracts/parse';
import { recordAudit } from './audit';
import { claimedMessageId, openMessages, openState, rememberNewest, sealMessage, sealState } from './messages';
import { progressFrom } from './progress';

const { applyCatalogMutationActivity } = proxyActivities<ReturnType<typeof createCatalogActivities>>({
  // A change reads and writes a few catalog objects (a page of records, a study's records at most): seconds. A change
  // whose worker died is tried again on another within half a minute.
  startToCloseTimeout: '30 seconds',
  // Small catalog objects: transient storage errors clear within a few tries; a change that keeps failing is reported
  // to its caller instead of blocking the changes queued behind it forever.
  retry: { maximumAttempts: 10, initialInterval: '1s', maximumInterval: '30s' },
});

/** Idle this long with nothing queued, the writer ends; the next change starts it again. */
const IDLE = '1 minute';
/** Change ids remembered across continue-as-new, so a change delivered twice is applied once. */
const REMEMBERED = 500;

function failureOf(error: unknown): { type: string; message: string } {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'ApplicationFailure', message: cause.message };
  return { type: 'Error', message: (cause as Error)?.message ?? String(cause) };
}

/**
 * The single writer of one catalog object: applies queued changes one at a time, in arrival order, and signals each
 * outcome, sealed, to the workflow that asked. Only changes sealed by the jurisdiction's workers are applied; a forged,
 * misdirected or replayed one is dropped and audited, and the writer goes on. Ends when idle; continues as new before
 * its history grows large.
 */
export async function catalogWriterWorkflow(raw: CatalogWriterInput): Promise<{ applied: number }> {
  const input = parseInput(CatalogWriterInputSchema, raw, 'catalogWriterWorkflow');
  const { jurisdiction } = input;
  const done = new Map<string, string>();
  let horizon: string | null = null;
  const queue: unknown[] = [];
  // Counted across continue-as-new, like the changes done: the writer's status speaks for the whole chain of runs.
  let applied = 0;
  setHandler(catalogWriterStatusQuery, () => ({ applied, queued: queue.length }));
  progressFrom(() => ({
    phase: queue.length > 0 ? 'applying catalog changes' : 'waiting for changes',
    since: '',
    counts: { applied, queued: queue.length },
  }));
  setHandler(applyCatalogMutationSignal, (message: unknown) => {
    const id = claimedMessageId(message);
    if (id === undefined || !done.has(id)) queue.push(message);
  });
  const refuse = (reason: string, messages: number) =>
    recordAudit(jurisdiction, null, [
      {
        action: 'message.refused',
        outcome: 'denied',
        reason,
        details: { signal: applyCatalogMutationSignal.name, messages },
      },
    ]);

  if (input.state !== undefined) {
    const saved = await openState(input.state, CatalogWriterStateSchema);
    if (saved.ok) {
      for (const [id, at] of saved.state.done) done.set(id, at);
      applied = saved.state.applied;
      horizon = saved.state.horizon;
    } else {
      await refuse(`saved state refused: ${saved.reason}`, 1);
    }
  }

  /** The queued messages that are sealed changes for this writer and not replays; the rest is refused. */
  const admit = async (): Promise<InternalMessage[]> => {
    const batch = queue.splice(0);
    const verdicts = await openMessages('catalog.change', batch);
    const refused = new Map<string, number>();
    const admitted: InternalMessage[] = [];
    const count = (reason: string) => refused.set(reason, (refused.get(reason) ?? 0) + 1);
    for (const [i, raw] of batch.entries()) {
      const verdict = verdicts[i]!;
      if (!verdict.ok) {
        count(verdict.reason);
        continue;
      }
      const message = InternalMessageSchema.parse(raw);
      if (horizon !== null && message.issuedAt <= horizon) count('a change older than the writer remembers: a replay');
      // A change delivered twice is applied once, and not refused: its first delivery stands.
      else if (!done.has(message.id) && !admitted.some((m) => m.id === message.id)) admitted.push(message);
    }
    for (const [reason, n] of refused) await refuse(reason, n);
    return admitted;
  };

  for (;;) {
    await condition(() => queue.length > 0, IDLE);
    if (queue.length === 0) {
      await condition(allHandlersFinished);
      if (queue.length === 0) return { applied };
    }
    for (const message of await admit()) {
      let reply: CatalogReplyBody;
      try {
        reply = { result: await applyCatalogMutationActivity({ message }) };
        applied += 1;
      } catch (error) {
        reply = { failure: failureOf(error) };
      }
      done.set(message.id, message.issuedAt);
      const sealed = await sealMessage('catalog.reply', jurisdiction, message.from.workflowId, message.id, reply);
      try {
        await getExternalWorkflowHandle(message.from.workflowId).signal(catalogMutationDoneSignal, sealed);
      } catch (error) {
        // The caller is gone (terminated, or timed out): the change stands, nobody waits for its outcome.
        log.warn('catalog change outcome not delivered', { replyTo: message.from.workflowId, error: String(error) });
      }
    }
    if (workflowInfo().continueAsNewSuggested && queue.length === 0) {
      await condition(allHandlersFinished);
      if (queue.length === 0) {
        const remembered = rememberNewest(done, REMEMBERED, horizon);
        const state = await sealState(jurisdiction, { done: remembered.kept, applied, horizon: remembered.horizon });
        // Changes that arrived while the state was sealed are not in it: this run applies them first.
        if (queue.length === 0) {
          return continueAsNew<typeof catalogWriterWorkflow>({ jurisdiction, target: input.target, state });
        }
      }
    }
  }
}
