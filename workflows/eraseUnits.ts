import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  executeChild,
  proxyActivities,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAuditActivities } from '../activities/audit';
import type { createErasureActivities } from '../activities/erasure';
import type { createKeyActivities } from '../activities/keys';
import { ErrorType, ingestTaskQueue, nonRetryable, SEARCH_ATTRIBUTES } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { mintCertificateIds } from '../lib/erasure/ids';
import {
  ErasureOperationSchema,
  type ErasedVersion,
  type ErasureOperation,
  type ErasureOperationInput,
  type ErasureResult,
  type ErasureUnit,
  type IssueErasureCertificatesInput,
} from '../schemas/erasure';
import { InternalMessageSchema } from '../schemas/message';
import { recordAudit, type AuditDraft } from './audit';
import { changeCatalog } from './catalog';
import { openMessages, sealMessage, workerJurisdiction } from './messages';
import { setPhase } from './progress';

const storage = proxyActivities<ReturnType<typeof createErasureActivities>>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  // Journaled and verified, so a retry finishes what an attempt started; storage outages are waited out for hours.
  retry: { maximumAttempts: 100, initialInterval: '5s', maximumInterval: '5 minutes' },
});

const evidence = proxyActivities<ReturnType<typeof createAuditActivities> & ReturnType<typeof createErasureActivities>>(
  {
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    // Waits for the audit trail to seal the events (about a second), and rides out storage hiccups.
    retry: { maximumAttempts: 60, initialInterval: '1s', maximumInterval: '30s' },
  },
);

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  // Local key-store operations: a few quick retries cover a busy disk; a wrong version or a current key stays so.
  retry: {
    maximumAttempts: 5,
    initialInterval: '1s',
    nonRetryableErrorTypes: [ErrorType.KeyUnavailable, ErrorType.KeyInUse],
  },
});

/**
 * Runs one erasure operation as a child of the calling workflow and returns what it erased. The operation is sealed
 * for the child by this workflow's worker, so nothing but a Steward workflow can start one; once started it runs to
 * its certificates, whatever happens to its parent (cancelled, terminated).
 */
export async function eraseUnits(
  name: string,
  operation: Omit<ErasureOperationInput, 'operationId'>,
): Promise<ErasureResult> {
  // The child's id names the operation (and its journal): the parent's id and the operation's name in it.
  const workflowId = `${workflowInfo().workflowId}/erase/${name}`;
  const sealed = await sealMessage(
    'erasure.operation',
    operation.jurisdiction,
    workflowId,
    `${workflowId}/operation`,
    ErasureOperationSchema.parse({ ...operation, operationId: workflowId }),
  );
  return CancellationScope.nonCancellable(() =>
    executeChild(eraseUnitsWorkflow, {
      workflowId,
      taskQueue: ingestTaskQueue(operation.jurisdiction),
      args: [sealed],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      // Found in the Temporal UI beside the workflow that decided it: by jurisdiction, and by its signed request.
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.jurisdiction, value: operation.jurisdiction },
        ...(operation.requestId ? [{ key: SEARCH_ATTRIBUTES.requestId, value: operation.requestId }] : []),
      ],
    }),
  );
}

/** The operation this run was started with, when its parent sealed it for this run; refused (and audited) otherwise. */
async function openOperation(raw: unknown): Promise<ErasureOperation> {
  const { parent, workflowId, attempt, cronSchedule } = workflowInfo();
  const [verdict] = await openMessages('erasure.operation', [raw]);
  const message = InternalMessageSchema.safeParse(raw);
  const operation = message.success ? ErasureOperationSchema.safeParse(message.data.body) : undefined;
  let problem: string | undefined;
  if (!verdict!.ok) problem = verdict!.reason;
  else if (!parent || attempt > 1 || cronSchedule)
    problem = 'an erasure is started only by the Steward workflow that decided it';
  else if (
    !message.success ||
    message.data.from.workflowId !== parent.workflowId ||
    message.data.from.runId !== parent.runId
  )
    problem = 'the operation was sealed by another workflow than this erasure’s parent';
  else if (!operation?.success) problem = 'the operation does not have the shape of an erasure operation';
  if (problem || !operation?.success) {
    const jurisdiction = await workerJurisdiction();
    const reason = `erasure refused: ${problem ?? 'malformed operation'}`;
    await recordAudit(jurisdiction, null, [
      { action: 'request.denied', outcome: 'denied', reason, details: { requested: 'erasure', workflowId } },
    ]);
    throw nonRetryable(ErrorType.AccessDenied, reason);
  }
  return operation.data;
}

type UnitState = {
  unit: ErasureUnit;
  certificateId: string;
  versions: number;
  bytes: number;
  verified: boolean;
  failed?: { reason: string; errorType?: string };
  vault?: { versions: ErasedVersion[]; verification: string; verified: boolean };
  key?: { keyId: string; version: number; verification: string[]; verified: boolean };
};

/**
 * One erasure operation: deletes every version of each unit's objects (journaled, absence verified), removes its
 * vault entries (a dataset's shard) through the study vault's writer, destroys its key versions, records each unit in the audit trail,
 * and issues one signed certificate per unit citing its sealed audit event. A unit that fails is audited as failed
 * and gets no certificate; the others go on.
 */
export async function eraseUnitsWorkflow(raw: unknown): Promise<ErasureResult> {
  const op = await openOperation(raw);
  const { jurisdiction, operationId } = op;
  const rules = getJurisdiction(jurisdiction);
  const { workflowId, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  // Certified before (this run was reset, or its parent ran the operation again): the same result, nothing redone.
  const earlier = await storage.erasureResultActivity({ jurisdiction, operationId });
  if (earlier) return earlier;
  const ids = mintCertificateIds(jurisdiction, op.units.length, op.bundled, uuid4);
  const units: UnitState[] = op.units.map((unit, i) => ({
    unit,
    certificateId: ids[i]!,
    versions: 0,
    bytes: 0,
    verified: true,
  }));
  const fail = (u: UnitState, reason: string, errorType?: string) => {
    u.failed ??= { reason, ...(errorType ? { errorType } : {}) };
  };

  setPhase('deleting object versions');
  const withObjects = units.filter((u) => u.unit.objects || u.unit.dataset);
  if (withObjects.length > 0) {
    const erased = await storage.eraseObjectsActivity({
      jurisdiction,
      operationId,
      units: withObjects.map((u) => ({
        unitId: u.unit.unitId,
        ...(u.unit.dataset ? { dataset: u.unit.dataset } : {}),
        ...(u.unit.objects ? { objects: u.unit.objects } : {}),
      })),
    });
    const done = new Map(erased.erased.map((e) => [e.unitId, e]));
    const refused = new Map(erased.failed.map((f) => [f.unitId, f.reason]));
    for (const u of withObjects) {
      const e = done.get(u.unit.unitId);
      if (e) Object.assign(u, { versions: e.versions, bytes: e.bytes, verified: e.verified });
      else fail(u, refused.get(u.unit.unitId) ?? 'the deletion reported nothing of this unit');
    }
  }

  setPhase('removing vault entries');
  // A whole dataset takes its vault shard with it.
  const vaultOf = (u: UnitState) =>
    u.unit.vault ??
    (u.unit.dataset ? { studyId: u.unit.dataset.studyId, datasetIds: [u.unit.dataset.datasetId] } : undefined);
  const byStudy = new Map<string, UnitState[]>();
  for (const u of units) {
    const vault = vaultOf(u);
    if (vault && !u.failed) byStudy.set(vault.studyId, [...(byStudy.get(vault.studyId) ?? []), u]);
  }
  await Promise.all(
    [...byStudy].map(async ([studyId, owners]) => {
      const datasetIds = owners.flatMap((u) => vaultOf(u)!.datasetIds);
      const removed = await changeCatalog(jurisdiction, { kind: 'vault.shards-removed', studyId, datasetIds });
      for (const u of owners) {
        const mine = (removed.removed ?? []).filter((r) => vaultOf(u)!.datasetIds.includes(r.datasetId));
        const versions = mine.flatMap((r) =>
          r.versions.map((v) => ({
            bucket: rules.buckets.catalog,
            key: v.key,
            versionId: v.versionId,
            bytes: v.bytes,
            sha256: v.sha256,
            deleteMarker: false,
          })),
        );
        if (mine.length === 0) continue;
        const remaining = mine.reduce((sum, r) => sum + r.remaining, 0);
        u.vault = {
          versions,
          verification: `ListObjectVersions of the vault shard: ${remaining} versions remain`,
          verified: remaining === 0,
        };
        u.versions += versions.length;
        u.bytes += versions.reduce((sum, v) => sum + v.bytes, 0);
        u.verified &&= u.vault.verified;
      }
    }),
  );

  setPhase('destroying key versions');
  for (const u of units) {
    if (!u.unit.keyVersion || u.failed) continue;
    try {
      const destroyed = await keys.destroyStudyKeyActivity({ jurisdiction, ...u.unit.keyVersion });
      u.key = {
        keyId: destroyed.keyId,
        version: u.unit.keyVersion.version,
        verification: destroyed.verification,
        verified: destroyed.verified,
      };
      u.verified &&= destroyed.verified;
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      if (!(cause instanceof ApplicationFailure) || !cause.nonRetryable) throw error;
      fail(u, cause.message, cause.type ?? undefined);
    }
  }
  const completedAt = new Date().toISOString();

  setPhase('recording the erasure');
  const common = { ...op.details, operationId };
  const targetsOf = (u: UnitState) => ({
    ...(op.requestId ? { requestId: op.requestId } : {}),
    ...u.unit.targets,
    ...(u.key ? { keyIds: [u.key.keyId] } : {}),
  });
  const failures = units.filter((u) => u.failed);
  const erased = units.filter((u) => !u.failed);
  await audit(
    failures.map((u) => ({
      action: u.unit.event,
      outcome: 'failure' as const,
      reason: u.failed!.reason,
      targets: targetsOf(u),
      details: common,
    })),
  );
  const events = await audit(
    erased.map((u) => ({
      action: u.unit.event,
      outcome: u.verified ? ('success' as const) : ('failure' as const),
      reason: u.unit.note,
      targets: { ...targetsOf(u), certificateId: u.certificateId },
      details: {
        ...common,
        ...u.unit.details,
        ...(u.key ? { version: u.key.version } : {}),
        versions: u.versions,
        bytes: u.bytes,
        verified: u.verified,
      },
    })),
  );

  let stored: ErasureResult['stored'] = null;
  if (erased.length > 0) {
    setPhase('issuing the deletion certificates');
    const refs = await evidence.locateAuditEventsActivity({ jurisdiction, eventIds: events.map((e) => e.id) });
    const certificates: IssueErasureCertificatesInput['certificates'] = erased.map((u, i) => ({
      unitId: u.unit.unitId,
      certificateId: u.certificateId,
      reason: u.unit.reason,
      auditChain: refs[i]!,
      ...(u.unit.targets.datasetId ? { datasetId: u.unit.targets.datasetId } : {}),
      objects: u.unit.objects !== undefined || u.unit.dataset !== undefined,
      ...(u.vault ? { vault: u.vault } : {}),
      ...(u.key ? { key: u.key } : {}),
      ...(u.unit.subjectRequest ? { subjectRequest: u.unit.subjectRequest } : {}),
    }));
    const issued = await evidence.issueErasureCertificatesActivity({
      jurisdiction,
      operationId,
      label: op.label,
      bundled: op.bundled,
      requestedBy: op.requestedBy,
      approvedBy: op.approvedBy,
      workflow: { workflowId, runId },
      startedAt,
      completedAt,
      now: new Date().toISOString(),
      certificates,
    });
    stored = { bucket: issued[0]!.bucket, key: issued[0]!.jsonKey, sha256: issued[0]!.sha256 };
    if (op.bundled) {
      // Certificates stored together: one event for the bundle (each erasure event names its own certificate).
      await audit([
        {
          action: 'certificate.issued',
          outcome: 'success',
          targets: {
            ...(op.requestId ? { requestId: op.requestId } : {}),
            objects: [{ bucket: issued[0]!.bucket, key: issued[0]!.jsonKey }],
          },
          details: {
            ...common,
            certificates: issued.length,
            certificateIds: issued.map((c) => c.certificateId).join(' '),
          },
        },
      ]);
    } else {
      await audit(
        issued.map((c, i) => ({
          action: 'certificate.issued' as const,
          outcome: 'success' as const,
          targets: {
            ...targetsOf(erased[i]!),
            certificateId: c.certificateId,
            objects: [
              { bucket: c.bucket, key: c.jsonKey, sha256: c.sha256 },
              { bucket: c.bucket, key: c.signatureKey },
            ],
          },
          details: common,
        })),
      );
    }
  }
  const result: ErasureResult = {
    operationId,
    erased: erased.map((u) => ({
      unitId: u.unit.unitId,
      certificateId: u.certificateId,
      versions: u.versions,
      bytes: u.bytes,
      verified: u.verified,
      keyIds: u.key ? [u.key.keyId] : [],
    })),
    failed: failures.map((u) => ({ unitId: u.unit.unitId, ...u.failed! })),
    stored,
  };
  await storage.recordErasureResultActivity({ jurisdiction, result });
  return result;

  function audit(drafts: AuditDraft[]) {
    return drafts.length > 0 ? recordAudit(jurisdiction, op.principal, drafts) : Promise.resolve([]);
  }
}
