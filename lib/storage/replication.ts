import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { z } from 'zod';
import { Sha256HexSchema } from '../../schemas/common';
import { inLanes } from '../runtime/lanes';
import { getJson, putJson } from './json';
import { isNotFound } from './s3';
import { deleteVersions, listVersions, type StoredVersion } from './versions';

/**
 * The disaster-recovery site's own bookkeeping, in its copy of the catalog bucket: never replicated, never pruned.
 * Replication manifests and the DR side's erasure journals live here.
 */
export const REPLICATION_PREFIX = 'replication/';

/** Metadata every replica carries: the primary version it copies, so a replica the manifest lost is recognised. */
export const REPLICA_OF = 'steward-replica-of';

/** A replica whose source version has been gone this long is deleted by replication itself (see `planReplication`). */
export const PRUNE_GRACE_MS = 60_000;

/** How often a pass that copies saves the manifest: a crash repeats at most this much copying. */
const CHECKPOINT_MS = 10_000;

/** Objects up to this size are copied from memory with a SHA-256 storage verifies; larger ones stream and are read back. */
const IN_MEMORY_BYTES = 64 * 1024 * 1024;

/** The DR site's own journal of an erasure's deletions there (the primary's journal is replicated beside it). */
export function drErasureJournalKey(operationId: string): string {
  return `${REPLICATION_PREFIX}erasure-journals/${operationId}.json`;
}

export function manifestKey(bucket: string): string {
  return `${REPLICATION_PREFIX}manifests/${bucket}.json`;
}

const ManifestEntrySchema = z.object({
  key: z.string(),
  source: z.string().nullable(),
  /** The replica's version id at the DR site. */
  replica: z.string().nullable(),
  deleteMarker: z.boolean(),
  sha256: Sha256HexSchema.nullable(),
  bytes: z.number().int().nonnegative(),
  copiedAt: z.iso.datetime(),
  /** When a pass first found the source version gone (deleted at the primary); the replica goes after the grace. */
  sourceGoneSince: z.iso.datetime().optional(),
});
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/**
 * One bucket's replicas at the site copied to, by the source version each copies (`versionRef`). It lives at the site
 * copied to: the DR site, or the primary after `steward dr failover` (see `turnManifest`).
 */
export const ManifestSchema = z.object({
  format: z.literal('steward-replication-manifest/1'),
  bucket: z.string(),
  /** When a pass last wrote it: of the two sites' manifests, the newer says what each site holds. */
  savedAt: z.iso.datetime().optional(),
  entries: z.record(z.string(), ManifestEntrySchema),
  /**
   * Versions (`versionRef`) neither copied nor pruned: at the site a failover left, versions it held that never reached
   * the other site. They stay where they are, for ops to look at, and are counted in every pass.
   */
  held: z.array(z.string()).optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

/**
 * A manifest of the other direction, turned to this one after a failover or failback: each entry's replica becomes
 * its source and the other way round. An entry whose source was already gone names a replica of deleted data: it is
 * returned to be deleted at once (from the site now copied from) rather than copied back.
 */
export function turnManifest(m: Manifest): {
  manifest: Manifest;
  doomed: { key: string; versionId: string | null }[];
} {
  const entries: Manifest['entries'] = {};
  const doomed: { key: string; versionId: string | null }[] = [];
  for (const e of Object.values(m.entries)) {
    if (e.sourceGoneSince) {
      doomed.push({ key: e.key, versionId: e.replica });
      continue;
    }
    entries[versionRef(e.key, e.replica)] = {
      key: e.key,
      source: e.replica,
      replica: e.source,
      deleteMarker: e.deleteMarker,
      sha256: e.sha256,
      bytes: e.bytes,
      copiedAt: e.copiedAt,
    };
  }
  return {
    manifest: { format: m.format, bucket: m.bucket, entries, ...(m.held ? { held: [...m.held] } : {}) },
    doomed,
  };
}

export function versionRef(key: string, versionId: string | null): string {
  return `${key}\n${versionId ?? 'null'}`;
}

export interface ReplicationPlan {
  /** Primary versions without a replica, oldest first (a key's versions keep their order at the DR site). */
  copy: StoredVersion[];
  /** Entries whose replica is to be deleted: the source has been gone for the grace period. */
  prune: [string, ManifestEntry][];
  /** Entries whose replica is gone from the DR site (deleted there): dropped, and copied again if the source is not. */
  drop: string[];
  /** Entries whose source has just been found gone: the time is recorded. */
  sourceGone: string[];
  /** Entries whose source is back (a listing that missed it): the time is cleared. */
  sourceBack: string[];
  /** DR versions no entry names: a replica a crash kept out of the manifest, or something written at the DR site. */
  unknown: StoredVersion[];
}

/**
 * What a pass does to one bucket, from the two sites' listings and the manifest. A source version deleted at the
 * primary loses its replica only after `graceMs`: an erasure deletes the DR site's versions itself, and certifies them,
 * in that time; replication removes what other deletions (older versions of a rewritten object, released claims) leave.
 */
export function planReplication(
  primary: readonly StoredVersion[],
  dr: readonly StoredVersion[],
  manifest: Manifest,
  now: Date,
  graceMs = PRUNE_GRACE_MS,
): ReplicationPlan {
  const sources = new Set(primary.map((v) => versionRef(v.key, v.versionId)));
  const replicas = new Set(dr.map((v) => versionRef(v.key, v.versionId)));
  const held = new Set(manifest.held ?? []);
  const plan: ReplicationPlan = { copy: [], prune: [], drop: [], sourceGone: [], sourceBack: [], unknown: [] };
  const named = new Set<string>();
  for (const [ref, entry] of Object.entries(manifest.entries)) {
    const replica = versionRef(entry.key, entry.replica);
    if (!replicas.has(replica)) {
      plan.drop.push(ref);
      continue;
    }
    named.add(replica);
    if (sources.has(ref)) {
      if (entry.sourceGoneSince) plan.sourceBack.push(ref);
    } else if (!entry.sourceGoneSince) {
      plan.sourceGone.push(ref);
    } else if (now.getTime() - Date.parse(entry.sourceGoneSince) >= graceMs) {
      plan.prune.push([ref, entry]);
    }
  }
  const kept = new Set(Object.keys(manifest.entries).filter((ref) => !plan.drop.includes(ref)));
  plan.copy = primary
    .map((v, index) => ({ v, index }))
    .filter(({ v }) => !kept.has(versionRef(v.key, v.versionId)) && !held.has(versionRef(v.key, v.versionId)))
    // Oldest first; S3 lists a key's versions newest first, so a tie keeps the later-listed one first.
    .sort((a, b) => (a.v.lastModified ?? '').localeCompare(b.v.lastModified ?? '') || b.index - a.index)
    .map(({ v }) => v);
  plan.unknown = dr.filter(
    (v) => !named.has(versionRef(v.key, v.versionId)) && !held.has(versionRef(v.key, v.versionId)),
  );
  return plan;
}

export interface BucketPass {
  bucket: string;
  /** Primary versions and delete markers listed. */
  listed: number;
  copied: number;
  copiedBytes: number;
  pruned: number;
  /** Sources deleted while their copy was made: the copy was deleted again. */
  vanished: number;
  /** Replicas a crash kept out of the manifest, taken back in. */
  adopted: number;
  /** DR versions that copy nothing at the primary (written at the DR site itself): left alone, counted. */
  foreign: number;
  /** Versions at the primary still without a replica when the pass ended. */
  pending: number;
  /** Versions kept at one site only since a failover (the manifest's `held`). */
  held: number;
  /** The pass took over the other direction's manifest: the first after a failover or failback. */
  turned: boolean;
}

/**
 * The other site of a jurisdiction, as its workers reach it: replicated to, and erased at, besides the one they write to
 * (the primary, or the DR site after `steward dr failover`). Both are named as the jurisdiction file names them.
 */
export interface StandbySite {
  s3: S3Client;
  endpoint: string;
  names: { active: string; standby: string };
}

export interface ReplicaSites {
  primary: S3Client;
  dr: S3Client;
}

/** Reads a source version and writes it to the DR site, verified by SHA-256. Returns the replica's version and digest. */
async function copyVersion(
  sites: ReplicaSites,
  bucket: string,
  version: StoredVersion,
): Promise<{ replica: string | null; sha256: string | null } | 'gone'> {
  if (version.deleteMarker) {
    const res = await sites.dr.send(new DeleteObjectCommand({ Bucket: bucket, Key: version.key }));
    return { replica: res.VersionId ?? null, sha256: null };
  }
  let source;
  try {
    source = await sites.primary.send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: version.key,
        VersionId: version.versionId ?? undefined,
        ChecksumMode: 'ENABLED',
      }),
    );
  } catch (error) {
    if (isNotFound(error) || (error as { name?: string }).name === 'NoSuchVersion') return 'gone';
    throw error;
  }
  const stated =
    source.ChecksumSHA256 && !source.ChecksumSHA256.includes('-')
      ? Buffer.from(source.ChecksumSHA256, 'base64').toString('hex')
      : null;
  const common: Omit<PutObjectCommandInput, 'Body'> = {
    Bucket: bucket,
    Key: version.key,
    ContentType: source.ContentType,
    Metadata: { ...source.Metadata, [REPLICA_OF]: version.versionId ?? 'null' },
    ...(source.ObjectLockMode && source.ObjectLockRetainUntilDate
      ? { ObjectLockMode: source.ObjectLockMode, ObjectLockRetainUntilDate: source.ObjectLockRetainUntilDate }
      : {}),
    ...(source.ObjectLockLegalHoldStatus ? { ObjectLockLegalHoldStatus: source.ObjectLockLegalHoldStatus } : {}),
  };
  const refuse = (sha256: string) => {
    throw new Error(
      `${bucket}/${version.key} version ${version.versionId}: read SHA-256 ${sha256}, but the primary states ${stated}`,
    );
  };
  const size = source.ContentLength ?? version.bytes;
  if (size <= IN_MEMORY_BYTES) {
    const body = Buffer.from(await source.Body!.transformToByteArray());
    // The digest the primary states is the one sent: the DR site checks the body against it and refuses a copy that
    // does not match (a version stored without one is hashed here).
    const sha256 = stated ?? createHash('sha256').update(body).digest('hex');
    const res = await sites.dr.send(
      new PutObjectCommand({
        ...common,
        Body: body,
        ContentLength: body.length,
        ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
      }),
    );
    return { replica: res.VersionId ?? null, sha256 };
  }
  const hash = createHash('sha256');
  const tee = new PassThrough();
  const body = source.Body as Readable;
  body.on('error', (error) => tee.destroy(error));
  body.on('data', (chunk: Buffer) => hash.update(chunk)).pipe(tee);
  const res = await sites.dr.send(new PutObjectCommand({ ...common, Body: tee, ContentLength: size }));
  const sha256 = hash.digest('hex');
  if (stated && stated !== sha256) refuse(sha256);
  const back = await sites.dr.send(
    new GetObjectCommand({ Bucket: bucket, Key: version.key, VersionId: res.VersionId ?? undefined }),
  );
  const readBack = createHash('sha256');
  for await (const chunk of back.Body as Readable) readBack.update(chunk as Buffer);
  if (readBack.digest('hex') !== sha256) {
    throw new Error(`${bucket}/${version.key}: the copy at the DR site does not read back with SHA-256 ${sha256}`);
  }
  return { replica: res.VersionId ?? null, sha256 };
}

/**
 * One pass over one bucket: every primary version without a replica is copied (a key's versions in order), replicas of
 * versions deleted at the primary are deleted after the grace, and the manifest at the DR site records the outcome
 * (checkpointed as copies go, so a crash repeats little). A copy whose source is deleted while it is made is deleted
 * again at the end of the pass. Only the pass writes the manifest: one replication workflow per jurisdiction runs it.
 */
export async function replicateBucket(
  sites: ReplicaSites,
  bucket: string,
  catalogBucket: string,
  now: () => Date = () => new Date(),
  onProgress: (copied: number) => void = () => {},
): Promise<BucketPass> {
  const own = (v: StoredVersion) => !(bucket === catalogBucket && v.key.startsWith(REPLICATION_PREFIX));
  let primary = (await listVersions(sites.primary, bucket, '')).filter(own);
  const dr = (await listVersions(sites.dr, bucket, '')).filter(own);
  const stored = await getJson(sites.dr, catalogBucket, manifestKey(bucket), ManifestSchema);
  // The manifest the other direction kept at the site now copied from: newer than this one after a failover.
  const other = await getJson(sites.primary, catalogBucket, manifestKey(bucket), ManifestSchema);
  const turned = other !== undefined && (stored === undefined || (other.savedAt ?? '') > (stored.savedAt ?? ''));
  let manifest: Manifest = stored ?? { format: 'steward-replication-manifest/1', bucket, entries: {} };
  let doomedCount = 0;
  if (turned) {
    const turnedOver = turnManifest(other);
    manifest = turnedOver.manifest;
    if (turnedOver.doomed.length > 0) {
      const refused = await deleteVersions(sites.primary, bucket, turnedOver.doomed, { bypassGovernance: true });
      const gone = new Set(
        turnedOver.doomed
          .filter(
            (d) => !refused.some((r) => r.key === d.key && r.versionId === d.versionId && r.code !== 'NoSuchVersion'),
          )
          .map((d) => versionRef(d.key, d.versionId)),
      );
      primary = primary.filter((v) => !gone.has(versionRef(v.key, v.versionId)));
      doomedCount = gone.size;
    }
  }
  const listedRefs = new Set([...primary, ...dr].map((v) => versionRef(v.key, v.versionId)));
  if (manifest.held) manifest.held = manifest.held.filter((ref) => listedRefs.has(ref));
  const plan = planReplication(primary, dr, manifest, now());
  const result: BucketPass = {
    bucket,
    listed: primary.length,
    copied: 0,
    copiedBytes: 0,
    pruned: 0,
    vanished: 0,
    adopted: 0,
    foreign: 0,
    pending: 0,
    held: 0,
    turned,
  };
  result.pruned += doomedCount;
  let changed = turned || plan.drop.length + plan.sourceGone.length + plan.sourceBack.length > 0;
  for (const ref of plan.drop) delete manifest.entries[ref];
  const at = now().toISOString();
  for (const ref of plan.sourceGone) manifest.entries[ref]!.sourceGoneSince = at;
  for (const ref of plan.sourceBack) delete manifest.entries[ref]!.sourceGoneSince;

  if (plan.prune.length > 0) {
    const refused = await deleteVersions(
      sites.dr,
      bucket,
      plan.prune.map(([, e]) => ({ key: e.key, versionId: e.replica })),
      { bypassGovernance: true },
    );
    const kept = new Set(refused.filter((r) => r.code !== 'NoSuchVersion').map((r) => versionRef(r.key, r.versionId)));
    for (const [ref, entry] of plan.prune) {
      if (kept.has(versionRef(entry.key, entry.replica))) continue;
      delete manifest.entries[ref];
      result.pruned += 1;
    }
    changed = true;
  }

  if (turned) await takeOver(sites, bucket, plan, manifest, at);

  // A replica a crash kept out of the manifest names its source: taken back in when that source still lacks one.
  const copyRefs = new Set(plan.copy.map((v) => versionRef(v.key, v.versionId)));
  const orphans: { key: string; versionId: string | null }[] = [];
  await inLanes(plan.unknown, 8, async (v) => {
    if (v.deleteMarker) {
      result.foreign += 1;
      return;
    }
    const head = await sites.dr
      .send(new HeadObjectCommand({ Bucket: bucket, Key: v.key, VersionId: v.versionId ?? undefined }))
      .catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
    const of = head?.Metadata?.[REPLICA_OF];
    if (!head || of === undefined) {
      if (head) result.foreign += 1;
      return;
    }
    const ref = versionRef(v.key, of === 'null' ? null : of);
    if (copyRefs.has(ref)) {
      copyRefs.delete(ref);
      manifest.entries[ref] = {
        key: v.key,
        source: of === 'null' ? null : of,
        replica: v.versionId,
        deleteMarker: false,
        sha256: head.ChecksumSHA256 ? Buffer.from(head.ChecksumSHA256, 'base64').toString('hex') : null,
        bytes: v.bytes,
        copiedAt: at,
      };
      result.adopted += 1;
      changed = true;
    } else {
      orphans.push({ key: v.key, versionId: v.versionId });
    }
  });
  if (orphans.length > 0) {
    const refused = await deleteVersions(sites.dr, bucket, orphans, { bypassGovernance: true });
    result.pruned += orphans.length - refused.filter((r) => r.code !== 'NoSuchVersion').length;
  }

  // Saves one after another: each writes the manifest as it is when it starts, so the newest state is written last.
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    saving = saving.then(async () => {
      manifest.savedAt = now().toISOString();
      const { versionId } = await putJson(sites.dr, catalogBucket, manifestKey(bucket), ManifestSchema, manifest);
      // Only the newest manifest is kept: older versions would pile up a version per pass.
      const old = (await listVersions(sites.dr, catalogBucket, manifestKey(bucket))).filter(
        (v) => v.key === manifestKey(bucket) && v.versionId !== versionId,
      );
      if (old.length > 0) await deleteVersions(sites.dr, catalogBucket, old);
    });
    return saving;
  };
  // Each key's versions in order, keys side by side.
  const byKey = new Map<string, StoredVersion[]>();
  for (const v of plan.copy) {
    if (copyRefs.has(versionRef(v.key, v.versionId))) byKey.set(v.key, [...(byKey.get(v.key) ?? []), v]);
  }
  let savedAt = Date.now();
  await inLanes([...byKey.values()], 8, async (versions) => {
    for (const v of versions) {
      const copied = await copyVersion(sites, bucket, v);
      if (copied === 'gone') continue;
      manifest.entries[versionRef(v.key, v.versionId)] = {
        key: v.key,
        source: v.versionId,
        replica: copied.replica,
        deleteMarker: v.deleteMarker,
        sha256: copied.sha256,
        bytes: v.bytes,
        copiedAt: now().toISOString(),
      };
      result.copied += 1;
      result.copiedBytes += v.bytes;
      changed = true;
      onProgress(result.copied);
      if (Date.now() - savedAt >= CHECKPOINT_MS) {
        savedAt = Date.now();
        await save();
      }
    }
  });
  // A source deleted while the pass copied it (an erasure at the primary, say) loses its fresh copy at once: the
  // primary listed again after the copies, one listing in place of a HEAD per copy.
  if (result.copied > 0) {
    const still = new Set(
      (await listVersions(sites.primary, bucket, '')).filter(own).map((v) => versionRef(v.key, v.versionId)),
    );
    const vanished = plan.copy.filter((v) => {
      const ref = versionRef(v.key, v.versionId);
      return manifest.entries[ref] && !manifest.entries[ref]!.sourceGoneSince && !still.has(ref);
    });
    if (vanished.length > 0) {
      await deleteVersions(
        sites.dr,
        bucket,
        vanished.map((v) => ({ key: v.key, versionId: manifest.entries[versionRef(v.key, v.versionId)]!.replica })),
        { bypassGovernance: true },
      );
      for (const v of vanished) delete manifest.entries[versionRef(v.key, v.versionId)];
      result.vanished += vanished.length;
      result.copied -= vanished.length;
      result.copiedBytes -= vanished.reduce((n, v) => n + v.bytes, 0);
    }
  }
  if (changed) await save();
  const held = new Set(manifest.held ?? []);
  result.pending = primary.filter(
    (v) => !manifest.entries[versionRef(v.key, v.versionId)] && !held.has(versionRef(v.key, v.versionId)),
  ).length;
  result.held = held.size;
  return result;
}

/**
 * The first pass after a failover or failback, once the manifest is turned: a version at the site copied from that is
 * itself a replica of a version the site copied to still holds (its `steward-replica-of` names it, and the turned
 * manifest missed it: a crash before a checkpoint) is paired with it, not copied back. Whatever else the site copied to
 * holds that pairs with nothing (versions written there before the failover that never reached the other site) is
 * held: kept where it is, neither copied nor deleted.
 */
async function takeOver(
  sites: ReplicaSites,
  bucket: string,
  plan: ReplicationPlan,
  manifest: Manifest,
  at: string,
): Promise<void> {
  const waiting = new Map(plan.unknown.map((v) => [versionRef(v.key, v.versionId), v]));
  const paired = new Set<string>();
  await inLanes(
    plan.copy.filter((v) => !v.deleteMarker),
    8,
    async (v) => {
      const head = await sites.primary
        .send(new HeadObjectCommand({ Bucket: bucket, Key: v.key, VersionId: v.versionId ?? undefined }))
        .catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
      const of = head?.Metadata?.[REPLICA_OF];
      const target = of === undefined ? undefined : waiting.get(versionRef(v.key, of === 'null' ? null : of));
      if (!target) return;
      waiting.delete(versionRef(target.key, target.versionId));
      paired.add(versionRef(v.key, v.versionId));
      manifest.entries[versionRef(v.key, v.versionId)] = {
        key: v.key,
        source: v.versionId,
        replica: target.versionId,
        deleteMarker: false,
        sha256: head?.ChecksumSHA256 ? Buffer.from(head.ChecksumSHA256, 'base64').toString('hex') : null,
        bytes: v.bytes,
        copiedAt: at,
      };
    },
  );
  plan.copy = plan.copy.filter((v) => !paired.has(versionRef(v.key, v.versionId)));
  manifest.held = [...new Set([...(manifest.held ?? []), ...waiting.keys()])];
  plan.unknown = [];
}
