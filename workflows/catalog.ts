import {
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  setHandler,
  startChild,
  uuid4,
  workflowInfo,
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
  mutationTarget,
  type CatalogMutation,
  type CatalogMutationReply,
  type CatalogMutationResult,
} from '../schemas/catalog';
import { catalogWriterWorkflow } from './catalogWriter';

const replies = new Map<string, CatalogMutationReply>();
let listening = false;

/**
 * Asks the single writer of the mutation's catalog object to apply it, and waits for the outcome. Starts the writer
 * when none runs (as an abandoned child, so it outlives this workflow), and tries again.
 */
export async function changeCatalog(jurisdiction: string, mutation: CatalogMutation): Promise<CatalogMutationResult> {
  if (!listening) {
    setHandler(catalogMutationDoneSignal, (reply) => void replies.set(reply.requestId, reply));
    listening = true;
  }
  const target = mutationTarget(mutation);
  const writerId = catalogWriterWorkflowId(jurisdiction, target);
  const requestId = uuid4();
  const request = { requestId, replyTo: workflowInfo().workflowId, mutation };
  const writer = getExternalWorkflowHandle(writerId);
  // The writer usually runs (it ends only after a minute idle): signal it; start it when it does not.
  for (let attempt = 1; ; attempt++) {
    try {
      await writer.signal(applyCatalogMutationSignal, request);
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
  await condition(() => replies.has(requestId));
  const reply = replies.get(requestId)!;
  replies.delete(requestId);
  if (reply.failure) {
    throw ApplicationFailure.nonRetryable(`catalog change failed: ${reply.failure.message}`, reply.failure.type);
  }
  return reply.result!;
}
