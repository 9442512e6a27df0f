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
  type CatalogMutationReply,
  type CatalogMutationRequest,
  type CatalogWriterInput,
} from '../schemas/catalog';
import { parseInput } from '../schemas/parse';
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
/** Request ids remembered across continue-as-new, so a request delivered twice is applied once. */
const REMEMBERED = 500;

function failureOf(error: unknown): { type: string; message: string } {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'ApplicationFailure', message: cause.message };
  return { type: 'Error', message: (cause as Error)?.message ?? String(cause) };
}

/**
 * The single writer of one catalog object: applies queued changes one at a time, in arrival order, and signals each
 * outcome to the workflow that asked. Ends when idle; continues as new before its history grows large.
 */
export async function catalogWriterWorkflow(
  raw: CatalogWriterInput & { done?: string[]; applied?: number },
): Promise<{ applied: number }> {
  const input = parseInput(CatalogWriterInputSchema, raw, 'catalogWriterWorkflow');
  const done = new Set(raw.done ?? []);
  const queue: CatalogMutationRequest[] = [];
  // Counted across continue-as-new, like the requests done: the writer's status speaks for the whole chain of runs.
  let applied = raw.applied ?? 0;
  setHandler(catalogWriterStatusQuery, () => ({ applied, queued: queue.length }));
  progressFrom(() => ({
    phase: queue.length > 0 ? 'applying catalog changes' : 'waiting for changes',
    since: '',
    counts: { applied, queued: queue.length },
  }));
  setHandler(applyCatalogMutationSignal, (request) => {
    if (!done.has(request.requestId)) queue.push(request);
  });
  for (;;) {
    await condition(() => queue.length > 0, IDLE);
    if (queue.length === 0) {
      await condition(allHandlersFinished);
      if (queue.length === 0) return { applied };
    }
    const request = queue.shift()!;
    let reply: CatalogMutationReply;
    try {
      reply = { requestId: request.requestId, result: await applyCatalogMutationActivity(request.mutation) };
      applied += 1;
    } catch (error) {
      reply = { requestId: request.requestId, failure: failureOf(error) };
    }
    done.add(request.requestId);
    try {
      await getExternalWorkflowHandle(request.replyTo).signal(catalogMutationDoneSignal, reply);
    } catch (error) {
      // The caller is gone (terminated, or timed out): the change stands, nobody waits for its outcome.
      log.warn('catalog change outcome not delivered', { replyTo: request.replyTo, error: String(error) });
    }
    if (workflowInfo().continueAsNewSuggested && queue.length === 0) {
      await condition(allHandlersFinished);
      if (queue.length === 0)
        return continueAsNew<typeof catalogWriterWorkflow>({
          ...input,
          done: [...done].slice(-REMEMBERED),
          applied,
        });
    }
  }
}
