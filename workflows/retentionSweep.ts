import {
  CancellationScope,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createRetentionActivities } from '../activities/retention';
import type { createScheduleActivities } from '../activities/schedule';
import { ErrorType, nonRetryable, retentionScheduleId, retentionSweepProgressQuery } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { ACCESS_EXPORT_CLASS, RAW_PACKAGE_CLASS } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { SignedRequestSchema } from '../schemas/request';
import {
  SweepInputSchema,
  SweepParamsSchema,
  SweepStateSchema,
  type RetentionScan,
  type SweepInput,
  type SweepItem,
  type SweepReport,
  type SweepState,
  type SweepTotals,
} from '../schemas/retention';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { progressFrom } from './progress';
import { changeCatalog } from './catalog';
import { openState, sealState, workerJurisdiction } from './messages';
import { eraseDatasets, eraseExports, erasePackages, noteItem, sweepAudit } from './sweepBatch';

type Retention = ReturnType<typeof createRetentionActivities>;

const schedules = proxyActivities<ReturnType<typeof createScheduleActivities>>({
  // Looks for the run among its schedule's actions for up to ten seconds.
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '10 seconds',
  // Temporal's frontend, which the worker reaches anyway: a few tries cover a restart.
  retry: { maximumAttempts: 5, initialInterval: '1s' },
});

const scans = proxyActivities<Retention>({
  // A page of 200 records or raw uploads: seconds. A scan whose worker died is tried again on another within half a
  // minute, rather than holding the sweep up for minutes.
  startToCloseTimeout: '30 seconds',
  // Reads only: retried through storage outages for about half an hour.
  retry: { maximumAttempts: 30, initialInterval: '2s', maximumInterval: '1 minute' },
});

/** Catalog records scanned per page; each page's expired datasets are deleted as one batch. */
const PAGE = 200;
/** Batches erasing at once. */
const PARALLEL = 4;
/** Continue as new before the history grows past this many events. */
const HISTORY_LIMIT = 4000;

function zeroTotals(): SweepTotals {
  return {
    datasetsScanned: 0,
    datasetsExpired: 0,
    packagesExpired: 0,
    datasetsDeleted: 0,
    datasetsHeld: 0,
    datasetsKept: 0,
    packagesScanned: 0,
    packagesDeleted: 0,
    packagesHeld: 0,
    exportsExpired: 0,
    exportsDeleted: 0,
    versionsDeleted: 0,
    bytesDeleted: 0,
    certificates: 0,
    failed: 0,
  };
}

/** The request's own claim of a dry run, to pick which permission to check; the verification covers the whole body. */
function claimsDryRun(raw: unknown): boolean {
  const parsed = SignedRequestSchema.safeParse((raw as { request?: unknown })?.request);
  if (!parsed.success) return false;
  try {
    return (JSON.parse(parsed.data.body) as { params?: { dryRun?: unknown } }).params?.dryRun === true;
  } catch {
    return false;
  }
}

/** Refuses a start that is not what it says it is, in the trail of the worker's own jurisdiction. */
async function refuseStart(jurisdiction: string, reason: string): Promise<never> {
  await recordAudit(jurisdiction, null, [
    { action: 'request.denied', outcome: 'denied', reason, details: { requested: 'retention.sweep' } },
  ]);
  throw nonRetryable(ErrorType.AccessDenied, reason);
}

async function begin(input: SweepInput, raw: unknown): Promise<SweepState> {
  const { workflowId } = workflowInfo();
  if ('state' in input) {
    // Saved state carries the sweep's authorization (its principal, its as-of date): only the sweep's own
    // continue-as-new may hand it over, sealed by its worker, never a client starting a workflow with it.
    const saved = await openState(input.state, SweepStateSchema);
    if (saved.ok && saved.state.sweepId === workflowId) return saved.state;
    return refuseStart(
      await workerJurisdiction(),
      `a sweep resumes from saved state only through its own continue-as-new (${saved.ok ? 'the state is another sweep’s' : saved.reason}): start a sweep with a signed request`,
    );
  }
  const now = new Date().toISOString();
  const base = { sweepId: workflowId, startedAt: now, phase: 'datasets' as const, cursor: null, batch: 0 };
  if ('scheduled' in input) {
    // A scheduled sweep carries no parameters: it decides for now, on the workflow's own clock, and deletes only
    // what the rules make expired by then. Only a run the schedule itself started is one (Temporal's record of the
    // schedule's actions says so); triggering the schedule early is no more powerful than waiting for it.
    const verdict = await schedules.verifyScheduledRunActivity({ jurisdiction: input.scheduled.jurisdiction });
    if (!verdict.ok) return refuseStart(verdict.jurisdiction, `scheduled sweep refused: ${verdict.reason}`);
    const jurisdiction = verdict.jurisdiction;
    return {
      ...base,
      jurisdiction,
      asOf: now,
      dryRun: false,
      principal: { id: `Steward retention schedule ${jurisdiction}`, role: 'worker' },
      eSignature: null,
      requestId: null,
      scheduleId: retentionScheduleId(jurisdiction),
      totals: zeroTotals(),
      items: [],
      omitted: 0,
    };
  }
  const auth = await authorize(raw, claimsDryRun(raw) ? 'retention.preview' : 'retention.sweep', SweepParamsSchema);
  const { asOf, dryRun } = auth.params;
  if (asOf && asOf > now && !dryRun) {
    throw nonRetryable(
      ErrorType.InvalidInput,
      `a sweep deletes only what has expired by now: --as-of ${asOf} is later than the sweep's time ${now}; use --dry-run to see what would expire then`,
    );
  }
  return {
    ...base,
    jurisdiction: auth.jurisdiction,
    asOf: asOf ? new Date(asOf).toISOString() : now,
    dryRun,
    principal: auth.principal,
    eSignature: auth.eSignature,
    requestId: auth.requestId,
    scheduleId: null,
    totals: zeroTotals(),
    items: [],
    omitted: 0,
  };
}

/**
 * A retention sweep of one jurisdiction: claims a page of expired datasets under the catalog writer (or finds a page
 * of expired raw uploads in landing and quarantine), keeps held ones (recording why), then hands the page to an
 * erasure (`eraseUnitsWorkflow`), which deletes every version, verifies the absence, and issues one signed deletion
 * certificate per dataset or package, citing its sealed audit event. A dry run lists what it would delete and what is
 * held, deleting nothing. Continues as new before its history grows large; a worker crash resumes it without deleting
 * or certifying anything twice.
 */
export async function retentionSweepWorkflow(raw: SweepInput): Promise<SweepReport> {
  const input = parseInput(SweepInputSchema, raw, 'retentionSweepWorkflow');
  const state = await begin(input, raw);
  const { jurisdiction, sweepId } = state;
  const rules = getJurisdiction(jurisdiction);
  const audit = (drafts: AuditDraft[]) => sweepAudit(state, drafts);
  progressFrom(() => ({ phase: state.phase, since: state.startedAt, counts: { ...state.totals } }));
  setHandler(retentionSweepProgressQuery, () => ({
    sweepId,
    phase: state.phase,
    asOf: state.asOf,
    dryRun: state.dryRun,
    totals: state.totals,
  }));
  const note = (item: SweepItem) => noteItem(state, item);
  const sweepTargets = state.requestId ? { requestId: state.requestId } : {};

  if ('scheduled' in input || 'request' in input) {
    await audit([
      {
        action: 'retention.swept',
        outcome: 'success',
        reason: state.dryRun ? 'dry run started' : 'sweep started',
        targets: sweepTargets,
        details: { sweepId, asOf: state.asOf, dryRun: state.dryRun, scheduleId: state.scheduleId },
      },
    ]);
  }

  function recordScan(scan: RetentionScan): AuditDraft[] {
    state.totals.datasetsScanned += scan.scanned;
    state.totals.datasetsKept += scan.kept;
    state.totals.datasetsExpired += scan.expired.length;
    state.totals.datasetsHeld += scan.held.length;
    for (const h of scan.held) {
      note({
        kind: 'dataset',
        id: h.datasetId,
        outcome: 'held',
        reason: h.reason,
        rule: h.dataClass,
        legalBasis: h.legalBasis,
        until: h.until,
      });
    }
    if (state.dryRun) {
      for (const d of scan.expired) {
        note({
          kind: 'dataset',
          id: d.datasetId,
          outcome: 'would-delete',
          reason: d.reason,
          rule: d.dataClass,
          legalBasis: d.retention.legalBasis,
          until: d.retention.until,
        });
      }
      return [];
    }
    return scan.held.map((h) => ({
      action: 'retention.held' as const,
      outcome: 'success' as const,
      reason: h.reason,
      targets: { ...sweepTargets, datasetId: h.datasetId },
      details: { sweepId, rule: h.dataClass, until: h.until },
    }));
  }

  const inFlight: Promise<void>[] = [];
  /** A batch runs to its end even when the sweep is cancelled; its failure surfaces when it is awaited, in order. */
  const start = (work: () => Promise<void>) => {
    const running = CancellationScope.nonCancellable(work);
    // Seen as handled meanwhile: an unhandled rejection would fail the workflow task over and over instead.
    running.catch(() => undefined);
    inFlight.push(running);
  };
  const drain = async () => {
    while (inFlight.length > 0) await inFlight.shift();
  };
  /** The end of a sweep, however it ends: its batches done, its claims released, and how it ended audited. */
  const finish = async (outcome: 'success' | 'failure', reason: string) => {
    await drain();
    if (!state.dryRun) await changeCatalog(jurisdiction, { kind: 'retention.released', sweepId });
    await audit([
      {
        action: 'retention.swept',
        outcome,
        reason,
        targets: sweepTargets,
        details: { sweepId, asOf: state.asOf, dryRun: state.dryRun, ...state.totals },
      },
    ]);
  };
  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > HISTORY_LIMIT;

  try {
    while (state.phase !== 'done') {
      if (historyFull()) {
        await drain();
        return continueAsNew<typeof retentionSweepWorkflow>({ state: await sealState(jurisdiction, state) });
      }
      const batch = state.batch++;
      if (state.phase === 'exports') {
        const scan = await scans.scanExportsActivity({ jurisdiction, asOf: state.asOf, after: state.cursor });
        state.totals.exportsExpired += scan.expired.length;
        const rule = rules.retention[ACCESS_EXPORT_CLASS];
        for (const x of state.dryRun ? scan.expired : []) {
          note({
            kind: 'export',
            id: x.requestId,
            bucket: x.bucket,
            outcome: 'would-delete',
            reason: `expired on ${x.expiresAt}`,
            rule: ACCESS_EXPORT_CLASS,
            legalBasis: rule?.legalBasis ?? x.legalBasis,
            until: x.expiresAt,
          });
        }
        if (!state.dryRun && scan.expired.length > 0) start(() => eraseExports(state, rules, batch, scan.expired));
        state.cursor = scan.next;
        if (scan.next === null) state.phase = 'done';
      } else if (state.phase === 'datasets') {
        const scan = state.dryRun
          ? await scans.scanDatasetsActivity({ jurisdiction, asOf: state.asOf, after: state.cursor, limit: PAGE })
          : (
              await changeCatalog(jurisdiction, {
                kind: 'retention.claim',
                sweepId,
                batch,
                asOf: state.asOf,
                now: new Date().toISOString(),
                after: state.cursor,
                limit: PAGE,
              })
            ).scan!;
        await audit(recordScan(scan));
        if (!state.dryRun && scan.expired.length > 0) {
          start(() => eraseDatasets(state, batch, scan.expired));
        }
        state.cursor = scan.next;
        if (scan.next === null) state.phase = 'landing';
      } else {
        const role = state.phase;
        const scan = await scans.scanPackagesActivity({ jurisdiction, role, asOf: state.asOf, after: state.cursor });
        state.totals.packagesScanned += scan.scanned;
        state.totals.packagesHeld += scan.held.length;
        state.totals.packagesExpired += scan.expired.length;
        const rule = rules.retention[RAW_PACKAGE_CLASS]!;
        const notePackage = (p: (typeof scan.held)[number], outcome: 'held' | 'would-delete') =>
          note({
            kind: 'package',
            id: p.packageId ?? p.prefix,
            bucket: rules.buckets[role],
            outcome,
            reason: p.reason,
            rule: RAW_PACKAGE_CLASS,
            legalBasis: rule.legalBasis,
            until: p.until,
          });
        for (const p of scan.held) notePackage(p, 'held');
        if (state.dryRun) {
          for (const p of scan.expired) notePackage(p, 'would-delete');
        } else {
          await audit(
            scan.held.map((p) => ({
              action: 'retention.held' as const,
              outcome: 'success' as const,
              reason: p.reason,
              targets: { ...sweepTargets, ...(p.packageId ? { packageId: p.packageId } : {}) },
              details: {
                sweepId,
                rule: RAW_PACKAGE_CLASS,
                until: p.until,
                bucket: rules.buckets[role],
                prefix: p.prefix,
              },
            })),
          );
          if (scan.expired.length > 0) {
            start(() => erasePackages(state, rules, batch, scan.expired));
          }
        }
        state.cursor = scan.next;
        if (scan.next === null) {
          // Sweeps recorded before access packages expired end after quarantine, as they did.
          state.phase = role === 'landing' ? 'quarantine' : patched('sweep-access-exports') ? 'exports' : 'done';
        }
      }
      while (inFlight.length >= PARALLEL) await inFlight.shift();
    }
  } catch (error) {
    if (!isCancellation(error)) throw error;
    // Cancelled (from the Temporal UI or CLI): claims no more pages, but the batches already claimed finish, so
    // nothing is deleted without its certificate; then the claims are released and the stop is in the audit trail.
    await CancellationScope.nonCancellable(() =>
      finish(
        'failure',
        state.dryRun
          ? 'dry run cancelled'
          : 'sweep cancelled: the batches already claimed were deleted and certified; nothing else was claimed',
      ),
    );
    throw error;
  }
  await finish(state.totals.failed > 0 ? 'failure' : 'success', state.dryRun ? 'dry run finished' : 'sweep finished');
  const completedAt = new Date().toISOString();
  return {
    sweepId,
    jurisdiction,
    asOf: state.asOf,
    dryRun: state.dryRun,
    scheduleId: state.scheduleId,
    startedAt: state.startedAt,
    completedAt,
    totals: state.totals,
    items: state.items,
    itemsOmitted: state.omitted,
  };
}
