import {
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  setHandler,
  startChild,
  uuid4,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  catalogMutationDoneSignal,
  catalogWriterWorkflowId,
  applyCatalogMutationSignal,
  ingestTaskQueue,
  SEARCH_ATTRIBUTES,
} from '../contracts';
import {
  CatalogReplyBodySchema,
  mutationTarget,
  type CatalogMutation,
  type CatalogMutationResult,
  type CatalogReplyBody,
} from '../schemas/catalog';
import { InternalMessageSchema } from '../schemas/message';
import { recordAudit } from './audit';
import { catalogWriterWorkflow } from './catalogWriter';
import { claimedMessageId, openMessages, sealMessage } from './messages';

/** Replies received for the changes this workflow waits on, by change id; nothing else is kept. */
const replies = new Map<string, unknown[]>();
let listening = false;

/** Waits for the writer's sealed reply to a change; forged replies are dropped and audited, and the wait goes on. */
async function awaitReply(jurisdiction: string, writerId: string, changeId: string): Promise<CatalogReplyBody> {
  for (;;) {
    await condition(() => replies.get(changeId)!.length > 0);
    const received = replies.get(changeId)!.splice(0);
    const verdicts = await openMessages('catalog.reply', received);
    let reply: CatalogReplyBody | undefined;
    const refused: string[] = [];
    for (const [i, raw] of received.entries()) {
      const verdict = verdicts[i]!;
      if (!verdict.ok) {
        refused.push(verdict.reason);
        continue;
      }
      const message = InternalMessageSchema.parse(raw);
      const body = CatalogReplyBodySchema.safeParse(message.body);
      if (message.from.workflowId !== writerId) refused.push('a reply sealed by another workflow than the writer');
      else if (!body.success) refused.push('a reply without an outcome');
      else reply ??= body.data;
    }
    if (refused.length > 0) {
      await recordAudit(jurisdiction, null, [
        {
          action: 'message.refused',
          outcome: 'denied',
          reason: refused[0]!,
          details: { signal: catalogMutationDoneSignal.name, messages: refused.length },
        },
      ]);
    }
    if (reply) return reply;
  }
}

/**
 * Asks the single writer of the mutation's catalog object to apply it, in a message sealed by this workflow's worker,
 * and waits for the writer's sealed outcome. Starts the writer when none runs (as an abandoned child, so it outlives
 * this workflow), and tries again.
 */
export async function changeCatalog(jurisdiction: string, mutation: CatalogMutation): Promise<CatalogMutationResult> {
  if (!listening) {
    setHandler(catalogMutationDoneSignal, (reply: unknown) => {
      const id = claimedMessageId(reply);
      if (id !== undefined) replies.get(id)?.push(reply);
    });
    listening = true;
  }
  const target = mutationTarget(mutation);
  const writerId = catalogWriterWorkflowId(jurisdiction, target);
  const changeId = uuid4();
  replies.set(changeId, []);
  const message = await sealMessage('catalog.change', jurisdiction, writerId, changeId, { mutation });
  const writer = getExternalWorkflowHandle(writerId);
  // The writer usually runs (it ends only after a minute idle): signal it; start it when it does not.
  for (let attempt = 1; ; attempt++) {
    try {
      await writer.signal(applyCatalogMutationSignal, message);
      break;
    } catch (error) {
      if (attempt >= 5) throw error;
    }
    try {
      await startChild(catalogWriterWorkflow, {
        workflowId: writerId,
        taskQueue: ingestTaskQueue(jurisdiction),
        args: [{ jurisdiction, target }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction }],
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  }
  const reply = await awaitReply(jurisdiction, writerId, changeId);
  replies.delete(changeId);
  if (reply.failure) {
    throw ApplicationFailure.nonRetryable(`catalog change failed: ${reply.failure.message}`, reply.failure.type);
  }
  return reply.result!;
}
