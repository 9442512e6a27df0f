import {
  WorkflowExecutionAlreadyStartedError,
  type Client,
  type WorkflowHandleWithFirstExecutionRunId,
  type WorkflowHandle,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { Workflow } from '@temporalio/common';

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
