import { getExternalWorkflowHandle, ParentClosePolicy, startChild, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { appendAuditEventsSignal, auditTrailWorkflowId, ingestTaskQueue, SEARCH_ATTRIBUTES } from '../contracts';
import type { AuditEvent, AuditEventInput } from '../schemas/audit';
import type { Principal } from '../schemas/common';
import { auditTrailWorkflow } from './auditTrail';
import { sealMessage } from './messages';

/** An event as a workflow describes it; id, time, jurisdiction and workflow are filled in. */
export type AuditDraft = Omit<AuditEventInput, 'id' | 'at' | 'jurisdiction' | 'workflow' | 'principal'> & {
  principal?: Principal | null;
};

let sequence = 0;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

async function ensureTrail(jurisdiction: string): Promise<void> {
  try {
    await startChild(auditTrailWorkflow, {
      workflowId: auditTrailWorkflowId(jurisdiction),
      taskQueue: ingestTaskQueue(jurisdiction),
      args: [{ jurisdiction }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction }],
    });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
}

/**
 * Appends events to the jurisdiction's audit trail, sealed by this workflow's worker as coming from this run (the trail
 * refuses anything else). When this returns, the events are durable (in the trail's history); the trail seals them into
 * the evidence bucket within about a second. Ids come from this workflow run and a counter, so they are the same on
 * replay. The trail is started if it does not run yet. Only the worker's own jurisdiction's trail can be written.
 */
export async function recordAudit(
  jurisdiction: string,
  principal: Principal | null,
  drafts: AuditDraft[],
): Promise<AuditEvent[]> {
  const { workflowId, runId } = workflowInfo();
  const at = new Date().toISOString();
  const events = drafts.map(
    (draft) =>
      ({
        targets: {},
        details: {},
        ...draft,
        // A long failure message would make the event invalid, and the trail would refuse it: kept to its limit.
        ...(draft.reason !== undefined ? { reason: clip(draft.reason, 1000) } : {}),
        principal: draft.principal === undefined ? principal : draft.principal,
        id: `${workflowId}/${runId}/${++sequence}`,
        at,
        jurisdiction,
        workflow: { workflowId, runId },
      }) as AuditEvent,
  );
  const trailId = auditTrailWorkflowId(jurisdiction);
  const message = await sealMessage('audit.append', jurisdiction, trailId, events[0]!.id, events);
  const trail = getExternalWorkflowHandle(trailId);
  try {
    await trail.signal(appendAuditEventsSignal, message);
  } catch {
    // No trail runs yet for this jurisdiction (a new deployment): start it, then deliver.
    await ensureTrail(jurisdiction);
    await trail.signal(appendAuditEventsSignal, message);
  }
  return events;
}
