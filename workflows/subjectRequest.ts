import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  TemporalFailure,
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createSubjectRightsActivities } from '../activities/subject-rights';
import {
  ErrorType,
  nonRetryable,
  RequestKind,
  SEARCH_ATTRIBUTES,
  subjectRequestDecisionUpdate,
  subjectRequestStatusQuery,
  subjectRequestWorkflowId,
} from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import type { Action } from '../lib/auth/roles';
import { dueAt, extensionProblem, shiftIso } from '../lib/subject-rights/deadlines';
import type { Principal } from '../schemas/common';
import type { DsrDeadline } from '../schemas/jurisdiction';
import { RequestBodySchema, type SignedWorkflowInput } from '../schemas/request';
import {
  DecisionInputSchema,
  DecisionParamsSchema,
  FILING_ACTIONS,
  FINAL_STATES,
  OPEN_STATES,
  SubjectRequestParamsSchema,
  type DecisionKind,
  type DecisionParams,
  type ErasureOverride,
  type RequestStep,
  type SubjectRequestKind,
  type SubjectRequestState,
  type SubjectRequestStatus,
} from '../schemas/subject-request';
import { recordAudit, type AuditDraft } from './audit';
import { authorize, authorizeDecision, type Authorized } from './authorize';
import { changeCatalog } from './catalog';
import { setPhase } from './progress';
import { requestWork, type RequestWork } from './subjectRequestWork';

const subjects = proxyActivities<ReturnType<typeof createSubjectRightsActivities>>({
  startToCloseTimeout: '1 minute',
  // Reads the key store only: a few quick retries cover a busy disk.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/** Kinds served: the request workflow refuses a filing of any other. */
const SERVED: readonly SubjectRequestKind[] = ['access', 'erasure', 'restriction'];

const KIND_ATTRIBUTE = {
  access: RequestKind.SubjectAccess,
  erasure: RequestKind.SubjectErasure,
  restriction: RequestKind.SubjectRestriction,
} as const;

/** How long a signed receipt date may lie ahead of the workflow's clock (clock skew between machines). */
const RECEIPT_SKEW_MS = 2 * 60_000;

function filingKind(raw: unknown): SubjectRequestKind {
  const text = (raw as SignedWorkflowInput | undefined)?.request?.body;
  let action: unknown;
  try {
    action = typeof text === 'string' ? RequestBodySchema.parse(JSON.parse(text)).action : undefined;
  } catch {
    action = undefined;
  }
  const found = (Object.entries(FILING_ACTIONS) as [SubjectRequestKind, string][]).find(([, a]) => a === action);
  // Anything else is verified as an access filing, which refuses it as asking for another action.
  return found?.[0] ?? 'access';
}

/** A receipt date is midnight UTC of that day. */
function receiptTime(received: string): string {
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(received) ? `${received}T00:00:00.000Z` : received).toISOString();
}

/** The decision each action signs, and the states it may be taken in. */
const DECISIONS: Record<DecisionKind, { action: Action; from: readonly SubjectRequestState[] }> = {
  'verify-identity': { action: 'dsr.verify-identity', from: ['received'] },
  approve: { action: 'dsr.approve', from: ['pending-approval'] },
  reject: { action: 'dsr.reject', from: ['received', 'identity-verified', 'pending-approval', 'failed'] },
  extend: { action: 'dsr.extend', from: OPEN_STATES },
  lift: { action: 'dsr.lift', from: ['restricted'] },
  cancel: { action: 'dsr.cancel', from: ['received', 'identity-verified', 'pending-approval', 'failed'] },
  retry: { action: 'dsr.retry', from: ['failed'] },
};

function decisionOf(request: unknown): DecisionKind | undefined {
  const text = (request as { body?: unknown } | undefined)?.body;
  try {
    const body = RequestBodySchema.parse(JSON.parse(String(text)));
    return (Object.entries(DECISIONS) as [DecisionKind, { action: Action }][]).find(
      ([, d]) => d.action === body.action,
    )?.[0];
  } catch {
    return undefined;
  }
}

/**
 * A data subject's request, filed by the DPO's signed request: access (GDPR Art. 15, HIPAA 164.524) or restriction
 * (Art. 18). One workflow per request id, which keeps the request's state, steps and deadline:
 *
 *   received → identity-verified → in-progress → completed (access) | restricted → completed on lift (restriction)
 *
 * and at any open step rejected or cancelled; a failed step waits for the DPO's retry. Every step is a signed
 * decision (the `subjectRequestDecision` update), verified, used once and audited; the deadline from the jurisdiction's
 * file runs on durable timers, with reminders at its lead times and an escalation when it passes. A second request of
 * the same kind for the same subject while this one is open is linked to this one (by the subject's keyed digest), not
 * run twice. The state shows in the `RequestState` and `RequestDeadline` search attributes, never the subject.
 */
export async function subjectRequestWorkflow(raw: SignedWorkflowInput): Promise<SubjectRequestStatus> {
  // Only a signed decision ends a request: a cancel from the Temporal UI or CLI is not one.
  return CancellationScope.nonCancellable(() => serve(raw));
}

async function serve(raw: SignedWorkflowInput): Promise<SubjectRequestStatus> {
  const kind = filingKind(raw);
  const auth = await authorize(raw, FILING_ACTIONS[kind], SubjectRequestParamsSchema);
  const jurisdiction = getJurisdiction(auth.jurisdiction);
  const { workflowId } = workflowInfo();
  const requestTargets = {
    requestId: auth.requestId,
    ...(auth.params.studyId ? { studyId: auth.params.studyId } : {}),
  };
  const receivedAt = receiptTime(auth.params.received);
  const rule: DsrDeadline = jurisdiction.dsr[kind] ?? jurisdiction.dsr.access;
  const status: SubjectRequestStatus = {
    requestId: auth.requestId,
    jurisdiction: jurisdiction.id,
    kind,
    studyId: auth.params.studyId ?? null,
    state: 'received',
    receivedAt,
    dueAt: dueAt(receivedAt, rule.deadline, []),
    latestDueAt: rule.extension ? dueAt(receivedAt, rule.deadline, [rule.extension]) : null,
    legalBasis: rule.legalBasis,
    overdue: false,
    remindersSent: [],
    extensions: [],
    identity: null,
    approval: null,
    linkedTo: null,
    linked: [],
    failure: null,
    outcome: {},
    steps: [],
    filedSha256: auth.eSignature.recordSha256,
    filedBy: auth.principal,
  };
  setHandler(subjectRequestStatusQuery, () => status);
  const step = (name: string, by: Principal | null, extra: Partial<RequestStep> = {}) =>
    status.steps.push({ step: name, at: new Date().toISOString(), by, details: {}, ...extra });
  const publish = () =>
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction.id },
      { key: SEARCH_ATTRIBUTES.requestId, value: auth.requestId },
      { key: SEARCH_ATTRIBUTES.requestKind, value: KIND_ATTRIBUTE[kind] },
      { key: SEARCH_ATTRIBUTES.requestState, value: status.state },
      { key: SEARCH_ATTRIBUTES.requestDeadline, value: new Date(status.dueAt) },
      ...(status.studyId ? [{ key: SEARCH_ATTRIBUTES.studyId, value: status.studyId }] : []),
    ]);
  const audit = (drafts: AuditDraft[], principal: Principal | null = auth.principal) =>
    recordAudit(
      jurisdiction.id,
      principal,
      drafts.map((d) => ({ ...d, targets: { ...requestTargets, ...d.targets } })),
    );
  step('filed', auth.principal, { eSignature: auth.eSignature, reason: auth.params.reason });
  publish();

  const refuseFiling = async (reason: string): Promise<never> => {
    await audit([{ action: 'dsr.refused', outcome: 'failure', reason, details: { kind } }]);
    throw nonRetryable(ErrorType.InvalidInput, reason);
  };
  if (!SERVED.includes(kind)) {
    await refuseFiling(`${kind} requests are not served by this version of Steward`);
  }
  if (new Date(receivedAt).getTime() > Date.now() + RECEIPT_SKEW_MS) {
    await refuseFiling(`the request is dated received ${receivedAt}, which is in the future`);
  }

  setPhase('linking to an open request for the same subject');
  const { subjectDigest } = await subjects.subjectDigestActivity({ subjectId: auth.params.subjectId });
  const open = (supersedes?: string) =>
    changeCatalog(jurisdiction.id, {
      kind: 'subject-request.opened',
      requestKind: kind,
      subjectDigest,
      requestId: auth.requestId,
      workflowId,
      at: new Date().toISOString(),
      ...(supersedes ? { supersedes } : {}),
    });
  let opened = await open();
  if (opened.linkedTo) {
    // An open request whose workflow no longer runs (terminated, or reset away) answers nobody: take its place.
    const { running } = await subjects.requestRunningActivity({
      workflowId: subjectRequestWorkflowId(jurisdiction.id, opened.linkedTo),
    });
    if (!running) {
      const stale = opened.linkedTo;
      opened = await open(stale);
      step('superseded', null, { details: { stale } });
    }
  }
  if (opened.linkedTo) {
    status.linkedTo = opened.linkedTo;
    status.state = 'linked';
    step('linked', null, { details: { linkedTo: opened.linkedTo } });
    publish();
    await audit([
      {
        action: 'dsr.linked',
        outcome: 'success',
        reason: `a ${kind} request for the same subject is open: ${opened.linkedTo} answers this one`,
        details: { kind, linkedTo: opened.linkedTo },
      },
    ]);
    return status;
  }
  await audit([
    {
      action: 'dsr.received',
      outcome: 'success',
      reason: auth.params.reason,
      details: { kind, receivedAt, dueAt: status.dueAt, legalBasis: rule.legalBasis },
    },
  ]);
  step('received', null, { details: { dueAt: status.dueAt } });

  // Decisions one at a time, in the order they arrive.
  let queue: Promise<unknown> = Promise.resolve();
  let deadlineVersion = 0;
  let overrides: ErasureOverride[] = [];
  const work: RequestWork = requestWork(kind, {
    jurisdiction: jurisdiction.id,
    subjectDigest,
    auth,
    status,
    step,
    audit,
    overrides: () => overrides,
  });
  const setState = (state: SubjectRequestState) => {
    status.state = state;
    publish();
  };

  const decide = async (decision: DecisionKind, d: Authorized<DecisionParams>): Promise<void> => {
    const p = d.params;
    const allowed = DECISIONS[decision].from.includes(status.state);
    const conflict = (why: string) => nonRetryable(ErrorType.RequestConflict, why);
    const refuse = async (why: string): Promise<never> => {
      await audit(
        [{ action: 'dsr.refused', outcome: 'failure', reason: why, details: { kind, decision, state: status.state } }],
        d.principal,
      );
      throw conflict(why);
    };
    if (p.requestId !== auth.requestId)
      await refuse(`the decision is for request ${p.requestId}, not ${auth.requestId}`);
    if (!allowed) await refuse(`a ${kind} request in state ${status.state} cannot take the decision "${decision}"`);
    const signed = { eSignature: d.eSignature, reason: p.reason };
    switch (p.decision) {
      case 'verify-identity': {
        status.identity = {
          method: p.method,
          evidenceRef: p.evidenceRef,
          at: new Date().toISOString(),
          by: d.principal,
        };
        step('identity-verified', d.principal, {
          ...signed,
          details: { method: p.method, evidenceRef: p.evidenceRef },
        });
        setState(kind === 'erasure' ? 'pending-approval' : 'in-progress');
        await audit(
          [
            {
              action: 'dsr.identity-verified',
              outcome: 'success',
              reason: p.reason,
              details: { kind, method: p.method, evidenceRef: p.evidenceRef },
            },
          ],
          d.principal,
        );
        return;
      }
      case 'approve': {
        status.approval = d.eSignature;
        overrides = (p.overrides ?? []).map((o) => ({
          datasetId: o.datasetId,
          reason: o.reason,
          by: `${d.eSignature.printedName} (${d.eSignature.role})`,
          at: d.eSignature.signedAt,
        }));
        step('approved', d.principal, {
          ...signed,
          ...(overrides.length > 0 ? { details: { overrides: overrides.map((o) => o.datasetId).join(', ') } } : {}),
        });
        setState('in-progress');
        await audit(
          [
            {
              action: 'dsr.approved',
              outcome: 'success',
              reason: p.reason,
              details: {
                kind,
                ...(overrides.length > 0
                  ? { overrides: overrides.map((o) => `${o.datasetId}: ${o.reason}`).join('; ') }
                  : {}),
              },
            },
          ],
          d.principal,
        );
        return;
      }
      case 'extend': {
        if (Date.now() >= new Date(status.dueAt).getTime()) {
          await refuse(
            `the request was due ${status.dueAt}: an extension must be decided before the deadline (${rule.legalBasis})`,
          );
        }
        const problem = extensionProblem(
          rule,
          receivedAt,
          status.extensions.map((e) => e.by),
          p.by,
        );
        if (problem) await refuse(problem);
        const previous = status.dueAt;
        status.extensions.push({ by: p.by, reason: p.reason, at: new Date().toISOString() });
        status.dueAt = dueAt(
          receivedAt,
          rule.deadline,
          status.extensions.map((e) => e.by),
        );
        deadlineVersion += 1;
        step('extended', d.principal, { ...signed, details: { by: p.by, from: previous, to: status.dueAt } });
        publish();
        await audit(
          [
            {
              action: 'dsr.extended',
              outcome: 'success',
              reason: p.reason,
              details: { kind, by: p.by, from: previous, dueAt: status.dueAt },
            },
          ],
          d.principal,
        );
        return;
      }
      case 'reject':
      case 'cancel': {
        const final = p.decision === 'reject' ? 'rejected' : 'cancelled';
        step(final, d.principal, signed);
        setState(final);
        await audit(
          [
            {
              action: p.decision === 'reject' ? 'dsr.rejected' : 'dsr.cancelled',
              outcome: 'success',
              reason: p.reason,
              details: { kind },
            },
          ],
          d.principal,
        );
        return;
      }
      case 'retry': {
        const failed = status.failure;
        status.failure = null;
        step('retried', d.principal, { ...signed, details: { step: failed?.step ?? null } });
        setState('in-progress');
        await audit(
          [
            {
              action: 'dsr.retried',
              outcome: 'success',
              reason: p.reason,
              details: { kind, step: failed?.step ?? null },
            },
          ],
          d.principal,
        );
        return;
      }
      case 'lift': {
        await work.lift!(d);
        step('lifted', d.principal, signed);
        setState('completed');
        await audit([{ action: 'dsr.lifted', outcome: 'success', reason: p.reason, details: { kind } }], d.principal);
        return;
      }
    }
  };

  setHandler(
    subjectRequestDecisionUpdate,
    (input) => {
      const run = queue.then(async () => {
        try {
          const { request } = DecisionInputSchema.parse(input);
          const decision = decisionOf(request)!;
          const d = await authorizeDecision(request, DECISIONS[decision].action, DecisionParamsSchema, requestTargets);
          if (d.params.decision !== decision) {
            throw nonRetryable(
              ErrorType.InvalidInput,
              `the request signs ${DECISIONS[decision].action} with a "${d.params.decision}" decision`,
            );
          }
          await decide(decision, d);
          return status;
        } catch (error) {
          // Only a Temporal failure fails the update alone; anything else would fail the workflow task.
          if (error instanceof TemporalFailure) throw error;
          throw nonRetryable(ErrorType.InvalidInput, error instanceof Error ? error.message : String(error));
        }
      });
      queue = run.catch(() => undefined);
      return run;
    },
    {
      // Refused before anything is recorded: not a decision at all.
      validator: (input) => {
        const parsed = DecisionInputSchema.safeParse(input);
        if (!parsed.success) throw new Error('not a signed decision');
        if (!decisionOf(parsed.data.request))
          throw new Error('the signed request is not a decision on a subject request');
      },
    },
  );

  // Deadline: reminders at the rule's lead times, an escalation when it passes, while the request is owed an answer.
  const isOpen = () => OPEN_STATES.includes(status.state);
  const watchDeadline = async () => {
    for (;;) {
      if (!isOpen()) return;
      const seen = deadlineVersion;
      const due = new Date(status.dueAt).getTime();
      const now = Date.now();
      if (now >= due) {
        if (!status.overdue) {
          status.overdue = true;
          step('overdue', null, { details: { dueAt: status.dueAt } });
          await audit(
            [
              {
                action: 'dsr.overdue',
                outcome: 'failure',
                reason: `the ${kind} request was due ${status.dueAt} (${rule.legalBasis})`,
                details: { kind, dueAt: status.dueAt, state: status.state },
              },
            ],
            null,
          );
        }
        return;
      }
      const pending = rule.reminders
        .map((lead) => ({
          lead,
          at: new Date(shiftIso(status.dueAt, lead, -1)).getTime(),
          key: `${lead} before ${status.dueAt}`,
        }))
        .filter((r) => !status.remindersSent.includes(r.key))
        .sort((a, b) => a.at - b.at);
      const ripe = pending.filter((r) => r.at <= now);
      if (ripe.length > 0) {
        // Of several lead times already passed, the nearest to the deadline says how close it is.
        const latest = ripe.at(-1)!;
        for (const r of ripe) status.remindersSent.push(r.key);
        step('reminder', null, { details: { lead: latest.lead, dueAt: status.dueAt } });
        await audit(
          [
            {
              action: 'dsr.reminder',
              outcome: 'success',
              reason: `the ${kind} request is due ${status.dueAt}`,
              details: { kind, lead: latest.lead, dueAt: status.dueAt, state: status.state },
            },
          ],
          null,
        );
        continue;
      }
      const next = Math.min(due, ...pending.map((r) => r.at));
      await condition(() => deadlineVersion !== seen || !isOpen(), next - now);
    }
  };
  const watcher = watchDeadline();

  // The work runs while in progress; a failed step waits for a retry, a lift or a final decision.
  for (;;) {
    setPhase(`request ${status.state}`);
    await condition(() => status.state === 'in-progress' || FINAL_STATES.includes(status.state));
    if (FINAL_STATES.includes(status.state)) break;
    setPhase('working on the request');
    try {
      await work.run();
      const next = work.done();
      status.state = next;
      publish();
      if (next === 'restricted') continue;
    } catch (error) {
      const failure = error instanceof ApplicationFailure ? error : (error as { cause?: unknown }).cause;
      const message = failure instanceof Error ? failure.message : String(error);
      status.failure = {
        step: work.current(),
        message,
        type: failure instanceof ApplicationFailure ? (failure.type ?? null) : null,
      };
      step('failed', null, { details: { step: status.failure.step } });
      status.state = 'failed';
      publish();
      await audit(
        [{ action: 'dsr.failed', outcome: 'failure', reason: message, details: { kind, step: status.failure.step } }],
        null,
      );
    }
  }
  await watcher;
  await condition(allHandlersFinished);
  const closed = await changeCatalog(jurisdiction.id, {
    kind: 'subject-request.closed',
    requestKind: kind,
    subjectDigest,
    requestId: auth.requestId,
  });
  status.linked = closed.linked ?? [];
  if (status.state === 'completed' || status.state === 'completed-with-exemptions') {
    await audit(
      [
        {
          action: 'dsr.completed',
          outcome: 'success',
          details: { kind, state: status.state, linked: status.linked.length, ...status.outcome },
        },
      ],
      null,
    );
  }
  return status;
}
