import { proxyActivities } from '@temporalio/workflow';
import type { createVaultActivities } from '../activities/vault';
import type { SignedWorkflowInput } from '../schemas/request';
import { ReidentifyParamsSchema, type ReidentifyResult } from '../schemas/vault';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

const vault = proxyActivities<ReturnType<typeof createVaultActivities>>({
  startToCloseTimeout: '2 minutes',
  // Vault reads: transient storage errors clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/**
 * Resolves a token to the original identifier from the study's re-identification vault: dpo role only. The identifier
 * is sealed to the requester's certificate, so only that person can read it (not ops through the codec, not a replay).
 * Every attempt, refused or not, and whether an identifier was disclosed, is in the jurisdiction's audit trail.
 */
export async function reidentifyWorkflow(raw: SignedWorkflowInput): Promise<ReidentifyResult> {
  const auth = await authorize(raw, 'reidentify', ReidentifyParamsSchema);
  const { studyId, token, reason } = auth.params;
  setPhase('looking up the vault');
  const result = await vault.reidentifyActivity({ studyId, token, recipientCertificate: auth.certificatePem });
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: 'subject.reidentified',
      outcome: result.found ? 'success' : 'failure',
      reason,
      targets: { studyId, requestId: auth.requestId, subjectTokens: [token] },
      details: { disclosed: result.found },
    },
  ]);
  return result;
}
