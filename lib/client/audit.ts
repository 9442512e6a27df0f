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
import type { InternalMessage } from '../../schemas/message';
import { sealMessage } from '../auth/messages';
import type { auditTrailWorkflow } from '../../workflows';

/**
 * Appends events from outside a workflow (the codec server, the stack, the CA administrator's commands) to a
 * jurisdiction's audit trail, sealed with the jurisdiction's message key, starting the trail if none runs. Durable once
 * this returns. `source` names the sender in the events' ids.
 */
export async function appendAudit(
  client: Client,
  messageKey: Buffer,
  jurisdiction: string,
  drafts: Omit<AuditEventInput, 'id' | 'at' | 'jurisdiction'>[],
  source = 'steward-cli',
): Promise<AuditEvent[]> {
  const at = new Date().toISOString();
  const from = { workflowId: source, runId: randomUUID() };
  const events = drafts.map((d, i) =>
    AuditEventSchema.parse({ ...d, id: `${from.workflowId}/${from.runId}/${i + 1}`, at, jurisdiction }),
  );
  const to = auditTrailWorkflowId(jurisdiction);
  const message = sealMessage(messageKey, {
    kind: 'audit.append',
    jurisdiction,
    from,
    to,
    id: events[0]!.id,
    issuedAt: at,
    body: events,
  });
  await client.workflow.signalWithStart<typeof auditTrailWorkflow, [InternalMessage]>('auditTrailWorkflow', {
    workflowId: to,
    taskQueue: ingestTaskQueue(jurisdiction),
    args: [{ jurisdiction }],
    signal: appendAuditEventsSignal,
    signalArgs: [message],
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
