import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createVaultActivities } from '../activities/vault';
import { allowed } from '../lib/auth/roles';
import { parseInput } from '../schemas/parse';
import {
  ReidentifyInputSchema,
  type ReidentificationEvent,
  type ReidentifyInput,
  type ReidentifyResult,
} from '../schemas/vault';
import { requireRole } from './authorize';

const vault = proxyActivities<ReturnType<typeof createVaultActivities>>({
  startToCloseTimeout: '2 minutes',
  // Vault and evidence reads and writes: transient storage errors clear within a few tries.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

/**
 * Resolves a token to the original identifier from the study's re-identification vault: dpo role only, and every
 * request (allowed or denied) and its outcome is written to the jurisdiction's evidence bucket.
 */
export async function reidentifyWorkflow(raw: ReidentifyInput): Promise<ReidentifyResult> {
  const input = parseInput(ReidentifyInputSchema, raw, 'reidentifyWorkflow');
  const { workflowId, runId } = workflowInfo();
  let seq = 0;
  const audit = (outcome: ReidentificationEvent['outcome']) =>
    vault.recordAuditEventActivity({
      eventId: `${workflowId}-${runId}-${++seq}`,
      at: new Date().toISOString(),
      jurisdiction: input.jurisdiction,
      principal: input.requestedBy,
      action: 'reidentify',
      outcome,
      studyId: input.studyId,
      subjectToken: input.token,
      reason: input.reason,
      workflowId,
      runId,
    });
  if (!allowed(input.requestedBy, 'reidentify')) {
    await audit('denied');
    requireRole(input.requestedBy, 'reidentify');
  }
  await audit('requested');
  const result = await vault.reidentifyActivity({ studyId: input.studyId, token: input.token });
  await audit(result.found ? 'disclosed' : 'not-found');
  return result;
}
