import { WorkflowIdConflictPolicy } from '@temporalio/common';
import { decodeOptionalFailureToOptionalError } from '@temporalio/common/lib/internal-non-workflow';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ingestTaskQueue, replicationStatusQuery, replicationWorkflowId, SEARCH_ATTRIBUTES } from '../../contracts';
import type { ReplicationStatus } from '../../schemas/replication';
import type { replicationWorkflow } from '../../workflows';

/** Starts the jurisdiction's replication workflow unless it runs; true when this call started it. */
export async function ensureReplication(client: Client, jurisdiction: string): Promise<boolean> {
  const workflowId = replicationWorkflowId(jurisdiction);
  try {
    const described = await client.workflow.getHandle(workflowId).describe();
    if (described.status.name === 'RUNNING') return false;
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
  }
  await client.workflow.start<typeof replicationWorkflow>('replicationWorkflow', {
    workflowId,
    taskQueue: ingestTaskQueue(jurisdiction),
    args: [{ jurisdiction }],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction }],
  });
  return true;
}

/** The replication workflow's status, and the failure of the pass it is retrying, if any. */
export interface ReplicationReport {
  status: ReplicationStatus;
  /** The running pass's last failure (a site that cannot be reached), while it is being retried. */
  retrying: { attempt: number; message: string } | null;
}

export async function replicationReport(client: Client, jurisdiction: string): Promise<ReplicationReport | undefined> {
  const handle = client.workflow.getHandle(replicationWorkflowId(jurisdiction));
  try {
    const status = await handle.query(replicationStatusQuery);
    const described = await handle.describe();
    const pending = described.raw.pendingActivities?.find((a) => a.lastFailure);
    // The failure's message is encrypted in Temporal like every payload: decoded with this client's keys.
    const failure = pending
      ? await decodeOptionalFailureToOptionalError(client.options.loadedDataConverter, pending.lastFailure).catch(
          () => undefined,
        )
      : undefined;
    return {
      status,
      retrying: pending ? { attempt: pending.attempt ?? 0, message: failure?.message || 'failed' } : null,
    };
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  }
}
