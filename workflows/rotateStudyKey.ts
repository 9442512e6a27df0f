import { proxyActivities } from '@temporalio/workflow';
import type { createKeyActivities } from '../activities/keys';
import { ErrorType } from '../contracts';
import { StudyKeyRefSchema, type RotateStudyKeyResult } from '../schemas/keys';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  // Local key-store operations: a few quick retries cover a busy disk; a missing or destroyed key stays so.
  retry: { maximumAttempts: 5, initialInterval: '1s', nonRetryableErrorTypes: [ErrorType.KeyUnavailable] },
});

/** Makes a new key version current for a study; new ingestions use it, look-ups keep trying every live version. */
export async function rotateStudyKeyWorkflow(raw: SignedWorkflowInput): Promise<RotateStudyKeyResult> {
  const auth = await authorize(raw, 'keys.rotate', StudyKeyRefSchema);
  const ref = { jurisdiction: auth.jurisdiction, studyId: auth.params.studyId };
  setPhase('rotating the study key');
  const fromVersion = await keys.currentStudyKeyVersionActivity(ref);
  const result = await keys.rotateStudyKeyActivity({ ...ref, fromVersion });
  const keyId = (v: number) => `study/${ref.jurisdiction}/${ref.studyId}/v${v}`;
  const targets = { studyId: ref.studyId, requestId: auth.requestId };
  await recordAudit(auth.jurisdiction, auth.principal, [
    ...(result.currentVersion > fromVersion
      ? [
          {
            action: 'key.created' as const,
            outcome: 'success' as const,
            targets: { ...targets, keyIds: [keyId(result.currentVersion)] },
          },
        ]
      : []),
    {
      action: 'key.rotated',
      outcome: 'success',
      targets: { ...targets, keyIds: [keyId(fromVersion), keyId(result.currentVersion)] },
      details: { from: fromVersion, to: result.currentVersion },
    },
  ]);
  return result;
}
