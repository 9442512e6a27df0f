import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  appendAuditEventsSignal,
  auditTrailWorkflowId,
  flushAuditTrailUpdate,
  ingestTaskQueue,
  SEARCH_ATTRIBUTES,
} from '../../contracts';
import type { AuditEvent, AuditEventInput, AuditTrailHead } from '../../schemas/audit';
import { AuditEventSchema } from '../../schemas/audit';
import type { auditTrailWorkflow } from '../../workflows';

/**
 * Appends events from outside a workflow (the CLI's identity commands) to a jurisdiction's audit trail, starting the
 * trail if none runs. Durable once this returns.
 */
export async function appendAudit(
  client: Client,
  jurisdiction: string,
  drafts: Omit<AuditEventInput, 'id' | 'at' | 'jurisdiction'>[],
): Promise<AuditEvent[]> {
  const at = new Date().toISOString();
  const events = drafts.map((d) => AuditEventSchema.parse({ ...d, id: `cli/${randomUUID()}`, at, jurisdiction }));
  await client.workflow.signalWithStart<typeof auditTrailWorkflow, [AuditEvent[]]>('auditTrailWorkflow', {
    workflowId: auditTrailWorkflowId(jurisdiction),
    taskQueue: ingestTaskQueue(jurisdiction),
    args: [{ jurisdiction }],
    signal: appendAuditEventsSignal,
    signalArgs: [events],
    typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction }],
  });
  return events;
}

/** Has a jurisdiction's trail seal everything pending; returns its head, or undefined when no trail runs. */
export async function flushAudit(client: Client, jurisdiction: string): Promise<AuditTrailHead | undefined> {
  try {
    return await client.workflow.getHandle(auditTrailWorkflowId(jurisdiction)).executeUpdate(flushAuditTrailUpdate);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return undefined;
    throw error;
  }
}
