import { proxyActivities } from '@temporalio/workflow';
import type { createSubjectRightsActivities } from '../activities/subject-rights';
import { curationTaskQueue } from '../contracts';
import type { SignedWorkflowInput } from '../schemas/request';
import { SubjectIndexParamsSchema, type SubjectIndexResult } from '../schemas/subject-request';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { setPhase } from './progress';

type Operation = SubjectIndexResult['operation'];

/**
 * `steward dsr index verify|rebuild`: the jurisdiction's subject index compared with a full scan of every table
 * (reads only; dpo or auditor), or deleted and built again from every table (dpo or ops). Both read everything, on the
 * curation queue, and are audited with what they found.
 */
async function indexWork(raw: SignedWorkflowInput, operation: Operation): Promise<SubjectIndexResult> {
  const auth = await authorize(
    raw,
    operation === 'rebuild' ? 'dsr.index-rebuild' : 'dsr.index-verify',
    SubjectIndexParamsSchema,
  );
  const heavy = proxyActivities<ReturnType<typeof createSubjectRightsActivities>>({
    startToCloseTimeout: '6 hours',
    heartbeatTimeout: '2 minutes',
    // Storage outages clear within a few tries; a run that keeps failing is reported, and can be asked for again.
    retry: { maximumAttempts: 3, initialInterval: '5s' },
    taskQueue: curationTaskQueue(auth.jurisdiction),
  });
  let result: SubjectIndexResult;
  if (operation === 'rebuild') {
    setPhase('rebuilding the subject index from every table');
    const built = await heavy.rebuildSubjectIndexActivity();
    result = { operation, datasets: built.indexed, tokens: built.tokens, objects: built.cost.objects, problems: [] };
  } else {
    setPhase('comparing the subject index with a full scan');
    const verified = await heavy.verifySubjectIndexActivity();
    result = {
      operation,
      datasets: 0,
      tokens: verified.postings,
      objects: verified.objects,
      problems: verified.problems,
    };
  }
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: operation === 'rebuild' ? 'dsr.index-rebuilt' : 'dsr.index-verified',
      outcome: result.problems.length === 0 ? 'success' : 'failure',
      reason: auth.params.reason,
      targets: { requestId: auth.requestId },
      details: {
        objects: result.objects,
        postings: result.tokens,
        problems: result.problems.length,
        ...(result.problems.length > 0 ? { firstProblem: result.problems[0]! } : {}),
      },
    },
  ]);
  return result;
}

/** `steward dsr index verify` (see `indexWork`). */
export async function verifySubjectIndexWorkflow(raw: SignedWorkflowInput): Promise<SubjectIndexResult> {
  return indexWork(raw, 'verify');
}

/** `steward dsr index rebuild` (see `indexWork`). */
export async function rebuildSubjectIndexWorkflow(raw: SignedWorkflowInput): Promise<SubjectIndexResult> {
  return indexWork(raw, 'rebuild');
}
