import { ApplicationFailure, CancellationScope, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { createRetentionActivities } from '../activities/retention';
import type { CatalogMutation, CatalogMutationResult } from '../schemas/catalog';
import type { LegalHold } from '../schemas/dataset';
import type { SignedWorkflowInput } from '../schemas/request';
import { HoldReleaseParamsSchema, HoldSetParamsSchema, type HoldResult, type HoldScope } from '../schemas/retention';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';
import { changeCatalog } from './catalog';

const storage = proxyActivities<ReturnType<typeof createRetentionActivities>>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  // Setting legal holds and retention dates is idempotent: retried through storage outages for about an hour.
  retry: { maximumAttempts: 60, initialInterval: '2s', maximumInterval: '1 minute' },
});

/*
 * A catalog change, once sent to the catalog's writer, is applied whatever the workflow that sent it does next. So each
 * workflow here (and the end of a trial, workflows/endTrial.ts) carries its change through to storage and the audit
 * trail in a non-cancellable scope: a cancel from the Temporal UI or the CLI after authorization waits for the end, and
 * never leaves a hold recorded but not applied in storage, or not audited.
 */

function scopeTargets(scope: HoldScope): { datasetId?: string; studyId?: string } {
  return 'datasetId' in scope ? { datasetId: scope.datasetId } : { studyId: scope.studyId };
}

/** Applies a catalog change; a refusal (a sweep at work, no such hold) is audited as a failure, then fails the workflow. */
export async function changeOrRecordRefusal(
  jurisdiction: string,
  mutation: CatalogMutation,
  refused: (message: string) => AuditDraft,
  principal: Parameters<typeof recordAudit>[1],
): Promise<CatalogMutationResult> {
  try {
    return await changeCatalog(jurisdiction, mutation);
  } catch (error) {
    if (error instanceof ApplicationFailure) {
      await recordAudit(jurisdiction, principal, [refused(error.message.replace(/^catalog change failed: /, ''))]);
    }
    throw error;
  }
}

/**
 * Puts a dataset or a whole study under legal hold (steward or DPO, e-signed): recorded in the catalog, set as S3 legal
 * hold on every version of the objects, and audited. Nothing Steward runs deletes held data.
 */
export async function setLegalHoldWorkflow(raw: SignedWorkflowInput): Promise<HoldResult> {
  const auth = await authorize(raw, 'hold.set', HoldSetParamsSchema);
  const { scope, reason } = auth.params;
  const jurisdiction = auth.jurisdiction;
  const hold: LegalHold = {
    holdId: `hold-${uuid4().replaceAll('-', '')}`,
    reason,
    setAt: new Date().toISOString(),
    setBy: auth.eSignature,
    releasedAt: null,
    releasedBy: null,
    releaseReason: null,
  };
  const targets = { ...scopeTargets(scope), requestId: auth.requestId };
  return CancellationScope.nonCancellable(async () => {
    setPhase('recording the hold');
    const set = await changeOrRecordRefusal(
      jurisdiction,
      { kind: 'hold.set', scope, hold },
      (message) => ({ action: 'legal-hold.set', outcome: 'failure', reason: message, targets, details: {} }),
      auth.principal,
    );
    const datasets = set.datasets ?? [];
    setPhase('setting S3 legal hold on every object version', { datasets: datasets.length });
    const { versions } = await storage.setLegalHoldActivity({ jurisdiction, datasetIds: datasets, on: true });
    await recordAudit(jurisdiction, auth.principal, [
      {
        action: 'legal-hold.set',
        outcome: 'success',
        reason,
        targets,
        details: { holdId: hold.holdId, datasets: datasets.length, versions },
      },
    ]);
    return { jurisdiction, action: 'set' as const, scope, holdId: hold.holdId, datasets, stillHeld: [], versions };
  });
}

/**
 * Releases a legal hold (steward or DPO, e-signed, with the reason): recorded beside the hold, S3 legal hold switched
 * off on the objects no other hold covers, and audited.
 */
export async function releaseLegalHoldWorkflow(raw: SignedWorkflowInput): Promise<HoldResult> {
  const auth = await authorize(raw, 'hold.release', HoldReleaseParamsSchema);
  const { scope, reason, holdId } = auth.params;
  const jurisdiction = auth.jurisdiction;
  const targets = { ...scopeTargets(scope), requestId: auth.requestId };
  return CancellationScope.nonCancellable(async () => {
    setPhase('releasing the hold');
    const released = await changeOrRecordRefusal(
      jurisdiction,
      {
        kind: 'hold.released',
        scope,
        ...(holdId ? { holdId } : {}),
        at: new Date().toISOString(),
        by: auth.eSignature,
        reason,
      },
      (message) => ({ action: 'legal-hold.released', outcome: 'failure', reason: message, targets, details: {} }),
      auth.principal,
    );
    const free = released.datasets ?? [];
    setPhase('switching off S3 legal hold where no other hold applies', { datasets: free.length });
    const { versions } = await storage.setLegalHoldActivity({ jurisdiction, datasetIds: free, on: false });
    await recordAudit(jurisdiction, auth.principal, [
      {
        action: 'legal-hold.released',
        outcome: 'success',
        reason,
        targets,
        details: {
          holdId: released.holdId ?? null,
          datasets: free.length,
          stillHeld: (released.stillHeld ?? []).length,
          versions,
        },
      },
    ]);
    return {
      jurisdiction,
      action: 'released' as const,
      scope,
      holdId: released.holdId ?? '',
      datasets: free,
      stillHeld: released.stillHeld ?? [],
      versions,
    };
  });
}
