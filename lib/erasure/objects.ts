import type { S3Client } from '@aws-sdk/client-s3';
import type { ErasedVersion, ObjectErasure } from '../../schemas/erasure';
import { inLanes } from '../runtime/lanes';
import { readDatasetRecords } from '../storage/claims';
import { deleteVersions } from '../storage/versions';
import { inventory, underPrefix, verifyAbsence, versionRef } from './absence';
import { readJournal, writeJournal, type ErasureJournal, type UnitOutcome } from './journal';

const GONE = new Set(['NoSuchVersion', 'NoSuchKey']);

export type ObjectUnit = { unitId: string; objects: ObjectErasure };
export type ErasureDone = NonNullable<ErasureJournal['done']>;

/**
 * Deletes every version under each unit's targets and verifies the absence. Journals first (every version with its
 * SHA-256), so a retry after a crash deletes what is left and still certifies everything; completes the journal with
 * the outcomes last, and a retry finding them returns them as they are. A version that appears meanwhile (none should:
 * the units are claimed) is deleted too, in up to three rounds. A unit storage refuses to delete fails alone.
 */
export async function eraseObjects(
  s3: S3Client,
  journalBucket: string,
  operationId: string,
  units: ObjectUnit[],
  onProgress: (phase: string) => void = () => {},
  journalKey?: string,
): Promise<ErasureDone> {
  let journal = await readJournal(s3, journalBucket, operationId, journalKey);
  if (journal?.done) return journal.done;
  if (!journal) {
    onProgress('listing versions');
    const found = await inventory(s3, await withRecordDigests(s3, units), true);
    journal = {
      format: 'steward-erasure-journal/1',
      operationId,
      startedAt: new Date().toISOString(),
      units: units.map((u) => ({ unitId: u.unitId, versions: found.get(u.unitId)! })),
    };
    await writeJournal(s3, journalBucket, journal, journalKey);
  }
  const versionsOf = new Map(journal.units.map((u) => [u.unitId, [...u.versions]]));
  const failed = new Map<string, string>();
  let remaining = new Map<string, ErasedVersion[]>();
  for (let round = 0; round < 3; round++) {
    onProgress(round === 0 ? 'deleting' : 'deleting what remained');
    const perBucket = new Map<
      string,
      { bypass: boolean; versions: { key: string; versionId: string | null; unit: string }[] }
    >();
    for (const unit of units) {
      if (failed.has(unit.unitId)) continue;
      for (const target of unit.objects.targets) {
        const entry = perBucket.get(target.bucket) ?? { bypass: target.bypassGovernance, versions: [] };
        for (const v of versionsOf.get(unit.unitId) ?? []) {
          if (v.bucket === target.bucket && target.prefixes.some((p) => underPrefix(v.key, p))) {
            entry.versions.push({ key: v.key, versionId: v.versionId, unit: unit.unitId });
          }
        }
        perBucket.set(target.bucket, entry);
      }
    }
    for (const [bucket, { bypass, versions }] of perBucket) {
      const owner = new Map(versions.map((v) => [versionRef(bucket, v.key, v.versionId), v.unit]));
      const refused = await deleteVersions(s3, bucket, versions, { bypassGovernance: bypass });
      for (const r of refused) {
        if (GONE.has(r.code)) continue;
        const unit = owner.get(versionRef(bucket, r.key, r.versionId)) ?? owner.get(versionRef(bucket, r.key, null));
        if (unit && !failed.has(unit)) {
          failed.set(unit, `storage refused to delete ${bucket}/${r.key} version ${r.versionId ?? '-'} (${r.code})`);
        }
      }
    }
    onProgress('verifying');
    remaining = await inventory(
      s3,
      units.filter((u) => !failed.has(u.unitId)).map((u) => ({ ...u, objects: { ...u.objects, known: [] } })),
      true,
    );
    let any = false;
    for (const [id, versions] of remaining) {
      if (versions.length === 0) continue;
      any = true;
      const seen = new Set(versionsOf.get(id)!.map((v) => versionRef(v.bucket, v.key, v.versionId)));
      for (const v of versions) if (!seen.has(versionRef(v.bucket, v.key, v.versionId))) versionsOf.get(id)!.push(v);
    }
    if (!any) break;
  }
  const outcomes: UnitOutcome[] = [];
  await inLanes(
    units.filter((u) => !failed.has(u.unitId)),
    8,
    async (unit) => {
      const absence = await verifyAbsence(s3, unit.objects, remaining.get(unit.unitId) ?? []);
      outcomes.push({ unitId: unit.unitId, versions: versionsOf.get(unit.unitId)!, ...absence });
    },
  );
  outcomes.sort((a, b) => a.unitId.localeCompare(b.unitId));
  const done: ErasureDone = {
    completedAt: new Date().toISOString(),
    outcomes,
    failed: [...failed].map(([unitId, reason]) => ({ unitId, reason })),
  };
  await writeJournal(s3, journalBucket, { ...journal, done }, journalKey);
  return done;
}

/** The units with the digests their dataset records state (the outputs they list, and the records themselves). */
async function withRecordDigests(s3: S3Client, units: ObjectUnit[]): Promise<ObjectUnit[]> {
  const byBucket = new Map<string, string[]>();
  for (const u of units)
    for (const r of u.objects.records) byBucket.set(r.bucket, [...(byBucket.get(r.bucket) ?? []), r.key]);
  const read = new Map<string, ObjectErasure['known']>();
  for (const [bucket, keys] of byBucket) {
    for (const { record, version, key } of await readDatasetRecords(s3, bucket, keys)) {
      read.set(`${bucket}/${key}`, [
        { bucket, key, versionId: version.versionId, sha256: version.sha256 },
        ...record.outputs.map((o) => ({ bucket: o.bucket, key: o.key, versionId: o.versionId, sha256: o.sha256 })),
      ]);
    }
  }
  return units.map((unit) =>
    unit.objects.records.length === 0
      ? unit
      : {
          ...unit,
          objects: {
            ...unit.objects,
            known: [
              ...unit.objects.known,
              ...unit.objects.records.flatMap((r) => read.get(`${r.bucket}/${r.key}`) ?? []),
            ],
          },
        },
  );
}
