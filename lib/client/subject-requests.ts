import type { Client } from '@temporalio/client';
import {
  SEARCH_ATTRIBUTES,
  RequestKind,
  subjectRequestDecisionUpdate,
  subjectRequestStatusQuery,
  subjectRequestWorkflowId,
} from '../../contracts';
import { EXIT, UserError } from '../runtime/errors';
import type { Identity } from '../pki/identity';
import { signedInput } from './request';
import {
  OPEN_STATES,
  type DecisionParams,
  type SubjectRequestState,
  type SubjectRequestStatus,
} from '../../schemas/subject-request';
import { REQUEST_ID_PATTERN } from '../../schemas/common';

const KINDS = [RequestKind.SubjectAccess, RequestKind.SubjectErasure, RequestKind.SubjectRestriction];

/** A visibility query literal: only request ids, states, kinds and jurisdictions, each checked, go into one. */
function literal(value: string): string {
  if (!/^[A-Za-z0-9._:+-]+$/.test(value)) throw new UserError(`"${value}" cannot be searched for`);
  return `'${value}'`;
}

/** The workflow and jurisdiction of a subject request, found by its request id. */
export async function findSubjectRequest(
  client: Client,
  requestId: string,
): Promise<{ workflowId: string; jurisdiction: string }> {
  if (!REQUEST_ID_PATTERN.test(requestId)) throw new UserError(`"${requestId}" is not a request id`);
  const query = `RequestId = ${literal(requestId)} AND RequestKind IN (${KINDS.map(literal).join(', ')})`;
  for await (const execution of client.workflow.list({ query })) {
    const jurisdiction = execution.typedSearchAttributes.get(SEARCH_ATTRIBUTES.jurisdiction);
    if (jurisdiction && execution.workflowId === subjectRequestWorkflowId(jurisdiction, requestId)) {
      return { workflowId: execution.workflowId, jurisdiction };
    }
  }
  throw new UserError(`no subject request ${requestId} (steward dsr list shows them)`, EXIT.failure);
}

/** A request's state and steps, from its workflow (running or closed). */
export async function subjectRequestStatus(client: Client, workflowId: string): Promise<SubjectRequestStatus> {
  return client.workflow.getHandle(workflowId).query(subjectRequestStatusQuery);
}

/**
 * Signs a decision on a request with the person's identity and hands it to the request's workflow, which verifies
 * and records it: the request's status after the decision, or the workflow's refusal (thrown).
 */
export async function decideSubjectRequest(
  client: Client,
  identity: Identity,
  request: { requestId: string; jurisdiction: string; workflowId: string; params: DecisionParams; meaning: string },
): Promise<SubjectRequestStatus> {
  const { request: signed } = signedInput(identity, {
    action: `dsr.${request.params.decision}`,
    jurisdiction: request.jurisdiction,
    params: request.params,
    meaning: request.meaning,
  });
  return client.workflow
    .getHandle(request.workflowId)
    .executeUpdate(subjectRequestDecisionUpdate, { args: [{ request: signed }] });
}

export interface SubjectRequestRow {
  requestId: string;
  jurisdiction: string;
  kind: string;
  state: SubjectRequestState | string;
  dueAt: Date | undefined;
  status: string;
}

/**
 * Subject requests from visibility (their search attributes): by jurisdiction, state, and with `dueBefore`, the open
 * ones due before then (overdue: due before now).
 */
export async function listSubjectRequests(
  client: Client,
  filter: { jurisdiction?: string; state?: string; dueBefore?: Date; limit?: number },
): Promise<SubjectRequestRow[]> {
  const clauses = [`RequestKind IN (${KINDS.map(literal).join(', ')})`];
  if (filter.jurisdiction) clauses.push(`Jurisdiction = ${literal(filter.jurisdiction)}`);
  if (filter.state) clauses.push(`RequestState = ${literal(filter.state)}`);
  if (filter.dueBefore) {
    clauses.push(`RequestDeadline < ${literal(filter.dueBefore.toISOString())}`);
    clauses.push(`RequestState IN (${OPEN_STATES.map(literal).join(', ')})`);
  }
  const rows: SubjectRequestRow[] = [];
  for await (const e of client.workflow.list({ query: clauses.join(' AND ') })) {
    const a = e.typedSearchAttributes;
    rows.push({
      requestId: a.get(SEARCH_ATTRIBUTES.requestId) ?? '',
      jurisdiction: a.get(SEARCH_ATTRIBUTES.jurisdiction) ?? '',
      kind: (a.get(SEARCH_ATTRIBUTES.requestKind) ?? '').replace(/^dsr-/, ''),
      state: a.get(SEARCH_ATTRIBUTES.requestState) ?? 'received',
      dueAt: a.get(SEARCH_ATTRIBUTES.requestDeadline),
      status: e.status.name,
    });
    if (filter.limit && rows.length >= filter.limit) break;
  }
  return rows.sort((x, y) => (x.dueAt?.getTime() ?? 0) - (y.dueAt?.getTime() ?? 0));
}
