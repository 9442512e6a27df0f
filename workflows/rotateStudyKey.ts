import { proxyActivities } from '@temporalio/workflow';
import type { createKeyActivities } from '../activities/keys';
import { ErrorType } from '../contracts';
import {
  RotateStudyKeyWorkflowInputSchema,
  type RotateStudyKeyResult,
  type RotateStudyKeyWorkflowInput,
} from '../schemas/keys';
import { parseInput } from '../schemas/parse';
import { requireRole } from './authorize';

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  // Local key-store operations: a few quick retries cover a busy disk; a missing or destroyed key stays so.
  retry: { maximumAttempts: 5, initialInterval: '1s', nonRetryableErrorTypes: [ErrorType.KeyUnavailable] },
});

/** Makes a new key version current for a study; new ingestions use it, look-ups keep trying every live version. */
export async function rotateStudyKeyWorkflow(raw: RotateStudyKeyWorkflowInput): Promise<RotateStudyKeyResult> {
  const input = parseInput(RotateStudyKeyWorkflowInputSchema, raw, 'rotateStudyKeyWorkflow');
  requireRole(input.requestedBy, 'keys.rotate');
  const ref = { jurisdiction: input.jurisdiction, studyId: input.studyId };
  const fromVersion = await keys.currentStudyKeyVersionActivity(ref);
  return keys.rotateStudyKeyActivity({ ...ref, fromVersion });
}
