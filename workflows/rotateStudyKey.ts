import { proxyActivities } from '@temporalio/workflow';
import type { createKeyActivities, RotateStudyKeyResult } from '../activities/keys';
import type { Principal } from '../schemas/common';
import { requireRole } from './authorize';

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  // Local key-store operations: a few quick retries cover a busy disk.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

export interface RotateStudyKeyWorkflowInput {
  jurisdiction: string;
  studyId: string;
  requestedBy: Principal;
}

/** Makes a new key version current for a study; new ingestions use it, look-ups keep trying every live version. */
export async function rotateStudyKeyWorkflow(input: RotateStudyKeyWorkflowInput): Promise<RotateStudyKeyResult> {
  requireRole(input.requestedBy, 'keys.rotate');
  const fromVersion = await keys.currentStudyKeyVersionActivity(input);
  return keys.rotateStudyKeyActivity({ ...input, fromVersion });
}
