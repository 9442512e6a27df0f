import { condition, continueAsNew, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createReplicationActivities } from '../activities/replication';
import {
  ErrorType,
  nonRetryable,
  replicationPassSignal,
  replicationStatusQuery,
  replicationWorkflowId,
} from '../contracts';
import { parseInput } from '../contracts/parse';
import { getJurisdiction } from '../jurisdictions';
import { ReplicationInputSchema, ReplicationStatusSchema, type ReplicationStatus } from '../schemas/replication';
import { recordAudit } from './audit';
import { openState, sealState, workerJurisdiction } from './messages';

const replication = proxyActivities<ReturnType<typeof createReplicationActivities>>({
  // A pass copies what arrived since the last one: seconds, or as long as a large package takes to copy.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  // A site that is down is waited for: the lag grows, `steward dr status` shows it and the pass's last failure.
  retry: { initialInterval: '2s', maximumInterval: '30 seconds' },
});

/** Seconds between passes that found nothing to copy. */
const IDLE_SECONDS = 5;
/** Passes per run before continue-as-new (sooner when Temporal suggests it). */
const PASSES_PER_RUN = 30;

/**
 * A jurisdiction's replication from its primary site to its disaster-recovery site, both inside the jurisdiction: one
 * run at a time under `replication-<j>`, started by `steward up`, passing over every bucket every few seconds (at once
 * again after a pass that copied). Each pass's outcome and the lag are answered by the `replicationStatus` query;
 * replicas it deletes (their source was deleted at the primary by something other than a certified erasure, which
 * deletes at both sites itself) are audited.
 */
export async function replicationWorkflow(raw: unknown): Promise<never> {
  const input = parseInput(ReplicationInputSchema, raw, 'replicationWorkflow');
  const { workflowId } = workflowInfo();
  let status: ReplicationStatus;
  if ('state' in input) {
    const saved = await openState(input.state, ReplicationStatusSchema);
    if (!saved.ok) throw nonRetryable(ErrorType.MessageRefused, `replication state refused: ${saved.reason}`);
    status = saved.state;
  } else {
    const jurisdiction = await workerJurisdiction();
    if (input.jurisdiction !== jurisdiction || workflowId !== replicationWorkflowId(jurisdiction)) {
      throw nonRetryable(
        ErrorType.JurisdictionViolation,
        `a ${jurisdiction} worker replicates only ${jurisdiction}, as ${replicationWorkflowId(jurisdiction)}`,
      );
    }
    const { sites } = getJurisdiction(jurisdiction);
    status = {
      jurisdiction,
      primary: sites.primary.name,
      dr: sites.dr.name,
      passes: 0,
      replicatedThrough: null,
      totals: { copied: 0, copiedBytes: 0, pruned: 0, vanished: 0 },
      last: null,
    };
  }
  setHandler(replicationStatusQuery, () => status);
  // Asked for by whoever waits for a replica (an ingestion before it completes): the next pass starts at once.
  let asked = false;
  setHandler(replicationPassSignal, () => void (asked = true));
  for (let passes = 0; ; passes++) {
    asked = false;
    const pass = await replication.replicateToDrActivity({ jurisdiction: status.jurisdiction });
    const sum = (field: 'copied' | 'copiedBytes' | 'pruned' | 'vanished') =>
      pass.buckets.reduce((n, b) => n + b[field], 0);
    status = {
      ...status,
      // After `steward dr failover` the DR site is copied from and the primary to.
      primary: pass.source ?? status.primary,
      dr: pass.site,
      passes: status.passes + 1,
      replicatedThrough: pass.replicatedThrough ?? status.replicatedThrough,
      totals: {
        copied: status.totals.copied + sum('copied'),
        copiedBytes: status.totals.copiedBytes + sum('copiedBytes'),
        pruned: status.totals.pruned + sum('pruned'),
        vanished: status.totals.vanished + sum('vanished'),
      },
      last: pass,
    };
    if (sum('pruned') + sum('vanished') > 0) {
      await recordAudit(status.jurisdiction, { id: `Steward replication ${status.jurisdiction}`, role: 'worker' }, [
        {
          action: 'replication.pruned',
          outcome: 'success',
          reason: `their source versions were deleted at ${status.primary}`,
          details: {
            site: status.dr,
            pruned: sum('pruned'),
            vanished: sum('vanished'),
            buckets: pass.buckets
              .filter((b) => b.pruned + b.vanished > 0)
              .map((b) => b.bucket)
              .join(', '),
          },
        },
      ]);
    }
    if (passes + 1 >= PASSES_PER_RUN || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof replicationWorkflow>({ state: await sealState(status.jurisdiction, status) });
    }
    if (sum('copied') === 0) await condition(() => asked, `${IDLE_SECONDS} seconds`);
  }
}
