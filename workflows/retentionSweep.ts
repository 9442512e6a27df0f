import {
  CancellationScope,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createAuditActivities } from '../activities/audit';
import type { createEvidenceActivities } from '../activities/evidence';
import type { createRetentionActivities } from '../activities/retention';
import type { createScheduleActivities } from '../activities/schedule';
import { ErrorType, nonRetryable, retentionScheduleId, retentionSweepProgressQuery } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { RAW_PACKAGE_CLASS } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { SignedRequestSchema } from '../schemas/request';
import {
  SweepInputSchema,
  SweepParamsSchema,
  SweepStateSchema,
  type ClaimedDataset,
  type PackageRetention,
  type RetentionScan,
  type SweepInput,
  type SweepItem,
  type SweepReport,
  type SweepState,
  type SweepTotals,
} from '../schemas/retention';
import type { IssueBatchCertificatesInput, SweepCertificateSchema } from '../schemas/certificate';
import type { z } from 'zod';
import { recordAudit, type AuditDraft } from './audit';
import { authorize } from './authorize';
import { progressFrom } from './progress';
import { changeCatalog } from './catalog';
import { openState, sealState, workerJurisdiction } from './messages';

type Retention = ReturnType<typeof createRetentionActivities>;
type Evidence = ReturnType<typeof createAuditActivities> & ReturnType<typeof createEvidenceActivities>;

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

const deletions = proxyActivities<Retention>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '30 seconds',
  // Journaled and verified, so a retry finishes what an attempt started; storage outages are waited out for hours.
  retry: { maximumAttempts: 100, initialInterval: '5s', maximumInterval: '5 minutes' },
});

const evidence = proxyActivities<Evidence>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  // Waits for the audit trail to seal the events (about a second), and rides out storage hiccups.
  retry: { maximumAttempts: 60, initialInterval: '1s', maximumInterval: '30s' },
});

/** Catalog records scanned per page; each page's expired datasets are deleted as one batch. */
const PAGE = 200;
/** Batches deleting at once. */
const PARALLEL = 4;
/** Items a report lists (totals count every one). */
const ITEMS_KEPT = 1000;
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
 * A retention sweep of one jurisdiction: finds expired datasets (page by page, each page's claimed under the catalog
 * writer) and expired raw uploads in landing and quarantine, keeps held ones (recording why), deletes every version in
 * batches, verifies the absence, and issues one signed deletion certificate per dataset or package, citing its sealed
 * audit event. A dry run lists what it would delete and what is held, deleting nothing. Continues as new before its
 * history grows large; a worker crash resumes it without deleting or certifying anything twice.
 */
export async function retentionSweepWorkflow(raw: SweepInput): Promise<SweepReport> {
  const input = parseInput(SweepInputSchema, raw, 'retentionSweepWorkflow');
  const state = await begin(input, raw);
  const { jurisdiction, sweepId } = state;
  const rules = getJurisdiction(jurisdiction);
  const audit = (drafts: AuditDraft[]) =>
    drafts.length > 0 ? recordAudit(jurisdiction, state.principal, drafts) : Promise.resolve([]);
  progressFrom(() => ({ phase: state.phase, since: state.startedAt, counts: { ...state.totals } }));
  setHandler(retentionSweepProgressQuery, () => ({
    sweepId,
    phase: state.phase,
    asOf: state.asOf,
    dryRun: state.dryRun,
    totals: state.totals,
  }));
  const note = (item: SweepItem) => {
    if (state.items.length < ITEMS_KEPT) state.items.push(item);
    else state.omitted += 1;
  };
  const common = {
    requestedBy: state.eSignature,
    approvedBy: state.eSignature ? [state.eSignature] : [],
    workflow: { workflowId: workflowInfo().workflowId, runId: workflowInfo().runId },
  };
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

  /** Deleted: audit events, their place in the sealed trail, then a certificate each citing its event. */
  async function certify(
    batch: string,
    units: {
      unitId: string;
      datasetId?: string;
      studyId?: string;
      packageId?: string;
      event: AuditDraft['action'];
      reason: z.infer<typeof SweepCertificateSchema>['reason'];
      versions: number;
      bytes: number;
      verified: boolean;
      item: SweepItem;
    }[],
    extra: IssueBatchCertificatesInput['extra'] & object,
  ): Promise<void> {
    if (units.length === 0) return;
    // One bundle per batch: its certificates' ids share their first 16 hex digits.
    const bundle = uuid4().replaceAll('-', '').slice(0, 16);
    const ids = units.map(() => `cert-${jurisdiction}-${bundle}${uuid4().replaceAll('-', '').slice(0, 16)}`);
    const events = await audit(
      units.map((u, i) => ({
        action: u.event,
        outcome: 'success' as const,
        reason: u.item.reason,
        targets: {
          ...sweepTargets,
          ...(u.datasetId ? { datasetId: u.datasetId } : {}),
          ...(u.studyId ? { studyId: u.studyId } : {}),
          ...(u.packageId ? { packageId: u.packageId } : {}),
          certificateId: ids[i]!,
        },
        details: {
          sweepId,
          rule: u.item.rule,
          until: u.item.until,
          versions: u.versions,
          bytes: u.bytes,
          verified: u.verified,
        },
      })),
    );
    const refs = await evidence.locateAuditEventsActivity({ jurisdiction, eventIds: events.map((e) => e.id) });
    const issued = await evidence.issueBatchCertificatesActivity({
      jurisdiction,
      sweepId,
      batch,
      ...common,
      certificates: units.map((u, i) => ({
        unitId: u.unitId,
        certificateId: ids[i]!,
        reason: u.reason,
        auditChain: refs[i]!,
        ...(u.datasetId ? { datasetId: u.datasetId } : {}),
      })),
      extra,
    });
    // The batch's certificates are stored together: one event for the bundle (each deletion event names its own).
    await audit([
      {
        action: 'certificate.issued',
        outcome: 'success',
        targets: { ...sweepTargets, objects: [{ bucket: issued[0]!.bucket, key: issued[0]!.jsonKey }] },
        details: {
          sweepId,
          batch,
          certificates: issued.length,
          certificateIds: issued.map((c) => c.certificateId).join(' '),
        },
      },
    ]);
    units.forEach((u, i) => note({ ...u.item, certificateId: ids[i]! }));
    state.totals.certificates += issued.length;
  }

  async function deleteDatasets(batch: number, expired: ClaimedDataset[]): Promise<void> {
    const summary = await deletions.deleteClaimedDatasetsActivity({ jurisdiction, sweepId, batch });
    const deleted = new Map(summary.deleted.map((d) => [d.id, d]));
    // The vault shards (identifiers for re-identification) go with their datasets, through each study vault's writer.
    const extra: Parameters<typeof certify>[2] = {};
    const byStudy = new Map<string, string[]>();
    for (const d of expired)
      if (deleted.has(d.datasetId)) byStudy.set(d.studyId, [...(byStudy.get(d.studyId) ?? []), d.datasetId]);
    await Promise.all(
      [...byStudy].map(async ([studyId, datasetIds]) => {
        const removed = await changeCatalog(jurisdiction, { kind: 'vault.shards-removed', studyId, datasetIds });
        for (const r of removed.removed ?? []) {
          extra[r.datasetId] = {
            versions: r.versions.map((v) => ({
              bucket: rules.buckets.catalog,
              key: v.key,
              versionId: v.versionId,
              bytes: v.bytes,
              sha256: v.sha256,
            })),
            verification: `ListObjectVersions of the vault shard: ${r.remaining} versions remain`,
            verified: r.remaining === 0,
          };
        }
      }),
    );
    for (const f of summary.failed) {
      state.totals.failed += 1;
      const d = expired.find((e) => e.datasetId === f.id)!;
      note({
        kind: 'dataset',
        id: f.id,
        outcome: 'failed',
        reason: f.reason,
        rule: d.dataClass,
        legalBasis: d.retention.legalBasis,
        until: d.retention.until,
      });
    }
    await audit(
      summary.failed.map((f) => ({
        action: 'dataset.deleted' as const,
        outcome: 'failure' as const,
        reason: f.reason,
        targets: { ...sweepTargets, datasetId: f.id },
        details: { sweepId },
      })),
    );
    const units = expired
      .filter((d) => deleted.has(d.datasetId))
      .map((d) => {
        const done = deleted.get(d.datasetId)!;
        const shard = extra[d.datasetId];
        const versions = done.versions + (shard?.versions.length ?? 0);
        const bytes = done.bytes + (shard?.versions.reduce((s, v) => s + v.bytes, 0) ?? 0);
        state.totals.datasetsDeleted += 1;
        state.totals.versionsDeleted += versions;
        state.totals.bytesDeleted += bytes;
        return {
          unitId: d.datasetId,
          datasetId: d.datasetId,
          studyId: d.studyId,
          event: 'dataset.deleted' as const,
          reason: {
            kind: 'retention' as const,
            legalBasis: d.retention.legalBasis,
            detail: `${d.reason}: rule ${d.dataClass} (${d.retention.duration} from ${d.retention.countsFrom}${d.retention.basisDate ? ` ${d.retention.basisDate}` : ''}); sweep ${sweepId} as of ${state.asOf}`,
          },
          versions,
          bytes,
          verified: done.verified && (shard?.verified ?? true),
          item: {
            kind: 'dataset' as const,
            id: d.datasetId,
            outcome: 'deleted' as const,
            reason: d.reason,
            rule: d.dataClass,
            legalBasis: d.retention.legalBasis,
            until: d.retention.until,
            versions,
          },
        };
      });
    await certify(`datasets-${batch}`, units, extra);
  }

  async function deletePackages(batch: number, expired: PackageRetention[]): Promise<void> {
    const rule = rules.retention[RAW_PACKAGE_CLASS]!;
    const summary = await deletions.deleteExpiredPackagesActivity({ jurisdiction, sweepId, batch, packages: expired });
    const deleted = new Map(summary.deleted.map((d) => [d.id, d]));
    const units = expired.flatMap((p) => {
      const unitId = `${p.role}:${p.prefix}`;
      const done = deleted.get(unitId);
      if (!done) return [];
      state.totals.packagesDeleted += 1;
      state.totals.versionsDeleted += done.versions;
      state.totals.bytesDeleted += done.bytes;
      const item: SweepItem = {
        kind: 'package',
        id: p.packageId ?? p.prefix,
        bucket: rules.buckets[p.role],
        outcome: 'deleted',
        reason: p.reason,
        rule: RAW_PACKAGE_CLASS,
        legalBasis: rule.legalBasis,
        until: p.until,
        versions: done.versions,
      };
      return [
        {
          unitId,
          ...(p.studyId ? { studyId: p.studyId } : {}),
          ...(p.packageId ? { packageId: p.packageId } : {}),
          event: 'package.deleted' as const,
          reason: {
            kind: 'retention' as const,
            legalBasis: rule.legalBasis,
            detail: `${p.reason}: raw upload s3://${rules.buckets[p.role]}/${p.prefix} submitted ${p.submittedAt} (rule ${RAW_PACKAGE_CLASS}, ${rule.duration}); sweep ${sweepId} as of ${state.asOf}`,
          },
          versions: done.versions,
          bytes: done.bytes,
          verified: done.verified,
          item,
        },
      ];
    });
    for (const f of summary.failed) {
      state.totals.failed += 1;
      note({
        kind: 'package',
        id: f.id,
        outcome: 'failed',
        reason: f.reason,
        rule: RAW_PACKAGE_CLASS,
        legalBasis: rule.legalBasis,
        until: null,
      });
    }
    await certify(`packages-${batch}`, units, {});
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
      if (state.phase === 'datasets') {
        const scan = state.dryRun
          ? await scans.scanDatasetsActivity({ jurisdiction, asOf: state.asOf, after: state.cursor, limit: PAGE })
          : (
              await changeCatalog(jurisdiction, {
                kind: 'retention.claim',
                sweepId,
                batch,
                asOf: state.asOf,
                after: state.cursor,
                limit: PAGE,
              })
            ).scan!;
        await audit(recordScan(scan));
        if (!state.dryRun && scan.expired.length > 0) {
          start(() => deleteDatasets(batch, scan.expired));
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
            start(() => deletePackages(batch, scan.expired));
          }
        }
        state.cursor = scan.next;
        if (scan.next === null) {
          state.phase = role === 'landing' ? 'quarantine' : 'done';
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
