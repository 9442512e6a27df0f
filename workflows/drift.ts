import {
  allHandlersFinished,
  condition,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  startChild,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { z } from 'zod';
import type { createQualificationActivities } from '../activities/qualification';
import type { createScheduleActivities } from '../activities/schedule';
import {
  deviationDecisionUpdate,
  deviationStatusQuery,
  deviationWorkflowId,
  ErrorType,
  ingestTaskQueue,
  nonRetryable,
  RequestKind,
  SEARCH_ATTRIBUTES,
} from '../contracts';
import type { Principal } from '../schemas/common';
import { InternalMessageSchema } from '../schemas/message';
import {
  DeviationDecisionParamsSchema,
  DriftCheckParamsSchema,
  DriftFindingSchema,
  QaSignInputSchema,
  type DeviationRecord,
  type DriftResult,
} from '../schemas/qualification';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize, authorizeDecision } from './authorize';
import { openMessages, sealMessage, workerJurisdiction } from './messages';
import { setPhase } from './progress';
import { takeInventory } from './qualify';

const qualification = proxyActivities<ReturnType<typeof createQualificationActivities>>({
  startToCloseTimeout: '5 minutes',
  // Reads the baseline and writes the deviation's record (the same key each time): retried through short outages.
  retry: { maximumAttempts: 10, initialInterval: '2s', maximumInterval: '30s' },
});

const schedules = proxyActivities<ReturnType<typeof createScheduleActivities>>({
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/** What a drift check hands the deviation it opens, sealed by its worker for that deviation only. */
const DeviationOpeningSchema = z.object({
  finding: DriftFindingSchema,
  detectedBy: z.string(),
  baseline: z.number().int().nullable(),
});

export type DriftCheckInput = SignedWorkflowInput | { scheduled: { jurisdiction: string } };

/**
 * Compares the live installation with the baseline in force (the installation inventory of `steward qualify`, the
 * policy files each worker loaded included) and opens a deviation for each difference not already open. Started by
 * the jurisdiction's drift schedule (checked against Temporal's record of the schedule's actions), or by a signed
 * request (`drift.check`: QA or ops).
 */
export async function driftCheckWorkflow(raw: DriftCheckInput): Promise<DriftResult> {
  let jurisdiction: string;
  let principal: Principal | null;
  if ('scheduled' in raw) {
    const verdict = await schedules.verifyScheduledRunActivity({
      jurisdiction: raw.scheduled.jurisdiction,
      schedule: 'drift',
    });
    if (!verdict.ok) {
      const reason = `scheduled drift check refused: ${verdict.reason}`;
      await recordAudit(verdict.jurisdiction, null, [
        { action: 'request.denied', outcome: 'denied', reason, details: { requested: 'drift.check' } },
      ]);
      throw nonRetryable(ErrorType.AccessDenied, reason);
    }
    jurisdiction = verdict.jurisdiction;
    principal = null;
  } else {
    const auth = await authorize(raw, 'drift.check', DriftCheckParamsSchema);
    jurisdiction = auth.jurisdiction;
    principal = auth.principal;
  }
  setPhase('taking the installation inventory');
  const inventory = await takeInventory(jurisdiction);
  setPhase('comparing the installation with the baseline in force');
  const { baseline, findings } = await qualification.driftFindingsActivity({ inventory });
  const opened: string[] = [];
  const alreadyOpen: string[] = [];
  const { workflowId, runId } = workflowInfo();
  for (const { key, ...finding } of findings) {
    const deviationId = deviationWorkflowId(jurisdiction, key);
    const opening = await sealMessage('deviation.open', jurisdiction, deviationId, `${runId}/${key}`, {
      finding,
      detectedBy: workflowId,
      baseline,
    });
    try {
      await startChild(deviationWorkflow, {
        workflowId: deviationId,
        taskQueue: ingestTaskQueue(jurisdiction),
        args: [opening],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction },
          { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.Deviation },
          { key: SEARCH_ATTRIBUTES.requestState, value: 'open' },
        ],
      });
      opened.push(deviationId);
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      alreadyOpen.push(deviationId);
    }
  }
  await recordAudit(jurisdiction, principal, [
    {
      action: 'drift.checked',
      outcome: findings.length === 0 ? 'success' : 'failure',
      reason:
        baseline === null
          ? 'no approved baseline to compare with'
          : `${findings.length} difference(s) from baseline ${baseline}`,
      details: { baseline: baseline ?? 'none', findings: findings.length, opened: opened.length },
    },
  ]);
  return {
    jurisdiction,
    baseline,
    findings: findings.map(({ key: _key, ...f }) => f),
    opened,
    alreadyOpen,
  };
}

/**
 * A deviation from the configuration baseline: open → investigated → closed, each step QA's e-signed decision, its
 * record kept in the catalog bucket and each step audited. Opened only by a drift check of the jurisdiction (its sealed
 * opening, meant for this deviation); while a high-risk one is not closed, preprocessing in the jurisdiction is
 * refused.
 */
export async function deviationWorkflow(raw: unknown): Promise<DeviationRecord> {
  const jurisdiction = await workerJurisdiction();
  const { workflowId } = workflowInfo();
  const [verdict] = await openMessages('deviation.open', [raw]);
  const parsed = InternalMessageSchema.safeParse(raw);
  const opening = parsed.success ? DeviationOpeningSchema.safeParse(parsed.data.body) : undefined;
  if (!verdict!.ok || !opening?.success) {
    const reason = `a deviation is opened only by a drift check of ${jurisdiction}: ${verdict!.ok ? 'its opening is not a finding' : verdict!.reason}`;
    await recordAudit(jurisdiction, null, [
      { action: 'request.denied', outcome: 'denied', reason, details: { requested: 'deviation.open' } },
    ]);
    throw nonRetryable(ErrorType.MessageRefused, reason);
  }
  const record: DeviationRecord = {
    format: 'steward-deviation/1',
    deviationId: workflowId,
    jurisdiction,
    state: 'open',
    finding: opening.data.finding,
    detectedAt: new Date().toISOString(),
    detectedBy: opening.data.detectedBy,
    baseline: opening.data.baseline,
    investigation: null,
    closure: null,
  };
  const targets = { requestId: workflowId };
  const publish = () => upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.requestState, value: record.state }]);
  await qualification.writeDeviationRecordActivity(record);
  await recordAudit(jurisdiction, null, [
    {
      action: 'deviation.opened',
      outcome: 'failure',
      targets,
      reason: `${record.finding.check}: ${record.finding.text}`.slice(0, 1000),
      details: {
        risk: record.finding.risk,
        requirements: record.finding.requirements.join(','),
        by: record.detectedBy,
      },
    },
  ]);
  setHandler(deviationStatusQuery, () => record);
  let deciding = false;
  setHandler(
    deviationDecisionUpdate,
    async (input) => {
      if (deciding) throw nonRetryable(ErrorType.RequestConflict, `${workflowId} is taking another decision`);
      deciding = true;
      try {
        const { request } = QaSignInputSchema.parse(input);
        const d = await authorizeDecision(request, 'deviation.decide', DeviationDecisionParamsSchema, targets);
        const step = d.params;
        if (step.step === 'investigate' && record.state !== 'open') {
          throw nonRetryable(
            ErrorType.RequestConflict,
            `${workflowId} is ${record.state}: only an open one is investigated`,
          );
        }
        if (step.step === 'close' && record.state !== 'investigated') {
          throw nonRetryable(
            ErrorType.RequestConflict,
            `${workflowId} is ${record.state}: it is closed once investigated (steward deviations investigate)`,
          );
        }
        const next: DeviationRecord =
          step.step === 'investigate'
            ? { ...record, state: 'investigated', investigation: { notes: step.notes, eSignature: d.eSignature } }
            : {
                ...record,
                state: 'closed',
                closure: { disposition: step.disposition, notes: step.notes, eSignature: d.eSignature },
              };
        await qualification.writeDeviationRecordActivity(next);
        Object.assign(record, next);
        publish();
        await recordAudit(jurisdiction, d.principal, [
          step.step === 'investigate'
            ? { action: 'deviation.investigated', outcome: 'success', targets, reason: d.eSignature.meaning }
            : {
                action: 'deviation.closed',
                outcome: 'success',
                targets,
                reason: d.eSignature.meaning,
                details: { disposition: step.disposition },
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
  setPhase(`open: ${record.finding.check}`);
  await condition(() => record.state === 'closed');
  await condition(allHandlersFinished);
  return record;
}
