import { createHash } from 'node:crypto';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { z } from 'zod';
import {
  CarriedTokensSchema,
  OpenRequestMarkerSchema,
  RestrictionSchema,
  TombstoneSchema,
  type CarriedTokens,
  type OpenRequestMarker,
  type Restriction,
  type Tombstone,
} from '../../schemas/subject-request';
import { getJson, putJson } from './json';
import {
  CARRIED_TOKENS_PREFIX,
  carriedTokensKey,
  openRequestKey,
  RESTRICTIONS_PREFIX,
  restrictionKey,
  TOMBSTONES_PREFIX,
  tombstoneKey,
} from './layout';
import { listObjects } from './objects';
import { inLanes } from '../runtime/lanes';

/** The open request of a kind for a subject (by keyed digest), if one is open. */
export function readOpenRequest(
  s3: S3Client,
  bucket: string,
  kind: string,
  subjectDigest: string,
): Promise<OpenRequestMarker | undefined> {
  return getJson(s3, bucket, openRequestKey(kind, subjectDigest), OpenRequestMarkerSchema);
}

export async function writeOpenRequest(s3: S3Client, bucket: string, marker: OpenRequestMarker): Promise<void> {
  await putJson(s3, bucket, openRequestKey(marker.kind, marker.subjectDigest), OpenRequestMarkerSchema, marker);
}

/** Closes the open request's marker (the versioned catalog keeps the earlier versions as history). */
export async function removeOpenRequest(
  s3: S3Client,
  bucket: string,
  kind: string,
  subjectDigest: string,
): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: openRequestKey(kind, subjectDigest) }));
}

export function readRestriction(s3: S3Client, bucket: string, requestId: string): Promise<Restriction | undefined> {
  return getJson(s3, bucket, restrictionKey(requestId), RestrictionSchema);
}

export async function writeRestriction(s3: S3Client, bucket: string, restriction: Restriction): Promise<void> {
  await putJson(s3, bucket, restrictionKey(restriction.requestId), RestrictionSchema, restriction);
}

async function readAll<T>(s3: S3Client, bucket: string, prefix: string, schema: z.ZodType<T>): Promise<T[]> {
  const keys = (await listObjects(s3, bucket, prefix)).map((o) => o.key);
  const records: T[] = [];
  await inLanes(keys, 8, async (key) => {
    const record = await getJson(s3, bucket, key, schema);
    if (record) records.push(record as T);
  });
  return records;
}

/** Why processing leaves a subject's rows out: their restriction is in force, or they were erased. */
export type SubjectExclusion = 'restricted' | 'erased';

/**
 * The subjects processing leaves out, per study and token: those whose restriction is in force, and those erased
 * (rows kept under a duty to keep are still not processed). Reads one small object per restriction and erasure ever
 * recorded, not the data.
 */
export async function subjectExclusions(
  s3: S3Client,
  bucket: string,
): Promise<Map<string, Map<string, SubjectExclusion>>> {
  const byStudy = new Map<string, Map<string, SubjectExclusion>>();
  const add = (studyId: string, tokens: string[], why: SubjectExclusion) => {
    const map = byStudy.get(studyId) ?? new Map<string, SubjectExclusion>();
    for (const t of tokens) if (map.get(t) !== 'erased') map.set(t, why);
    byStudy.set(studyId, map);
  };
  for (const r of await readAll(s3, bucket, RESTRICTIONS_PREFIX, RestrictionSchema)) {
    if (!r.liftedAt) for (const s of r.studies) add(s.studyId, s.tokens, 'restricted');
  }
  for (const t of await readAll(s3, bucket, TOMBSTONES_PREFIX, TombstoneSchema)) {
    for (const s of t.studies) add(s.studyId, s.tokens, 'erased');
  }
  // A key migration's carried tokens exclude as the token they were carried from does, through every later migration.
  const carried = (await readAll(s3, bucket, CARRIED_TOKENS_PREFIX, CarriedTokensSchema)).sort(
    (a, b) => a.toVersion - b.toVersion,
  );
  for (const part of carried) {
    const map = byStudy.get(part.studyId);
    if (!map) continue;
    for (const { from, to } of part.entries) {
      const why = map.get(from);
      if (why && map.get(to) !== 'erased') map.set(to, why);
    }
  }
  return byStudy;
}

/**
 * Records the tokens a key migration gave restricted or erased subjects, before the re-keyed data is stored. Named by
 * its content, so a retry rewrites the same record and another migration never replaces it.
 */
export async function writeCarriedTokens(
  s3: S3Client,
  bucket: string,
  part: Omit<CarriedTokens, 'format' | 'entries'> & { entries: readonly CarriedTokens['entries'][number][] },
): Promise<void> {
  if (part.entries.length === 0) return;
  const entries = [...part.entries].sort((a, b) => a.from.localeCompare(b.from));
  const ref = JSON.stringify([part.studyId, part.toVersion, entries]);
  const partId = createHash('sha256').update(ref).digest('hex').slice(0, 32);
  await putJson(s3, bucket, carriedTokensKey(partId), CarriedTokensSchema, {
    format: 'steward-carried-tokens/1',
    ...part,
    entries,
  });
}

/**
 * The restrictions in force that name their subject's keyed digest, by digest: for each study, a token the
 * restriction names, which a token of the subject under a later key version is carried from.
 */
export async function restrictedDigests(
  s3: S3Client,
  bucket: string,
): Promise<Map<string, Map<string, { from: string; tokens: ReadonlySet<string> }>>> {
  const byDigest = new Map<string, Map<string, { from: string; tokens: ReadonlySet<string> }>>();
  for (const r of await readAll(s3, bucket, RESTRICTIONS_PREFIX, RestrictionSchema)) {
    if (r.liftedAt || !r.subjectDigest) continue;
    const studies = byDigest.get(r.subjectDigest) ?? new Map();
    for (const s of r.studies) studies.set(s.studyId, { from: s.tokens[0]!, tokens: new Set(s.tokens) });
    byDigest.set(r.subjectDigest, studies);
  }
  return byDigest;
}

/** The keyed digests of every erased subject of the jurisdiction: what ingestion refuses to bring back. */
export async function tombstonedDigests(s3: S3Client, bucket: string): Promise<Set<string>> {
  return new Set((await readAll(s3, bucket, TOMBSTONES_PREFIX, TombstoneSchema)).map((t) => t.subjectDigest));
}

/** Records an erased subject's tombstone; recording it again changes nothing. */
export async function recordTombstone(
  s3: S3Client,
  bucket: string,
  tombstone: Omit<Tombstone, 'format'>,
): Promise<{ changed: boolean; count: number }> {
  const key = tombstoneKey(tombstone.requestId);
  const count = tombstone.studies.reduce((n, s) => n + s.tokens.length, 0);
  if (await getJson(s3, bucket, key, TombstoneSchema)) return { changed: false, count };
  await putJson(s3, bucket, key, TombstoneSchema, { format: 'steward-tombstone/1', ...tombstone });
  return { changed: true, count };
}

/**
 * Opens a request for a subject: when one of its kind is open for the same subject, the new one is linked to it (and
 * listed on its marker) instead. Idempotent: the same request opens, or links, once.
 */
export async function openSubjectRequest(
  s3: S3Client,
  bucket: string,
  open: {
    requestKind: OpenRequestMarker['kind'];
    subjectDigest: string;
    requestId: string;
    workflowId: string;
    at: string;
    /** The open request this one replaces: its workflow no longer runs. */
    supersedes?: string | undefined;
  },
): Promise<{ changed: boolean; linkedTo?: string }> {
  const current = await readOpenRequest(s3, bucket, open.requestKind, open.subjectDigest);
  if (current?.requestId === open.requestId) return { changed: false };
  if (current && current.requestId !== open.supersedes) {
    if (current.linked.includes(open.requestId)) return { changed: false, linkedTo: current.requestId };
    await writeOpenRequest(s3, bucket, { ...current, linked: [...current.linked, open.requestId] });
    return { changed: true, linkedTo: current.requestId };
  }
  await writeOpenRequest(s3, bucket, {
    format: 'steward-open-request/1',
    kind: open.requestKind,
    subjectDigest: open.subjectDigest,
    requestId: open.requestId,
    workflowId: open.workflowId,
    openedAt: open.at,
    linked: [],
  });
  return { changed: true };
}

/** Closes the request's marker, if it is still the open one (a later request's is left alone). */
export async function closeSubjectRequest(
  s3: S3Client,
  bucket: string,
  close: { requestKind: OpenRequestMarker['kind']; subjectDigest: string; requestId: string },
): Promise<{ changed: boolean; linked: string[] }> {
  const current = await readOpenRequest(s3, bucket, close.requestKind, close.subjectDigest);
  if (current?.requestId !== close.requestId) return { changed: false, linked: [] };
  await removeOpenRequest(s3, bucket, close.requestKind, close.subjectDigest);
  return { changed: true, linked: current.linked };
}

/** Records a restriction in force; recording it again changes nothing. */
export async function recordRestriction(
  s3: S3Client,
  bucket: string,
  jurisdiction: string,
  restrict: { requestId: string; studies: Restriction['studies']; at: string; subjectDigest?: string | undefined },
): Promise<{ changed: boolean; count: number }> {
  const current = await readRestriction(s3, bucket, restrict.requestId);
  const count = restrict.studies.reduce((n, s) => n + s.tokens.length, 0);
  if (current) return { changed: false, count };
  await writeRestriction(s3, bucket, {
    format: 'steward-restriction/1',
    requestId: restrict.requestId,
    jurisdiction,
    ...(restrict.subjectDigest ? { subjectDigest: restrict.subjectDigest } : {}),
    since: restrict.at,
    studies: restrict.studies,
    liftedAt: null,
    liftedBy: null,
    liftReason: null,
  });
  return { changed: true, count };
}

/** Lifts a restriction: kept as a record, with who lifted it, when and why. */
export async function liftRestriction(
  s3: S3Client,
  bucket: string,
  lift: { requestId: string; at: string; by: NonNullable<Restriction['liftedBy']>; reason: string },
): Promise<{ changed: boolean }> {
  const current = await readRestriction(s3, bucket, lift.requestId);
  if (!current || current.liftedAt) return { changed: false };
  await writeRestriction(s3, bucket, { ...current, liftedAt: lift.at, liftedBy: lift.by, liftReason: lift.reason });
  return { changed: true };
}
