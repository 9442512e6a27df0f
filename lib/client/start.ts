import {
  WorkflowExecutionAlreadyStartedError,
  type Client,
  type WorkflowHandleWithFirstExecutionRunId,
  type WorkflowHandle,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { Payload, Workflow } from '@temporalio/common';

/**
 * Starts a workflow, or finds the one already started under the same id: starting what already runs (or ran, when
 * the id's reuse policy forbids a second run) is success, not an error. `started` tells which.
 */
export async function startOrAttach<T extends Workflow>(
  client: Client,
  workflowType: string,
  options: WorkflowStartOptions<T>,
): Promise<{ handle: WorkflowHandle<T> | WorkflowHandleWithFirstExecutionRunId<T>; started: boolean }> {
  try {
    return { handle: await client.workflow.start<T>(workflowType, options), started: true };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      return { handle: client.workflow.getHandle<T>(options.workflowId), started: false };
    }
    throw error;
  }
}

/**
 * The input a workflow id's chain of runs was started with, decoded: the first run's, whichever run is the latest (a
 * run continued as new carries other input). Undefined when there is none.
 */
export async function firstInput(client: Client, workflowId: string): Promise<unknown> {
  const startOf = async (runId?: string) =>
    (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events?.[0]
      ?.workflowExecutionStartedEventAttributes ?? undefined;
  let start = await startOf();
  if (start?.continuedExecutionRunId && start.firstExecutionRunId) start = await startOf(start.firstExecutionRunId);
  const payload = start?.input?.payloads?.[0];
  if (!payload) return undefined;
  const converter = client.options.loadedDataConverter;
  let decoded: Payload[] = [payload];
  for (const codec of [...converter.payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return converter.payloadConverter.fromPayload(decoded[0]!);
}
