import { proxyActivities } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import type { createRePseudonymizeActivities } from '../activities/repseudonymize';
import { curationTaskQueue, ErrorType, jurisdictionOfDatasetId, nonRetryable } from '../contracts';
import type { SignedWorkflowInput } from '../schemas/request';
import { RePseudonymizeParamsSchema, type RePseudonymizeResult } from '../schemas/vault';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';
import { changeCatalog } from './catalog';

const migrationOptions: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  // Storage or worker failures are retried and the activity resumes at the first table not yet migrated.
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    nonRetryableErrorTypes: [ErrorType.VaultEntryMissing, ErrorType.DatasetNotFound, ErrorType.KeyUnavailable],
  },
};

/**
 * Migrates a dataset's tokens to its study's current key version (new object versions; old versions deleted), then
 * has the dataset record's single writer record the new outputs.
 */
export async function rePseudonymizeDatasetWorkflow(raw: SignedWorkflowInput): Promise<RePseudonymizeResult> {
  const auth = await authorize(raw, 'datasets.repseudonymize', RePseudonymizeParamsSchema);
  const { datasetId } = auth.params;
  if (jurisdictionOfDatasetId(datasetId) !== auth.jurisdiction) {
    throw nonRetryable(ErrorType.JurisdictionViolation, `dataset ${datasetId} is not in ${auth.jurisdiction}`);
  }
  const { rePseudonymizeDatasetActivity } = proxyActivities<ReturnType<typeof createRePseudonymizeActivities>>({
    ...migrationOptions,
    taskQueue: curationTaskQueue(auth.jurisdiction),
  });
  const at = new Date().toISOString();
  setPhase('re-keying the dataset');
  const { outputs, deletedVersions, ...result } = await rePseudonymizeDatasetActivity({ datasetId, at });
  if (result.migrated) {
    await changeCatalog(auth.jurisdiction, {
      kind: 'dataset.outputs-replaced',
      datasetId,
      outputs,
      keyVersions: [result.toVersion],
      at,
    });
  }
  const targets = { datasetId, requestId: auth.requestId };
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: 'dataset.repseudonymized',
      outcome: 'success',
      targets,
      details: { ...result, fromVersions: result.fromVersions.join(',') },
    },
    ...(result.migrated ? outputs : []).map((o): AuditDraft => ({
      action: 'object.written',
      outcome: 'success',
      targets: { ...targets, objects: [{ bucket: o.bucket, key: o.key, versionId: o.versionId, sha256: o.sha256 }] },
    })),
    ...deletedVersions.map((v): AuditDraft => ({
      action: 'object.deleted',
      outcome: 'success',
      targets: { ...targets, objects: [v] },
    })),
  ]);
  return result;
}
