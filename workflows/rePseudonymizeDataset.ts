import { proxyActivities } from '@temporalio/workflow';
import type { createRePseudonymizeActivities, RePseudonymizeResult } from '../activities/repseudonymize';
import type { Principal } from '../schemas/common';
import { requireRole } from './authorize';

const { rePseudonymizeDatasetActivity } = proxyActivities<ReturnType<typeof createRePseudonymizeActivities>>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  // Storage or worker failures are retried and the activity resumes at the first table not yet migrated.
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    nonRetryableErrorTypes: ['VaultEntryMissing', 'DatasetNotFound'],
  },
});

export interface RePseudonymizeDatasetInput {
  datasetId: string;
  requestedBy: Principal;
}

/** Migrates a dataset's tokens to its study's current key version (new object versions; old versions deleted). */
export async function rePseudonymizeDatasetWorkflow(input: RePseudonymizeDatasetInput): Promise<RePseudonymizeResult> {
  requireRole(input.requestedBy, 'datasets.repseudonymize');
  return rePseudonymizeDatasetActivity({ datasetId: input.datasetId, at: new Date().toISOString() });
}
