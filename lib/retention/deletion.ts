import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import {
  DeletedVersionSchema,
  DeletionOutcomeSchema,
  type DeletedVersion,
  type DeletionOutcome,
} from '../../schemas/retention';
import { getObjectOrUndefined } from '../storage/objects';
import { isNotFound } from '../storage/s3';
import { deleteVersions, listVersionsOf, versionSha256, type StoredVersion } from '../storage/versions';
import { inLanes } from '../runtime/lanes';
import { JOURNAL_PREFIX } from './catalog';

/** What is deleted together: a dataset's or a package's prefixes, per bucket. */
export interface DeletionUnit {
  id: string;
  /** Prefixes (ending in `/`) or exact keys, per bucket. */
  targets: { bucket: string; prefixes: string[]; bypassGovernance: boolean }[];
  /** SHA-256 already known for versions (`bucket/key@versionId`), e.g. from the dataset record. */
  known: Map<string, string>;
  /** Keys that must read as absent afterwards (HEAD → 404). */
  head: { bucket: string; key: string }[];
}

const JournalSchema = z.object({
  format: z.literal('steward-deletion-journal/1'),
  startedAt: z.iso.datetime(),
  units: z.array(z.object({ id: z.string(), versions: z.array(DeletedVersionSchema) })),
});

const OutcomesSchema = z.object({
  format: z.literal('steward-deletion-outcomes/1'),
  outcomes: z.array(DeletionOutcomeSchema),
  failed: z.array(z.object({ id: z.string(), reason: z.string() })),
});
export type DeletionOutcomes = z.infer<typeof OutcomesSchema>;

export function journalKey(sweepId: string, batch: string): string {
  return `${JOURNAL_PREFIX}${sweepId}/${batch}.journal.json`;
}

export function outcomesKey(sweepId: string, batch: string): string {
  return `${JOURNAL_PREFIX}${sweepId}/${batch}.outcomes.json`;
}

export async function readOutcomes(s3: S3Client, bucket: string, key: string): Promise<DeletionOutcomes | undefined> {
  const raw = await getObjectOrUndefined(s3, bucket, key);
  return raw ? OutcomesSchema.parse(JSON.parse(raw.toString('utf8'))) : undefined;
}

function ref(bucket: string, key: string, versionId: string | null): string {
  return `${bucket}/${key}@${versionId ?? 'null'}`;
}

/** Every version under each unit's targets, with its SHA-256 (known, uploaded with it, or read). */
async function inventory(s3: S3Client, units: DeletionUnit[]): Promise<Map<string, DeletedVersion[]>> {
  const found = new Map<string, DeletedVersion[]>(units.map((u) => [u.id, []]));
  const byBucket = new Map<string, { unit: DeletionUnit; prefix: string }[]>();
  for (const unit of units) {
    for (const target of unit.targets) {
      for (const prefix of target.prefixes) {
        const list = byBucket.get(target.bucket) ?? [];
        list.push({ unit, prefix });
        byBucket.set(target.bucket, list);
      }
    }
  }
  const pending: { bucket: string; version: StoredVersion; into: DeletedVersion[]; known?: string }[] = [];
  for (const [bucket, entries] of byBucket) {
    const listed = await listVersionsOf(
      s3,
      bucket,
      entries.map((e) => e.prefix),
    );
    for (const { unit, prefix } of entries) {
      for (const version of listed.get(prefix) ?? []) {
        const known = unit.known.get(ref(bucket, version.key, version.versionId));
        pending.push({ bucket, version, into: found.get(unit.id)!, ...(known ? { known } : {}) });
      }
    }
  }
  await inLanes(pending, 8, async ({ bucket, version, into, known }) => {
    const sha256 = known ?? (await versionSha256(s3, bucket, version).catch(() => null));
    into.push({
      bucket,
      key: version.key,
      versionId: version.versionId,
      bytes: version.bytes,
      sha256,
      deleteMarker: version.deleteMarker,
    });
  });
  for (const versions of found.values()) {
    versions.sort((a, b) => `${a.bucket}/${a.key}`.localeCompare(`${b.bucket}/${b.key}`));
  }
  return found;
}

const GONE = new Set(['NoSuchVersion', 'NoSuchKey']);

/**
 * Deletes every version under each unit's targets and verifies that none is left (ListObjectVersions) and that the
 * keys to check read as absent (HEAD). First writes a journal of what it is about to delete, with each version's
 * SHA-256, so a retry after a crash deletes what is left and still certifies everything; writes the outcomes last, and
 * a retry finding them returns them as they are.
 */
export async function deleteUnits(
  s3: S3Client,
  journalBucket: string,
  sweepId: string,
  batch: string,
  units: DeletionUnit[],
  onProgress: (phase: string) => void = () => {},
): Promise<DeletionOutcomes> {
  const doneKey = outcomesKey(sweepId, batch);
  const earlier = await readOutcomes(s3, journalBucket, doneKey);
  if (earlier) return earlier;
  const jKey = journalKey(sweepId, batch);
  const stored = await getObjectOrUndefined(s3, journalBucket, jKey);
  let journal: z.infer<typeof JournalSchema>;
  if (stored) journal = JournalSchema.parse(JSON.parse(stored.toString('utf8')));
  else {
    onProgress('listing versions');
    const found = await inventory(s3, units);
    journal = {
      format: 'steward-deletion-journal/1',
      startedAt: new Date().toISOString(),
      units: units.map((u) => ({ id: u.id, versions: found.get(u.id)! })),
    };
    await s3.send(
      new PutObjectCommand({
        Bucket: journalBucket,
        Key: jKey,
        Body: JSON.stringify(journal),
        ContentType: 'application/json',
      }),
    );
  }
  const versionsOf = new Map(journal.units.map((u) => [u.id, [...u.versions]]));
  const failed = new Map<string, string>();
  let remaining = new Map<string, DeletedVersion[]>();
  // Up to three rounds: a version that appeared meanwhile (none should: the unit is claimed) is deleted too.
  for (let round = 0; round < 3; round++) {
    onProgress(round === 0 ? 'deleting' : 'deleting what remained');
    const perBucket = new Map<
      string,
      { bypass: boolean; versions: { key: string; versionId: string | null; unit: string }[] }
    >();
    for (const unit of units) {
      if (failed.has(unit.id)) continue;
      for (const target of unit.targets) {
        const entry = perBucket.get(target.bucket) ?? { bypass: target.bypassGovernance, versions: [] };
        for (const v of versionsOf.get(unit.id)!) {
          if (
            v.bucket === target.bucket &&
            target.prefixes.some((p) => (p.endsWith('/') ? v.key.startsWith(p) : v.key === p))
          ) {
            entry.versions.push({ key: v.key, versionId: v.versionId, unit: unit.id });
          }
        }
        perBucket.set(target.bucket, entry);
      }
    }
    for (const [bucket, { bypass, versions }] of perBucket) {
      const owner = new Map(versions.map((v) => [ref(bucket, v.key, v.versionId), v.unit]));
      const refused = await deleteVersions(s3, bucket, versions, { bypassGovernance: bypass });
      for (const r of refused) {
        if (GONE.has(r.code)) continue;
        const unit = owner.get(ref(bucket, r.key, r.versionId)) ?? owner.get(ref(bucket, r.key, null));
        if (unit && !failed.has(unit)) {
          failed.set(unit, `storage refused to delete ${bucket}/${r.key} version ${r.versionId ?? '-'} (${r.code})`);
        }
      }
    }
    onProgress('verifying');
    remaining = await inventory(
      s3,
      units.filter((u) => !failed.has(u.id)).map((u) => ({ ...u, known: new Map() })),
    );
    let any = false;
    for (const [id, versions] of remaining) {
      if (versions.length === 0) continue;
      any = true;
      const seen = new Set(versionsOf.get(id)!.map((v) => ref(v.bucket, v.key, v.versionId)));
      for (const v of versions) if (!seen.has(ref(v.bucket, v.key, v.versionId))) versionsOf.get(id)!.push(v);
    }
    if (!any) break;
  }
  const completedAt = new Date().toISOString();
  const outcomes: DeletionOutcome[] = [];
  await inLanes(
    units.filter((u) => !failed.has(u.id)),
    8,
    async (unit) => {
      const left = remaining.get(unit.id) ?? [];
      const present: string[] = [];
      for (const { bucket, key } of unit.head) {
        try {
          await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
          present.push(`${bucket}/${key}`);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      const versions = versionsOf.get(unit.id)!;
      outcomes.push({
        id: unit.id,
        versions,
        verified: left.length === 0 && present.length === 0,
        verification: [
          `ListObjectVersions under ${unit.targets.flatMap((t) => t.prefixes.map((p) => `s3://${t.bucket}/${p}`)).join(', ')}: ${left.length} versions or delete markers remain`,
          unit.head.length > 0
            ? `HEAD ${unit.head.map((h) => `s3://${h.bucket}/${h.key}`).join(', ')}: ${present.length === 0 ? 'not found' : `still found: ${present.join(', ')}`}`
            : 'no key to HEAD',
        ],
        startedAt: journal.startedAt,
        completedAt,
      });
    },
  );
  outcomes.sort((a, b) => a.id.localeCompare(b.id));
  const result: DeletionOutcomes = {
    format: 'steward-deletion-outcomes/1',
    outcomes,
    failed: [...failed].map(([id, reason]) => ({ id, reason })),
  };
  await s3.send(
    new PutObjectCommand({
      Bucket: journalBucket,
      Key: doneKey,
      Body: JSON.stringify(result),
      ContentType: 'application/json',
    }),
  );
  return result;
}
