import { proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { createMessageActivities } from '../activities/messages';
import type { InternalMessage, MessageKind, MessageVerdict } from '../schemas/message';
import { InternalMessageSchema } from '../schemas/message';

const messages = proxyLocalActivities<ReturnType<typeof createMessageActivities>>({
  // An HMAC over a message in the worker's own process: milliseconds.
  startToCloseTimeout: '10 seconds',
  // Nothing external can fail; a few tries cover a worker under load.
  retry: { maximumAttempts: 5, initialInterval: '200ms' },
});

/** The jurisdiction whose worker runs this workflow, whatever its input claims (recorded, so a replay agrees). */
export function workerJurisdiction(): Promise<string> {
  return messages.workerJurisdictionActivity();
}

/** The id a received message says it has, before anything checks it. */
export function claimedMessageId(raw: unknown): string | undefined {
  const id = (raw as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id : undefined;
}

/**
 * What a receiver hands its next run of the message ids it has seen (in arrival order, with when each was sealed): the
 * newest `keep`, and a horizon moved up to the latest seal time among those it forgets, so a message sealed before the
 * horizon can be refused as a replay.
 */
export function rememberNewest(
  seen: ReadonlyMap<string, string>,
  keep: number,
  horizon: string | null,
): { kept: [string, string][]; horizon: string | null } {
  const entries = [...seen];
  const kept = entries.slice(-keep);
  let moved = horizon;
  for (const [, at] of entries.slice(0, entries.length - kept.length)) if (moved === null || at > moved) moved = at;
  return { kept, horizon: moved };
}

/** A message from this workflow run, sealed by its worker. */
export async function sealMessage(
  kind: MessageKind,
  jurisdiction: string,
  to: string,
  id: string,
  body: unknown,
): Promise<InternalMessage> {
  const stamp = await messages.sealMessageActivity({ kind, jurisdiction, to, id, body });
  return { format: 'steward-message/1', kind, jurisdiction, to, id, body, ...stamp };
}

/** Verdicts on received messages of one kind, in order; none are acted on before this. */
export async function openMessages(kind: MessageKind, raw: unknown[]): Promise<MessageVerdict[]> {
  return raw.length === 0 ? [] : messages.openMessagesActivity({ kind, messages: raw });
}

/** This run's state sealed for its next run (continue-as-new): only that run will accept it. */
export async function sealState(jurisdiction: string, state: unknown): Promise<InternalMessage> {
  const { workflowId, runId } = workflowInfo();
  return sealMessage('state', jurisdiction, workflowId, `${runId}/state`, state);
}

/**
 * Opens state handed over by continue-as-new: it must be sealed by this jurisdiction's worker, by the run this one
 * continues, for this workflow, and this run must be that continuation (not a cron or retry run, which Temporal starts
 * with the first run's input). Anything else is a forgery or a replay, whatever it holds.
 */
export async function openState<S extends z.ZodType>(
  raw: unknown,
  schema: S,
): Promise<{ ok: true; state: z.infer<S> } | { ok: false; reason: string }> {
  const refused = (reason: string) => ({ ok: false as const, reason });
  const { workflowId, continuedFromExecutionRunId, attempt, cronSchedule } = workflowInfo();
  if (!continuedFromExecutionRunId || attempt > 1 || cronSchedule) {
    return refused('saved state is accepted only by the continue-as-new run of the run that saved it');
  }
  const [verdict] = await openMessages('state', [raw]);
  if (!verdict!.ok) return refused(verdict!.reason);
  const message = InternalMessageSchema.parse(raw);
  if (message.from.workflowId !== workflowId || message.from.runId !== continuedFromExecutionRunId) {
    return refused('the saved state was sealed by another run: only the run this one continues can hand it over');
  }
  const state = schema.safeParse(message.body);
  if (!state.success) return refused('the saved state does not have the shape of this workflow’s state');
  return { ok: true, state: state.data };
}
