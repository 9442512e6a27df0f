import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { createIdentityActivities } from '../activities/identity';
import { ErrorType, nonRetryable } from '../contracts';
import type { Action } from '../lib/auth/roles';
import type { Principal } from '../schemas/common';
import { parseInput } from '../contracts/parse';
import {
  RequestBodySchema,
  SignedWorkflowInputSchema,
  type ESignature,
  type RequestBody,
  type SignedRequest,
} from '../schemas/request';
import { recordAudit, type AuditDraft } from './audit';
import { changeCatalog } from './catalog';
import { setPhase } from './progress';

const { verifyRequestActivity } = proxyActivities<ReturnType<typeof createIdentityActivities>>({
  startToCloseTimeout: '30 seconds',
  // Reads the CA and CRL files only: a few quick retries cover a busy disk.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

export interface Authorized<P> {
  principal: Principal;
  params: P;
  requestId: string;
  jurisdiction: string;
  eSignature: ESignature;
  body: RequestBody;
  /** The requester's certificate, as verified: what a personal result is sealed to. */
  certificatePem: string;
}

function bodyOf(text: string): RequestBody | undefined {
  try {
    const parsed = RequestBodySchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A workflow's first step: verifies the signed request it was started with (signature, chain to the Steward CA,
 * validity, revocation, freshness, role for `action`), claims its request id for this run so the request cannot be
 * used twice (not by a reset, a re-start under the same id, a cron or a retry run), and parses its parameters. A
 * refusal is recorded in the jurisdiction's audit trail, then fails the workflow as non-retryable `AccessDenied`.
 */
export async function authorize<S extends z.ZodType>(
  raw: unknown,
  action: Action,
  paramsSchema: S,
): Promise<Authorized<z.infer<S>>> {
  setPhase('checking the signed request');
  const { request } = parseInput(SignedWorkflowInputSchema, raw, `${action} workflow`);
  const { startTime, attempt, cronSchedule } = workflowInfo();
  // Temporal starts cron and retry runs with the first run's input: a signed request is not theirs to act on.
  const replay = cronSchedule
    ? 'a signed request starts one run: a cron schedule’s run is a replay'
    : attempt > 1
      ? 'a signed request starts one run: a retry run is a replay'
      : undefined;
  return verifyAndClaim(request, action, paramsSchema, startTime.toISOString(), {}, replay);
}

/**
 * A person's signed decision on a running workflow (an update): verified like a start (signature, chain, validity,
 * revocation, freshness as of the workflow's time now, role for `action`), used once (its request id is claimed for
 * this run), and its parameters parsed. A refusal is audited against `targets`, then thrown as `AccessDenied`, which
 * fails the update and leaves the workflow as it was.
 */
export async function authorizeDecision<S extends z.ZodType>(
  request: SignedRequest,
  action: Action,
  paramsSchema: S,
  targets: AuditDraft['targets'],
): Promise<Authorized<z.infer<S>>> {
  return verifyAndClaim(request, action, paramsSchema, new Date().toISOString(), targets ?? {}, undefined, true);
}

/** Decisions this run has taken: the catalog's claim binds a request to a run, this to one use within it. */
const decided = new Set<string>();

async function verifyAndClaim<S extends z.ZodType>(
  request: SignedRequest,
  action: Action,
  paramsSchema: S,
  now: string,
  targets: NonNullable<AuditDraft['targets']>,
  replay?: string,
  once = false,
): Promise<Authorized<z.infer<S>>> {
  const { workflowId, runId } = workflowInfo();
  const verdict = await verifyRequestActivity({ request, action, now });
  const body = bodyOf(request.body);
  const refuse = async (reason: string, principal: Principal | null): Promise<never> => {
    await recordAudit(verdict.jurisdiction, principal, [
      {
        action: 'request.denied',
        outcome: 'denied',
        reason,
        // A decision is audited against the request it decides; a start against its own request id.
        targets: { ...(body ? { requestId: body.requestId } : {}), ...targets },
        details: { requested: action, ...(once && body ? { decisionId: body.requestId } : {}) },
      },
    ]);
    throw nonRetryable(ErrorType.AccessDenied, reason);
  };
  if (!verdict.ok) return refuse(verdict.reason, verdict.claimed ?? null);
  if (replay) return refuse(replay, verdict.principal);
  if (once) {
    if (decided.has(body!.requestId)) {
      return refuse(
        `request ${body!.requestId} was already used by this workflow: a replayed request is refused`,
        verdict.principal,
      );
    }
    decided.add(body!.requestId);
  }
  try {
    await changeCatalog(verdict.jurisdiction, {
      kind: 'request.claimed',
      requestId: body!.requestId,
      workflowId,
      runId,
      bodySha256: verdict.bodySha256,
    });
  } catch (error) {
    if (error instanceof ApplicationFailure && error.type === ErrorType.AccessDenied) {
      return refuse(error.message.replace(/^catalog change failed: /, ''), verdict.principal);
    }
    throw error;
  }
  return {
    principal: verdict.principal,
    params: parseInput(paramsSchema, body!.params, `${action} request`),
    requestId: body!.requestId,
    jurisdiction: verdict.jurisdiction,
    eSignature: verdict.eSignature,
    body: body!,
    certificatePem: request.certificate,
  };
}
