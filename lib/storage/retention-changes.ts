import type { S3Client } from '@aws-sdk/client-s3';
import { getJurisdiction } from '../../jurisdictions';
import { activeHolds, type DatasetRecord, type LegalHold, type StudyRecord } from '../../schemas/dataset';
import type { HoldScope, RetentionChange } from '../../schemas/retention';
import type { ESignature } from '../../schemas/request';
import {
  listDatasetRecords,
  readDatasetRecord,
  readStudyRecord,
  writeDatasetRecord,
  writeStudyRecord,
} from './catalog';
import { claimedDatasets, claimProblem } from './claims';
import { retentionUnder, nextLockedUntil } from '../retention/rules';

/** A change the catalog writer refuses, with the reason for the person who asked. */
export class RetentionChangeRefused extends Error {
  override readonly name = 'RetentionChangeRefused';
  constructor(
    message: string,
    readonly kind: 'not-found' | 'busy' | 'invalid',
  ) {
    super(message);
  }
}

async function scopeRecords(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  scope: HoldScope,
): Promise<{ datasets: DatasetRecord[]; study?: StudyRecord }> {
  if ('datasetId' in scope) {
    const record = await readDatasetRecord(s3, bucket, scope.datasetId);
    if (!record)
      throw new RetentionChangeRefused(`dataset ${scope.datasetId} is not in the ${jurisdiction} catalog`, 'not-found');
    return { datasets: [record] };
  }
  const study = await readStudyRecord(s3, bucket, jurisdiction, scope.studyId);
  const datasets = (await listDatasetRecords(s3, bucket)).filter((r) => r.studyId === scope.studyId);
  return { datasets, study };
}

/** Refuses a change to datasets a running sweep has claimed, as of the change's own time (`at`). */
async function refuseClaimed(s3: S3Client, bucket: string, datasets: DatasetRecord[], at: string): Promise<void> {
  const problem = claimProblem(
    await claimedDatasets(s3, bucket, new Date(at)),
    datasets.map((d) => d.datasetId),
  );
  if (problem) throw new RetentionChangeRefused(`${problem}; try again when it has finished`, 'busy');
}

/**
 * Records a legal hold on a dataset or a study. Refused while a sweep is deleting any dataset it covers (the hold
 * arrived too late for those). Idempotent by hold id.
 */
export async function setHold(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  scope: HoldScope,
  hold: LegalHold,
): Promise<{ changed: boolean; datasets: string[] }> {
  const { datasets, study } = await scopeRecords(s3, bucket, jurisdiction, scope);
  const target = study ?? datasets[0]!;
  if (target.holds.some((h) => h.holdId === hold.holdId)) {
    return { changed: false, datasets: datasets.map((d) => d.datasetId) };
  }
  await refuseClaimed(s3, bucket, datasets, hold.setAt);
  if (study) await writeStudyRecord(s3, bucket, { ...study, holds: [...study.holds, hold] });
  else await writeDatasetRecord(s3, bucket, { ...datasets[0]!, holds: [...datasets[0]!.holds, hold] });
  return { changed: true, datasets: datasets.map((d) => d.datasetId) };
}

/**
 * Releases a hold (the named one, or the only one in force on the scope). Returns the datasets no hold covers any more
 * (their S3 legal hold can go) and those another hold still covers.
 */
export async function releaseHold(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  scope: HoldScope,
  release: { holdId?: string | undefined; at: string; by: ESignature; reason: string },
): Promise<{ changed: boolean; holdId: string; released: string[]; stillHeld: string[] }> {
  const { datasets, study } = await scopeRecords(s3, bucket, jurisdiction, scope);
  const target: { holds: LegalHold[] } = study ?? datasets[0]!;
  const where = 'datasetId' in scope ? `dataset ${scope.datasetId}` : `study ${scope.studyId}`;
  let hold: LegalHold | undefined;
  if (release.holdId) {
    hold = target.holds.find((h) => h.holdId === release.holdId);
    if (!hold) throw new RetentionChangeRefused(`${where} has no hold ${release.holdId}`, 'not-found');
  } else {
    const active = activeHolds(target);
    if (active.length === 0) throw new RetentionChangeRefused(`${where} has no legal hold in force`, 'not-found');
    if (active.length > 1) {
      throw new RetentionChangeRefused(
        `${where} has ${active.length} holds in force (${active.map((h) => h.holdId).join(', ')}): name one with --hold`,
        'invalid',
      );
    }
    hold = active[0]!;
  }
  let changed = false;
  if (hold.releasedAt === null) {
    const released: LegalHold = {
      ...hold,
      releasedAt: release.at,
      releasedBy: release.by,
      releaseReason: release.reason,
    };
    const holds = target.holds.map((h) => (h.holdId === hold.holdId ? released : h));
    if (study) await writeStudyRecord(s3, bucket, { ...study, holds });
    else await writeDatasetRecord(s3, bucket, { ...datasets[0]!, holds });
    changed = true;
  }
  // What still holds each dataset: its own holds, and its study's.
  const studies = new Map<string, StudyRecord>();
  const stillHeld: string[] = [];
  const free: string[] = [];
  for (const dataset of datasets) {
    let s = studies.get(dataset.studyId);
    if (!s) {
      s = await readStudyRecord(s3, bucket, jurisdiction, dataset.studyId);
      studies.set(dataset.studyId, s);
    }
    const own =
      'datasetId' in scope
        ? activeHolds({ holds: dataset.holds.filter((h) => h.holdId !== hold.holdId) })
        : activeHolds(dataset);
    const ofStudy = activeHolds(s).filter((h) => h.holdId !== hold.holdId);
    (own.length + ofStudy.length > 0 ? stillHeld : free).push(dataset.datasetId);
  }
  return { changed, holdId: hold.holdId, released: free, stillHeld };
}

/**
 * Records the end of a study's trial and recomputes retain-until for its datasets whose rule counts from it. The new
 * Object Lock date follows retain-until where storage allows: COMPLIANCE is only ever extended; a date already past
 * cannot be set, so the lock stays as it was (the sweep overrides GOVERNANCE once Steward finds the data expired).
 */
export async function endTrial(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  trial: { studyId: string; date: string; at: string; by: ESignature },
): Promise<{ changed: boolean; changes: RetentionChange[] }> {
  const study = await readStudyRecord(s3, bucket, jurisdiction, trial.studyId);
  const rules = getJurisdiction(jurisdiction).retention;
  const datasets = (await listDatasetRecords(s3, bucket)).filter(
    (r) => r.studyId === trial.studyId && rules[r.dataClass]?.countsFrom === 'end-of-trial',
  );
  const same = study.trialEnd?.date === trial.date;
  if (!same) await refuseClaimed(s3, bucket, datasets, trial.at);
  if (!same) {
    await writeStudyRecord(s3, bucket, {
      ...study,
      trialEnd: { date: trial.date, recordedAt: trial.at, recordedBy: trial.by },
    });
  }
  const changes: RetentionChange[] = [];
  for (const record of datasets) {
    const rule = rules[record.dataClass]!;
    const computed = retentionUnder(record, rule, trial.date);
    const previous = record.retention.lockedUntil ?? null;
    const lockedUntil = nextLockedUntil(computed, rule, previous, trial.at);
    const retention = { ...computed, lockedUntil };
    if (JSON.stringify(retention) !== JSON.stringify(record.retention)) {
      await writeDatasetRecord(s3, bucket, { ...record, retention });
    }
    changes.push({
      datasetId: record.datasetId,
      rule: record.dataClass,
      until: retention.until,
      lockedUntil,
      objectLock: retention.objectLock,
    });
  }
  return { changed: !same, changes };
}

/**
 * Recomputes every dataset's retention under the rules this worker loaded (after an approved change to the
 * jurisdiction file): each whose retain-until moves gets its record rewritten, refused while a sweep has it claimed.
 */
export async function applyRetentionRules(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  change: { changeId: string; at: string },
): Promise<{ changed: boolean; changes: RetentionChange[] }> {
  const rules = getJurisdiction(jurisdiction).retention;
  const records = await listDatasetRecords(s3, bucket);
  const studies = new Map<string, string | null>();
  const moved: { record: DatasetRecord; retention: DatasetRecord['retention'] }[] = [];
  for (const record of records) {
    const rule = rules[record.dataClass];
    if (!rule) continue;
    if (!studies.has(record.studyId)) {
      studies.set(
        record.studyId,
        (await readStudyRecord(s3, bucket, jurisdiction, record.studyId)).trialEnd?.date ?? null,
      );
    }
    const computed = retentionUnder(record, rule, studies.get(record.studyId));
    const retention = {
      ...computed,
      lockedUntil: nextLockedUntil(computed, rule, record.retention.lockedUntil ?? null, change.at),
    };
    if (JSON.stringify(retention) !== JSON.stringify(record.retention)) moved.push({ record, retention });
  }
  await refuseClaimed(
    s3,
    bucket,
    moved.map((m) => m.record),
    change.at,
  );
  for (const { record, retention } of moved) await writeDatasetRecord(s3, bucket, { ...record, retention });
  return {
    changed: moved.length > 0,
    changes: moved.map(({ record, retention }) => ({
      datasetId: record.datasetId,
      rule: record.dataClass,
      until: retention.until,
      lockedUntil: retention.lockedUntil ?? null,
      objectLock: retention.objectLock,
    })),
  };
}
