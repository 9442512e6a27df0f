import { ACCESS_EXPORT_CLASS, RAW_PACKAGE_CLASS, type Jurisdiction } from '../schemas/jurisdiction';
import { exportRecordKey } from '../lib/storage/layout';
import type { ErasureResult, ErasureUnitInput } from '../schemas/erasure';
import type { ClaimedDataset, ExpiredExport, PackageRetention, SweepItem, SweepState } from '../schemas/retention';
import { recordAudit } from './audit';
import { eraseUnits } from './eraseUnits';

/** Items a report lists (totals count every one). */
const ITEMS_KEPT = 1000;

/** Lists an item in the sweep's report, or counts it as omitted once the report is full. */
export function noteItem(state: SweepState, item: SweepItem): void {
  if (state.items.length < ITEMS_KEPT) state.items.push(item);
  else state.omitted += 1;
}

/** An expired dataset as an erasure unit: its curated objects, its catalog record and its vault shard. */
function datasetUnit(state: SweepState, d: ClaimedDataset): ErasureUnitInput {
  return {
    unitId: d.datasetId,
    event: 'dataset.deleted',
    targets: { datasetId: d.datasetId, studyId: d.studyId },
    reason: {
      kind: 'retention',
      legalBasis: d.retention.legalBasis,
      detail: `${d.reason}: rule ${d.dataClass} (${d.retention.duration} from ${d.retention.countsFrom}${d.retention.basisDate ? ` ${d.retention.basisDate}` : ''}); sweep ${state.sweepId} as of ${state.asOf}`,
    },
    note: d.reason,
    details: { rule: d.dataClass, until: d.retention.until },
    dataset: { datasetId: d.datasetId, studyId: d.studyId },
  };
}

/** An expired raw upload (a package, or a consent file) as an erasure unit: every version under its prefix. */
function packageUnit(state: SweepState, rules: Jurisdiction, p: PackageRetention): ErasureUnitInput {
  const rule = rules.retention[RAW_PACKAGE_CLASS]!;
  const bucket = rules.buckets[p.role];
  return {
    unitId: `${p.role}:${p.prefix}`,
    event: 'package.deleted',
    targets: { ...(p.studyId ? { studyId: p.studyId } : {}), ...(p.packageId ? { packageId: p.packageId } : {}) },
    reason: {
      kind: 'retention',
      legalBasis: rule.legalBasis,
      detail: `${p.reason}: raw upload s3://${bucket}/${p.prefix} submitted ${p.submittedAt} (rule ${RAW_PACKAGE_CLASS}, ${rule.duration}); sweep ${state.sweepId} as of ${state.asOf}`,
    },
    note: p.reason,
    details: { rule: RAW_PACKAGE_CLASS, until: p.until },
    objects: {
      targets: [{ bucket, prefixes: [p.prefix], bypassGovernance: false }],
      absent: p.prefix.endsWith('/') ? [] : [{ bucket, key: p.prefix }],
    },
  };
}

/** The erasure of one claimed batch, on the sweep's authority, its certificates bundled together. */
function eraseBatch(state: SweepState, batch: string, units: ErasureUnitInput[]): Promise<ErasureResult> {
  return eraseUnits(batch, {
    jurisdiction: state.jurisdiction,
    label: `retention sweep ${state.sweepId}, batch ${batch}`,
    bundled: true,
    principal: state.principal,
    requestedBy: state.eSignature,
    approvedBy: state.eSignature ? [state.eSignature] : [],
    requestId: state.requestId,
    details: { sweepId: state.sweepId, batch },
    units,
  });
}

/** Counts an erasure's result into the sweep's totals and report; returns the ids of the units that failed. */
function recordResult(state: SweepState, result: ErasureResult, item: (unitId: string) => SweepItem): void {
  for (const e of result.erased) {
    state.totals.versionsDeleted += e.versions;
    state.totals.bytesDeleted += e.bytes;
    state.totals.certificates += 1;
    noteItem(state, { ...item(e.unitId), outcome: 'deleted', versions: e.versions, certificateId: e.certificateId });
  }
  for (const f of result.failed) {
    state.totals.failed += 1;
    noteItem(state, { ...item(f.unitId), outcome: 'failed', reason: f.reason });
  }
}

/** Claimed datasets: erased (objects, record, vault shard) and certified, one certificate each. */
export async function eraseDatasets(state: SweepState, batch: number, expired: ClaimedDataset[]): Promise<void> {
  const result = await eraseBatch(
    state,
    `datasets-${batch}`,
    expired.map((d) => datasetUnit(state, d)),
  );
  const byId = new Map(expired.map((d) => [d.datasetId, d]));
  state.totals.datasetsDeleted += result.erased.length;
  recordResult(state, result, (id) => {
    const d = byId.get(id)!;
    return {
      kind: 'dataset',
      id,
      outcome: 'deleted',
      reason: d.reason,
      rule: d.dataClass,
      legalBasis: d.retention.legalBasis,
      until: d.retention.until,
    };
  });
}

/** Expired raw uploads of one page: erased and certified, one certificate each. */
export async function erasePackages(
  state: SweepState,
  rules: Jurisdiction,
  batch: number,
  expired: PackageRetention[],
): Promise<void> {
  const rule = rules.retention[RAW_PACKAGE_CLASS]!;
  const result = await eraseBatch(
    state,
    `packages-${batch}`,
    expired.map((p) => packageUnit(state, rules, p)),
  );
  const byId = new Map(expired.map((p) => [`${p.role}:${p.prefix}`, p]));
  state.totals.packagesDeleted += result.erased.length;
  recordResult(state, result, (id) => {
    const p = byId.get(id)!;
    return {
      kind: 'package',
      id: p.packageId ?? p.prefix,
      bucket: rules.buckets[p.role],
      outcome: 'deleted',
      reason: p.reason,
      rule: RAW_PACKAGE_CLASS,
      legalBasis: rule.legalBasis,
      until: p.until,
    };
  });
}

/** An expired access package as an erasure unit: every version of its files, and its record in the catalog. */
function exportUnit(state: SweepState, rules: Jurisdiction, x: ExpiredExport): ErasureUnitInput {
  const record = { bucket: rules.buckets.catalog, key: exportRecordKey(x.requestId) };
  return {
    unitId: `export:${x.requestId}`,
    event: 'export.deleted',
    targets: { requestId: x.requestId },
    reason: {
      kind: 'retention',
      legalBasis: rules.retention[ACCESS_EXPORT_CLASS]?.legalBasis ?? x.legalBasis,
      detail: `access package of request ${x.requestId} (s3://${x.bucket}/${x.prefix}) expired on ${x.expiresAt} (rule ${ACCESS_EXPORT_CLASS}); sweep ${state.sweepId} as of ${state.asOf}`,
    },
    note: `expired on ${x.expiresAt}`,
    details: { rule: ACCESS_EXPORT_CLASS, until: x.expiresAt },
    objects: {
      targets: [
        { bucket: x.bucket, prefixes: [x.prefix], bypassGovernance: true },
        { bucket: record.bucket, prefixes: [record.key], bypassGovernance: false },
      ],
      absent: [record],
    },
  };
}

/** Expired access packages of one page: erased and certified, one certificate each. */
export async function eraseExports(
  state: SweepState,
  rules: Jurisdiction,
  batch: number,
  expired: ExpiredExport[],
): Promise<void> {
  const result = await eraseBatch(
    state,
    `exports-${batch}`,
    expired.map((x) => exportUnit(state, rules, x)),
  );
  const byId = new Map(expired.map((x) => [`export:${x.requestId}`, x]));
  state.totals.exportsDeleted += result.erased.length;
  recordResult(state, result, (id) => {
    const x = byId.get(id)!;
    return {
      kind: 'export',
      id: x.requestId,
      bucket: x.bucket,
      outcome: 'deleted',
      reason: `expired on ${x.expiresAt}`,
      rule: ACCESS_EXPORT_CLASS,
      legalBasis: rules.retention[ACCESS_EXPORT_CLASS]?.legalBasis ?? x.legalBasis,
      until: x.expiresAt,
    };
  });
}

/** Audits the sweep's own events (start, holds, end) under its principal. */
export function sweepAudit(state: SweepState, drafts: Parameters<typeof recordAudit>[2]) {
  return drafts.length > 0 ? recordAudit(state.jurisdiction, state.principal, drafts) : Promise.resolve([]);
}
