import {
  allHandlersFinished,
  CancellationScope,
  condition,
  proxyActivities,
  setHandler,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createQualificationActivities } from '../activities/qualification';
import type { createRetentionActivities } from '../activities/retention';
import { changeDecisionUpdate, changeStatusQuery, ErrorType, nonRetryable, SEARCH_ATTRIBUTES } from '../contracts';
import type { Principal } from '../schemas/common';
import {
  ChangeDecisionParamsSchema,
  ChangeParamsSchema,
  QaSignInputSchema,
  type ChangeRecord,
} from '../schemas/qualification';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit, type AuditDraft } from './audit';
import { authorize, authorizeDecision } from './authorize';
import { changeOrRecordRefusal } from './legalHold';
import { setPhase } from './progress';
import { awaitQaSignature, showRunning, takeInventory } from './qualify';

const qualification = proxyActivities<ReturnType<typeof createQualificationActivities>>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 10, initialInterval: '2s', maximumInterval: '30s' },
});

/** Waiting for the workers to run the approved rules: one short check, retried until they were restarted. */
const restart = proxyActivities<ReturnType<typeof createQualificationActivities>>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '7 days',
  retry: { initialInterval: '3s', backoffCoefficient: 1.5, maximumInterval: '15 seconds' },
});

const locks = proxyActivities<ReturnType<typeof createRetentionActivities>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { maximumAttempts: 60, initialInterval: '2s', maximumInterval: '1 minute' },
});

/** How long a proposal waits for QA's decision before it expires, applying nothing. */
const DECISION_WAIT = '30 days';

/** The same person, whichever of their certificates they signed with: the printed name decides, as on paper. */
function samePerson(a: Principal, b: Principal): boolean {
  return a.id.trim().toLowerCase() === b.id.trim().toLowerCase() || (!!a.serial && a.serial === b.serial);
}

/**
 * A change to a controlled file (a jurisdiction's rules, a pipeline, the requirements), proposed by a signed request:
 * its impact and dry run are computed and recorded; QA, a person other than the proposer, approves or rejects it by an
 * e-signed decision; only an approved one is applied (jurisdiction rules once the workers were restarted to load them,
 * with the datasets' retention recomputed), and a new baseline recorded for QA's signature. Each step is audited.
 */
export async function changeWorkflow(raw: SignedWorkflowInput): Promise<ChangeRecord> {
  const auth = await authorize(raw, 'change.propose', ChangeParamsSchema);
  const { jurisdiction, params } = auth;
  const changeId = workflowInfo().workflowId;
  const targets = { requestId: auth.requestId };
  setPhase('computing the impact of the change');
  const impact = await qualification.assessChangeActivity({
    file: params.file,
    content: params.content,
    sha256: params.sha256,
  });
  const failed = impact.dryRun.filter((c) => !c.ok);
  const content =
    params.content === null
      ? null
      : await qualification.storeChangeContentActivity({ changeId, file: params.file, content: params.content });
  const record: ChangeRecord = {
    format: 'steward-change/1',
    changeId,
    jurisdiction,
    state: failed.length > 0 ? 'refused' : 'awaiting-approval',
    file: params.file,
    reason: params.reason,
    proposedAt: new Date().toISOString(),
    proposedBy: auth.eSignature,
    content,
    impact,
    decision: null,
    appliedAt: null,
    baseline: null,
    problems: failed.map((c) => `${c.check}: ${c.detail}`),
  };
  setHandler(changeStatusQuery, () => record);
  const save = async (next: Partial<ChangeRecord>) => {
    Object.assign(record, next);
    await qualification.writeChangeRecordActivity(record);
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.requestState, value: record.state }]);
  };
  await save({});
  const summary = {
    file: params.file,
    kind: impact.kind,
    before: impact.before ?? 'none',
    after: impact.after ?? 'removed',
    datasetsMoved: impact.retention.length,
    retest: impact.retest.join(','),
  };
  if (record.state === 'refused') {
    await recordAudit(jurisdiction, auth.principal, [
      {
        action: 'change.refused',
        outcome: 'failure',
        targets,
        reason: record.problems.join('; ').slice(0, 1000),
        details: summary,
      },
    ]);
    return record;
  }
  await recordAudit(jurisdiction, auth.principal, [
    { action: 'change.proposed', outcome: 'success', targets, reason: params.reason, details: summary },
  ]);

  let deciding = false;
  setHandler(
    changeDecisionUpdate,
    async (input) => {
      if (deciding) throw nonRetryable(ErrorType.RequestConflict, `${changeId} is taking another decision`);
      deciding = true;
      try {
        if (record.state !== 'awaiting-approval') {
          throw nonRetryable(ErrorType.RequestConflict, `${changeId} is ${record.state}: it was decided already`);
        }
        const { request } = QaSignInputSchema.parse(input);
        const d = await authorizeDecision(request, 'change.decide', ChangeDecisionParamsSchema, targets);
        if (samePerson(d.principal, auth.principal)) {
          const reason = `${d.principal.id} proposed ${changeId}: a change is approved or rejected by another person`;
          await recordAudit(jurisdiction, d.principal, [
            { action: 'request.denied', outcome: 'denied', reason, targets, details: { requested: 'change.decide' } },
          ]);
          throw nonRetryable(ErrorType.AccessDenied, reason);
        }
        if (d.params.decision === 'approve' && d.params.sha256 !== impact.after) {
          throw nonRetryable(
            ErrorType.InvalidInput,
            `the approval names content ${d.params.sha256 ?? 'none (a removal)'}, the change proposes ${impact.after ?? 'a removal'}`,
          );
        }
        const approve = d.params.decision === 'approve';
        await save({
          state: approve ? 'applying' : 'rejected',
          decision: { decision: d.params.decision, notes: d.params.notes, eSignature: d.eSignature },
        });
        await recordAudit(jurisdiction, d.principal, [
          {
            action: approve ? 'change.approved' : 'change.rejected',
            outcome: 'success',
            targets,
            reason: d.eSignature.meaning,
            details: { file: params.file, after: impact.after ?? 'removed', notes: d.params.notes.slice(0, 500) },
          },
        ]);
        return record;
      } catch (error) {
        if (error instanceof TemporalFailure) throw error;
        throw nonRetryable(ErrorType.InvalidInput, error instanceof Error ? error.message : String(error));
      } finally {
        deciding = false;
      }
    },
    {
      validator: (input) => {
        if (!QaSignInputSchema.safeParse(input).success) throw new Error('not a signed QA decision');
      },
    },
  );
  setPhase(`awaiting QA's decision on ${params.file}`);
  const decided = await condition(() => record.state !== 'awaiting-approval', DECISION_WAIT);
  await condition(allHandlersFinished);
  if (!decided) {
    await save({ state: 'expired', problems: [`no decision within ${DECISION_WAIT}: nothing was applied`] });
    await recordAudit(jurisdiction, null, [
      { action: 'change.expired', outcome: 'failure', targets, details: { file: params.file, waited: DECISION_WAIT } },
    ]);
    return record;
  }
  if (record.state === 'rejected') return record;

  // Approved: once applied, the rest runs to its end whatever is asked of the workflow.
  return CancellationScope.nonCancellable(async () => {
    setPhase(`applying ${params.file}`);
    await qualification.applyChangeActivity({
      file: params.file,
      contentKey: content?.key ?? null,
      sha256: impact.after,
      before: impact.before,
    });
    await save({ appliedAt: new Date().toISOString() });
    const applied: AuditDraft[] = [];
    if (impact.restartNeeded && impact.loadedSha256) {
      await save({ state: 'awaiting-restart' });
      setPhase(`${params.file} written: restart the ${jurisdiction} workers to load it`);
      await restart.awaitLoadedRulesActivity({ sha256: impact.loadedSha256 });
      setPhase('recomputing retention under the approved rules');
      const moved = await changeOrRecordRefusal(
        jurisdiction,
        { kind: 'retention.rules-changed', changeId, at: new Date().toISOString() },
        (message) => ({ action: 'change.applied', outcome: 'failure', reason: message, targets, details: summary }),
        auth.principal,
      );
      const changes = moved.changes ?? [];
      await locks.applyObjectLockActivity({ jurisdiction, changes, now: new Date().toISOString() });
      for (const c of changes) {
        applied.push({
          action: 'retention.changed',
          outcome: 'success',
          targets: { datasetId: c.datasetId, requestId: auth.requestId },
          details: { rule: c.rule, until: c.until, lockedUntil: c.lockedUntil, objectLock: c.objectLock },
        });
      }
    }
    await recordAudit(jurisdiction, auth.principal, [
      { action: 'change.applied', outcome: 'success', targets, reason: params.reason, details: summary },
      ...applied,
    ]);
    await save({ state: 'awaiting-baseline' });
    showRunning();
    setPhase('recording the baseline the change makes');
    const inventory = await takeInventory(jurisdiction);
    const draft = await qualification.prepareBaselineActivity({ inventory, recordedAt: new Date().toISOString() });
    const signed = await awaitQaSignature(auth, draft, targets);
    if (signed.signed) await save({ state: 'applied', baseline: signed.version });
    else
      await save({
        problems: [`the new baseline ${draft.version} was not signed: QA records one with steward baseline record`],
      });
    return record;
  });
}
