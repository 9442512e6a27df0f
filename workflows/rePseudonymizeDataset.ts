import { proxyActivities } from '@temporalio/workflow';
import type { createRePseudonymizeActivities } from '../activities/repseudonymize';
import { ErrorType, jurisdictionOfDatasetId } from '../contracts';
import { parseInput } from '../schemas/parse';
import {
  RePseudonymizeDatasetInputSchema,
  type RePseudonymizeDatasetInput,
  type RePseudonymizeResult,
} from '../schemas/vault';
import { requireRole } from './authorize';
import { changeCatalog } from './catalog';

const { rePseudonymizeDatasetActivity } = proxyActivities<ReturnType<typeof createRePseudonymizeActivities>>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  // Storage or worker failures are retried and the activity resumes at the first table not yet migrated.
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    nonRetryableErrorTypes: [ErrorType.VaultEntryMissing, ErrorType.DatasetNotFound, ErrorType.KeyUnavailable],
  },
});

/**
 * Migrates a dataset's tokens to its study's current key version (new object versions; old versions deleted), then
 * has the dataset record's single writer record the new outputs.
 */
export async function rePseudonymizeDatasetWorkflow(raw: RePseudonymizeDatasetInput): Promise<RePseudonymizeResult> {
  const input = parseInput(RePseudonymizeDatasetInputSchema, raw, 'rePseudonymizeDatasetWorkflow');
  requireRole(input.requestedBy, 'datasets.repseudonymize');
  const at = new Date().toISOString();
  const { outputs, ...result } = await rePseudonymizeDatasetActivity({ datasetId: input.datasetId, at });
  if (result.migrated) {
    await changeCatalog(jurisdictionOfDatasetId(input.datasetId)!, {
      kind: 'dataset.outputs-replaced',
      datasetId: input.datasetId,
      outputs,
      keyVersions: [result.toVersion],
      at,
    });
  }
  return result;
}
