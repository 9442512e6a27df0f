import { proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { createAuditActivities } from '../activities/audit';
import type { createEvidenceActivities } from '../activities/evidence';
import type { createKeyActivities } from '../activities/keys';
import { ErrorType } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { DestroyStudyKeyParamsSchema, type DestroyStudyKeyResult } from '../schemas/keys';
import type { SignedWorkflowInput } from '../schemas/request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const keys = proxyActivities<ReturnType<typeof createKeyActivities>>({
  startToCloseTimeout: '1 minute',
  // Local key-store operations: a few quick retries cover a busy disk; a wrong version or a current key stays so.
  retry: {
    maximumAttempts: 5,
    initialInterval: '1s',
    nonRetryableErrorTypes: [ErrorType.KeyUnavailable, ErrorType.KeyInUse],
  },
});

const evidence = proxyActivities<
  ReturnType<typeof createAuditActivities> & ReturnType<typeof createEvidenceActivities>
>({
  startToCloseTimeout: '1 minute',
  // Waits for the audit trail to seal the event (about a second), and rides out storage hiccups while storing the
  // certificate; gives up after about five minutes.
  retry: { maximumAttempts: 30, initialInterval: '1s', maximumInterval: '15s' },
});

/**
 * Destroys a retired version of a study's key on the DPO's e-signed request (cryptographic erase), records it in the
 * audit trail, and issues a signed deletion certificate citing the sealed audit event.
 */
export async function destroyStudyKeyWorkflow(raw: SignedWorkflowInput): Promise<DestroyStudyKeyResult> {
  const auth = await authorize(raw, 'keys.destroy', DestroyStudyKeyParamsSchema);
  const { studyId, version } = auth.params;
  const jurisdiction = auth.jurisdiction;
  const { workflowId, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const certificateId = `cert-${jurisdiction}-${uuid4().replaceAll('-', '')}`;
  setPhase('destroying the key version');
  const destroyed = await keys.destroyStudyKeyActivity({ jurisdiction, studyId, version });
  const completedAt = new Date().toISOString();
  const [event] = await recordAudit(jurisdiction, auth.principal, [
    {
      action: 'key.destroyed',
      outcome: destroyed.verified ? 'success' : 'failure',
      reason: auth.body.meaning,
      targets: { studyId, requestId: auth.requestId, keyIds: [destroyed.keyId], certificateId },
      details: { version, verified: destroyed.verified },
    },
  ]);
  setPhase('issuing the deletion certificate');
  const auditChain = await evidence.locateAuditEventActivity({ jurisdiction, eventId: event!.id });
  const issued = await evidence.issueDeletionCertificateActivity({
    certificateId,
    jurisdiction,
    reason: {
      kind: 'key-destruction',
      legalBasis: getJurisdiction(jurisdiction).law.join('; '),
      detail: `cryptographic erase of ${destroyed.keyId}, a retired pseudonymization key of study ${studyId}`,
    },
    requestedBy: auth.eSignature,
    approvedBy: [auth.eSignature],
    sanitized: { objects: [], keys: [{ keyId: destroyed.keyId, version }] },
    method: {
      category: 'Purge',
      techniques: ['cryptographic erase: the sealed key material is discarded from the key store'],
      keyIdsDestroyed: [destroyed.keyId],
    },
    verification: {
      performed: ['key store state read back', 'load of the destroyed version attempted', 'live versions listed'],
      result: destroyed.verified ? 'passed' : 'failed',
      details: destroyed.verification,
    },
    startedAt,
    completedAt,
    workflow: { workflowId, runId },
    auditChain,
  });
  await recordAudit(jurisdiction, auth.principal, [
    {
      action: 'certificate.issued',
      outcome: 'success',
      targets: {
        studyId,
        requestId: auth.requestId,
        certificateId,
        objects: [
          { bucket: issued.bucket, key: issued.jsonKey, sha256: issued.sha256 },
          { bucket: issued.bucket, key: issued.signatureKey },
        ],
      },
    },
  ]);
  return { jurisdiction, studyId, version, keyId: destroyed.keyId, certificateId, versions: destroyed.versions };
}
