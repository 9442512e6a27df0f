import { proxyActivities } from '@temporalio/workflow';
import type { createKeyActivities } from '../activities/keys';
import { ErrorType, nonRetryable } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { DestroyStudyKeyParamsSchema, type DestroyStudyKeyResult } from '../schemas/keys';
import type { SignedWorkflowInput } from '../schemas/request';
import { authorize } from './authorize';
import { eraseUnits } from './eraseUnits';
import { setPhase } from './progress';

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/**
 * Destroys a retired version of a study's key on the DPO's e-signed request (cryptographic erase): an erasure of one
 * unit, the key version, which records it in the audit trail and issues a signed deletion certificate citing the
 * sealed audit event.
 */
export async function destroyStudyKeyWorkflow(raw: SignedWorkflowInput): Promise<DestroyStudyKeyResult> {
  const auth = await authorize(raw, 'keys.destroy', DestroyStudyKeyParamsSchema);
  const { studyId, version } = auth.params;
  const jurisdiction = auth.jurisdiction;
  const keyId = `study/${jurisdiction}/${studyId}/v${version}`;
  setPhase('destroying the key version');
  const result = await eraseUnits('key', {
    jurisdiction,
    label: `key destruction ${auth.requestId}`,
    bundled: false,
    principal: auth.principal,
    requestedBy: auth.eSignature,
    approvedBy: [auth.eSignature],
    requestId: auth.requestId ?? null,
    details: {},
    units: [
      {
        unitId: keyId,
        event: 'key.destroyed',
        targets: { studyId },
        reason: {
          kind: 'key-destruction',
          legalBasis: getJurisdiction(jurisdiction).law.join('; '),
          detail: `cryptographic erase of ${keyId}, a retired pseudonymization key of study ${studyId}`,
        },
        note: auth.body.meaning ?? auth.eSignature.meaning,
        keyVersion: { studyId, version },
      },
    ],
  });
  const failed = result.failed[0];
  if (failed)
    throw nonRetryable((failed.errorType as ErrorType | undefined) ?? ErrorType.KeyUnavailable, failed.reason);
  const erased = result.erased[0]!;
  return {
    jurisdiction,
    studyId,
    version,
    keyId: erased.keyIds[0] ?? keyId,
    certificateId: erased.certificateId,
    versions: await keys.studyKeyVersionsActivity({ jurisdiction, studyId }),
  };
}
