import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { DatasetRecord } from '../../schemas/dataset';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import {
  SubjectIndexManifestSchema,
  type IndexPlace,
  type IndexSegment,
  type SubjectIndexManifest,
} from '../../schemas/subject-request';
import { readDatasetRecord } from '../storage/catalog';
import { datasetIdOfRecordKey, DATASETS_PREFIX } from '../storage/layout';
import { deleteAllVersions, downloadHashed, getObjectOrUndefined, listObjects, putBytes } from '../storage/objects';
import { putJson } from '../storage/json';
import { isNotFound } from '../storage/s3';
import { inLanes } from '../runtime/lanes';
import { quoteIdent, quoteLiteral } from '../tabular/sql';

/**
 * The subject index of a jurisdiction: every place (a table's object version, an access package) by the subject
 * tokens it holds, so discovery reads what holds the subject and not everything. Kept in the jurisdiction's catalog
 * bucket as a manifest and immutable token-sorted segments, each cut into shards whose first and last tokens (the
 * fence) are in the manifest: a lookup reads the manifest and at most one shard per segment and token.
 *
 * New places go into a new segment; segments of a size merge four at a time (size-tiered), dropping postings of
 * places that are gone, so a lookup reads a few segments however many datasets there are. The manifest is written
 * with a conditional PUT (If-Match on the ETag read), so writers on several workers never lose each other's changes:
 * a writer that lost the race reads again and redoes its change.
 */

const INDEX_PREFIX = 'subject-index/';
const MANIFEST_KEY = `${INDEX_PREFIX}manifest.json`;
/** Tokens per shard: a lookup reads one shard (about 60 KB) per segment and token. */
const SHARD_TOKENS = 1024;
/** Segments of one size tier merge when this many have gathered. */
const MERGE_FAN_IN = 4;
/** Postings of the smallest tier. */
const TIER_BASE = 4096;
/** Manifest writes tried before giving up on a change (each loss means another writer's change went in). */
const COMMIT_TRIES = 20;

/** Token → place id → the token's rows in that place. */
type Postings = Map<string, Map<string, number>>;

export interface IndexDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
}

/** What a piece of index work read and wrote. */
export interface IndexCost {
  objects: number;
  bytes: number;
  lists: number;
}

export function segmentPrefix(segmentId: string): string {
  return `${INDEX_PREFIX}segments/${segmentId}/`;
}

function emptyManifest(jurisdiction: string): SubjectIndexManifest {
  return {
    format: 'steward-subject-index/1',
    jurisdiction,
    updatedAt: new Date().toISOString(),
    places: {},
    datasets: {},
    segments: [],
    next: 0,
  };
}

/** The index's manifest and its ETag (null when there is no index yet). */
export async function readManifest(
  deps: IndexDeps,
  cost?: IndexCost,
): Promise<{ manifest: SubjectIndexManifest; etag: string | null }> {
  try {
    const res = await deps.s3.send(
      new GetObjectCommand({ Bucket: deps.jurisdiction.buckets.catalog, Key: MANIFEST_KEY }),
    );
    const text = await res.Body!.transformToString('utf8');
    if (cost) {
      cost.objects += 1;
      cost.bytes += Buffer.byteLength(text);
    }
    return { manifest: SubjectIndexManifestSchema.parse(JSON.parse(text)), etag: res.ETag ?? null };
  } catch (error) {
    if (isNotFound(error)) return { manifest: emptyManifest(deps.jurisdiction.id), etag: null };
    throw error;
  }
}

function preconditionFailed(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 412 || status === 409;
}

/**
 * Applies `change` to the manifest and stores it conditionally; a lost race reads again and applies it again.
 * `change` returns null for "nothing to change", and the shard keys no segment of the new manifest uses any more,
 * which are deleted (every version) once the new manifest is stored.
 */
async function commit(
  deps: IndexDeps,
  change: (manifest: SubjectIndexManifest) => Promise<{ manifest: SubjectIndexManifest; garbage: string[] } | null>,
): Promise<SubjectIndexManifest> {
  const bucket = deps.jurisdiction.buckets.catalog;
  for (let attempt = 1; ; attempt++) {
    const { manifest, etag } = await readManifest(deps);
    const next = await change(structuredClone(manifest));
    if (!next) return manifest;
    try {
      await putJson(
        deps.s3,
        bucket,
        MANIFEST_KEY,
        SubjectIndexManifestSchema,
        { ...next.manifest, updatedAt: new Date().toISOString() },
        { condition: etag ? { ifMatch: etag } : { ifNoneMatch: '*' } },
      );
    } catch (error) {
      if (!preconditionFailed(error) || attempt >= COMMIT_TRIES) throw error;
      // Segments this attempt wrote are nobody's: removed before trying again.
      const used = new Set(manifest.segments.map((s) => s.id));
      for (const s of next.manifest.segments) {
        if (!used.has(s.id)) await deleteAllVersions(deps.s3, bucket, segmentPrefix(s.id));
      }
      continue;
    }
    for (const prefix of new Set(next.garbage)) await deleteAllVersions(deps.s3, bucket, prefix);
    return next.manifest;
  }
}

/** Writes postings (token → place ids) as a new segment: sorted, in shards. */
async function writeSegment(deps: IndexDeps, postings: Postings): Promise<IndexSegment | null> {
  if (postings.size === 0) return null;
  const id = randomUUID();
  const places = [...new Set([...postings.values()].flatMap((m) => [...m.keys()]))].sort();
  const position = new Map(places.map((p, i) => [p, i]));
  const tokens = [...postings.keys()].sort();
  const runs: string[][] = [];
  for (let start = 0; start < tokens.length; start += SHARD_TOKENS)
    runs.push(tokens.slice(start, start + SHARD_TOKENS));
  let count = 0;
  const shards: IndexSegment['shards'] = new Array(runs.length);
  await inLanes([...runs.keys()], 8, async (n) => {
    const run = runs[n]!;
    const text = run
      .map((t) => {
        const refs = [...postings.get(t)!];
        count += refs.length;
        return `${t}\t${refs.map(([p, rows]) => `${position.get(p)!}:${rows}`).join(',')}\n`;
      })
      .join('');
    const key = `${segmentPrefix(id)}${String(n).padStart(6, '0')}.tsv`;
    const body = Buffer.from(text);
    await putBytes(deps.s3, deps.jurisdiction.buckets.catalog, key, body, { contentType: 'text/tab-separated-values' });
    shards[n] = { key, first: run[0]!, last: run.at(-1)!, tokens: run.length, bytes: body.length };
  });
  return { id, places, postings: count, shards };
}

/** A shard's postings: token → the places holding it, each with the token's rows there. */
async function readShard(
  deps: IndexDeps,
  segment: IndexSegment,
  key: string,
  cost?: IndexCost,
): Promise<Map<string, [string, number][]>> {
  const raw = await getObjectOrUndefined(deps.s3, deps.jurisdiction.buckets.catalog, key);
  if (raw === undefined) throw new Error(`subject index shard ${key} is missing: run steward dsr index rebuild`);
  if (cost) {
    cost.objects += 1;
    cost.bytes += raw.length;
  }
  const out = new Map<string, [string, number][]>();
  for (const line of raw.toString('utf8').split('\n')) {
    if (!line) continue;
    const tab = line.indexOf('\t');
    out.set(
      line.slice(0, tab),
      line
        .slice(tab + 1)
        .split(',')
        .map((ref) => {
          const [i, rows] = ref.split(':');
          return [segment.places[Number(i)]!, Number(rows)];
        }),
    );
  }
  return out;
}

/** Every posting of a segment whose place is still live. */
async function readSegment(deps: IndexDeps, manifest: SubjectIndexManifest, segment: IndexSegment, cost?: IndexCost) {
  const out: Postings = new Map();
  for (const shard of segment.shards) {
    for (const [token, places] of await readShard(deps, segment, shard.key, cost)) {
      const live = places.filter(([p]) => manifest.places[p]);
      if (live.length === 0) continue;
      const held = out.get(token) ?? new Map<string, number>();
      for (const [p, rows] of live) held.set(p, rows);
      out.set(token, held);
    }
  }
  return out;
}

function tierOf(segment: IndexSegment): number {
  return Math.floor(Math.log(Math.max(1, segment.postings / TIER_BASE)) / Math.log(MERGE_FAN_IN));
}

/** Merges segments of one size tier while some tier holds `MERGE_FAN_IN` of them; returns the garbage prefixes. */
async function compact(deps: IndexDeps, manifest: SubjectIndexManifest): Promise<string[]> {
  const garbage: string[] = [];
  for (;;) {
    const tiers = new Map<number, IndexSegment[]>();
    for (const s of manifest.segments) tiers.set(tierOf(s), [...(tiers.get(tierOf(s)) ?? []), s]);
    const full = [...tiers.entries()].sort((a, b) => a[0] - b[0]).find(([, group]) => group.length >= MERGE_FAN_IN);
    if (!full) return garbage;
    const group = full[1];
    const merged: Postings = new Map();
    for (const segment of group) {
      for (const [token, places] of await readSegment(deps, manifest, segment)) {
        const held = merged.get(token) ?? new Map<string, number>();
        for (const [p, rows] of places) held.set(p, rows);
        merged.set(token, held);
      }
    }
    const written = await writeSegment(deps, merged);
    const ids = new Set(group.map((s) => s.id));
    manifest.segments = [...manifest.segments.filter((s) => !ids.has(s.id)), ...(written ? [written] : [])];
    garbage.push(...group.map((s) => segmentPrefix(s.id)));
  }
}

/** The subject-id column of a table output, when it has one: only those hold tokens. */
function subjectColumnOf(output: DatasetRecord['outputs'][number]): string | undefined {
  return output.columns.find((c) => c.role === 'subject-id')?.name;
}

/** The subject tokens of one stored table version, each with its rows there. */
export async function tokensOfTable(
  deps: IndexDeps,
  conn: DuckDBConnection,
  workDir: string,
  place: Extract<IndexPlace, { kind: 'dataset' }>,
  cost?: IndexCost,
): Promise<Map<string, number>> {
  await mkdir(workDir, { recursive: true });
  const file = path.join(workDir, `${randomUUID()}.parquet`);
  try {
    const digest = await downloadHashed(deps.s3, place.bucket, place.key, file, () => {}, place.versionId);
    if (cost) {
      cost.objects += 1;
      cost.bytes += digest.bytes;
    }
    const result = await conn.runAndReadAll(
      `SELECT CAST(${quoteIdent(place.subjectColumn)} AS VARCHAR), count(*) FROM read_parquet(${quoteLiteral(file)}) WHERE ${quoteIdent(place.subjectColumn)} IS NOT NULL GROUP BY 1`,
    );
    return new Map(result.getRows().map((r) => [String(r[0]), Number(r[1])]));
  } finally {
    await rm(file, { force: true });
  }
}

function datasetPlaces(record: DatasetRecord): Extract<IndexPlace, { kind: 'dataset' }>[] {
  return record.outputs.flatMap((o) => {
    const subjectColumn = subjectColumnOf(o);
    return subjectColumn
      ? [
          {
            kind: 'dataset' as const,
            datasetId: record.datasetId,
            table: o.table,
            bucket: o.bucket,
            key: o.key,
            versionId: o.versionId,
            sha256: o.sha256,
            subjectColumn,
          },
        ]
      : [];
  });
}

const samePlace = (a: IndexPlace, b: IndexPlace) => JSON.stringify(a) === JSON.stringify(b);

/** Places of the manifest that belong to a dataset. */
function placesOfDataset(manifest: SubjectIndexManifest, datasetId: string): [string, IndexPlace][] {
  return Object.entries(manifest.places).filter(([, p]) => p.kind === 'dataset' && p.datasetId === datasetId);
}

export interface IndexChange {
  /** Datasets whose current places were read and indexed. */
  indexed: number;
  /** Datasets that are gone, whose places were dropped. */
  removed: number;
  tokens: number;
  cost: IndexCost;
}

/**
 * Brings the index up to date for these datasets: each table version not indexed yet is read and its tokens go into a
 * new segment, places of versions or datasets that are gone are dropped. `etags` are the record ETags listed (the
 * sync passes them); without, each record's ETag is left for the next sync to fill in.
 */
export async function indexDatasets(
  deps: IndexDeps,
  conn: DuckDBConnection,
  workDir: string,
  datasetIds: readonly string[],
  etags: ReadonlyMap<string, string> = new Map(),
  onProgress: (done: number) => void = () => {},
): Promise<IndexChange> {
  const cost: IndexCost = { objects: 0, bytes: 0, lists: 0 };
  const { manifest } = await readManifest(deps);
  const records = new Map<string, DatasetRecord | undefined>();
  // Tokens read from each table version not indexed yet, by a key that does not depend on place ids.
  const read = new Map<string, { place: IndexPlace; tokens: Map<string, number> }>();
  let done = 0;
  for (const id of datasetIds) {
    const record = await readDatasetRecord(deps.s3, deps.jurisdiction.buckets.catalog, id);
    cost.objects += 1;
    records.set(id, record);
    for (const place of record ? datasetPlaces(record) : []) {
      if (placesOfDataset(manifest, id).some(([, p]) => samePlace(p, place))) continue;
      read.set(JSON.stringify(place), { place, tokens: await tokensOfTable(deps, conn, workDir, place, cost) });
    }
    onProgress(++done);
  }
  let tokens = 0;
  let removed = 0;
  await commit(deps, async (m) => {
    const postings: Postings = new Map();
    const dropped: string[] = [];
    let changed = false;
    removed = 0;
    for (const id of datasetIds) {
      const record = records.get(id);
      const wanted = record ? datasetPlaces(record) : [];
      for (const [placeId, p] of placesOfDataset(m, id)) {
        if (!wanted.some((w) => samePlace(w, p))) {
          delete m.places[placeId];
          dropped.push(placeId);
        }
      }
      for (const place of wanted) {
        if (placesOfDataset(m, id).some(([, p]) => samePlace(p, place))) continue;
        const found = read.get(JSON.stringify(place));
        // Indexed meanwhile by another writer, or read before the record changed: left to the next sync.
        if (!found) continue;
        const placeId = `p${m.next++}`;
        m.places[placeId] = place;
        for (const [t, rows] of found.tokens) postings.set(t, (postings.get(t) ?? new Map()).set(placeId, rows));
        changed = true;
      }
      if (!record) {
        if (m.datasets[id] !== undefined) {
          delete m.datasets[id];
          changed = true;
          removed += 1;
        }
      } else if (etags.has(id) && m.datasets[id] !== etags.get(id)) {
        m.datasets[id] = etags.get(id)!;
        changed = true;
      } else if (m.datasets[id] === undefined) {
        m.datasets[id] = '';
        changed = true;
      }
    }
    if (!changed && dropped.length === 0) return null;
    const segment = await writeSegment(deps, postings);
    tokens = postings.size;
    if (segment) m.segments.push(segment);
    const garbage = await compact(deps, m);
    return { manifest: m, garbage };
  });
  return {
    indexed:
      read.size > 0 ? new Set([...read.values()].map((r) => (r.place as { datasetId: string }).datasetId)).size : 0,
    removed,
    tokens,
    cost,
  };
}

/**
 * Brings the whole index up to date with the catalog: lists the dataset records (one request per thousand) and reads
 * only those whose ETag changed since they were indexed, and those gone. Its cost grows with what changed.
 */
export async function syncIndex(
  deps: IndexDeps,
  conn: DuckDBConnection,
  workDir: string,
  onProgress: (done: number, of: number) => void = () => {},
): Promise<IndexChange> {
  const { manifest } = await readManifest(deps);
  const listed = await listObjects(deps.s3, deps.jurisdiction.buckets.catalog, DATASETS_PREFIX);
  const etags = new Map<string, string>();
  for (const o of listed) {
    const id = datasetIdOfRecordKey(o.key);
    if (id && !id.includes('/')) etags.set(id, o.etag);
  }
  const changed = [...etags].filter(([id, etag]) => manifest.datasets[id] !== etag).map(([id]) => id);
  const gone = Object.keys(manifest.datasets).filter((id) => !etags.has(id));
  const work = [...changed, ...gone];
  if (work.length === 0) return { indexed: 0, removed: 0, tokens: 0, cost: { objects: 1, bytes: 0, lists: 1 } };
  // In batches, so a rebuild of many datasets commits as it goes and each segment stays a few MB.
  const total: IndexChange = { indexed: 0, removed: 0, tokens: 0, cost: { objects: 1, bytes: 0, lists: 1 } };
  for (let start = 0; start < work.length; start += 64) {
    const batch = work.slice(start, start + 64);
    const change = await indexDatasets(deps, conn, workDir, batch, etags, (n) => onProgress(start + n, work.length));
    total.indexed += change.indexed;
    total.removed += change.removed;
    total.tokens += change.tokens;
    total.cost.objects += change.cost.objects;
    total.cost.bytes += change.cost.bytes;
  }
  return total;
}

/** Drops datasets from the index (after a sweep or an erasure deleted them). Reads nothing but the manifest. */
export async function dropDatasets(deps: IndexDeps, datasetIds: readonly string[]): Promise<number> {
  let dropped = 0;
  await commit(deps, async (m) => {
    dropped = 0;
    for (const id of datasetIds) {
      for (const [placeId] of placesOfDataset(m, id)) {
        delete m.places[placeId];
        dropped += 1;
      }
      if (m.datasets[id] !== undefined) {
        delete m.datasets[id];
        dropped += 1;
      }
    }
    return dropped > 0 ? { manifest: m, garbage: [] } : null;
  });
  return dropped;
}

/** Adds an access package, with the subject tokens it holds. */
export async function indexExport(
  deps: IndexDeps,
  place: Extract<IndexPlace, { kind: 'export' }>,
  tokens: readonly string[],
): Promise<void> {
  await commit(deps, async (m) => {
    if (Object.values(m.places).some((p) => samePlace(p, place))) return null;
    const placeId = `p${m.next++}`;
    m.places[placeId] = place;
    const segment = await writeSegment(deps, new Map(tokens.map((t) => [t, new Map([[placeId, 0]])])));
    if (segment) m.segments.push(segment);
    return { manifest: m, garbage: await compact(deps, m) };
  });
}

/** Drops an access package (deleted by an erasure or its expiry). */
export async function dropExport(deps: IndexDeps, requestId: string): Promise<void> {
  await commit(deps, async (m) => {
    const ids = Object.entries(m.places)
      .filter(([, p]) => p.kind === 'export' && p.requestId === requestId)
      .map(([id]) => id);
    for (const id of ids) delete m.places[id];
    return ids.length > 0 ? { manifest: m, garbage: [] } : null;
  });
}

/** The live places holding any of these tokens, and what finding them read. */
export async function lookupTokens(
  deps: IndexDeps,
  tokens: readonly string[],
): Promise<{ places: Map<string, { place: IndexPlace; tokens: Set<string>; rows: number }>; cost: IndexCost }> {
  const cost: IndexCost = { objects: 0, bytes: 0, lists: 0 };
  const { manifest } = await readManifest(deps, cost);
  const out = new Map<string, { place: IndexPlace; tokens: Set<string>; rows: number }>();
  for (const segment of manifest.segments) {
    const wanted = new Map<string, string[]>();
    for (const token of tokens) {
      const shard = segment.shards.find((s) => s.first <= token && token <= s.last);
      if (shard) wanted.set(shard.key, [...(wanted.get(shard.key) ?? []), token]);
    }
    for (const [key, inShard] of wanted) {
      const postings = await readShard(deps, segment, key, cost);
      for (const token of inShard) {
        for (const [placeId, rows] of postings.get(token) ?? []) {
          const place = manifest.places[placeId];
          if (!place) continue;
          const entry = out.get(placeId) ?? { place, tokens: new Set<string>(), rows: 0 };
          entry.tokens.add(token);
          entry.rows += rows;
          out.set(placeId, entry);
        }
      }
    }
  }
  return { places: out, cost };
}

/**
 * After an erasure: the tables rewritten without the subject keep their places under their new versions, and the
 * subject's tokens leave every shard that held them (each such shard is written anew without them and every version
 * of the old one deleted), so the index holds the subject nowhere.
 */
export async function eraseFromIndex(
  deps: IndexDeps,
  tokens: readonly string[],
  rewritten: readonly { datasetId: string; table: string; versionId: string | null; sha256: string }[],
  keptTables: readonly { datasetId: string; table: string }[] = [],
): Promise<{ shardsRewritten: number }> {
  const wanted = new Set(tokens);
  let shardsRewritten = 0;
  await commit(deps, async (m) => {
    shardsRewritten = 0;
    const garbage: string[] = [];
    for (const r of rewritten) {
      for (const [, p] of placesOfDataset(m, r.datasetId)) {
        if (p.kind === 'dataset' && p.table === r.table) Object.assign(p, { versionId: r.versionId, sha256: r.sha256 });
      }
    }
    for (const segment of m.segments) {
      const shards: IndexSegment['shards'] = [];
      for (const [i, shard] of segment.shards.entries()) {
        const postings = tokens.some((t) => shard.first <= t && t <= shard.last)
          ? await readShard(deps, segment, shard.key)
          : undefined;
        if (!postings || ![...postings.keys()].some((t) => wanted.has(t))) {
          shards.push(shard);
          continue;
        }
        garbage.push(shard.key);
        shardsRewritten += 1;
        const keptPlaces = new Set(
          Object.entries(m.places)
            .filter(
              ([, p]) =>
                p.kind === 'dataset' && keptTables.some((k) => k.datasetId === p.datasetId && k.table === p.table),
            )
            .map(([id]) => id),
        );
        const kept: [string, [string, number][]][] = [];
        for (const [t, ps] of postings) {
          const left = wanted.has(t) ? ps.filter(([p]) => keptPlaces.has(p)) : ps;
          segment.postings -= ps.length - left.length;
          if (left.length > 0) kept.push([t, left]);
        }
        if (kept.length === 0) continue;
        const position = new Map(segment.places.map((p, n) => [p, n]));
        const body = Buffer.from(
          kept.map(([t, ps]) => `${t}\t${ps.map(([p, rows]) => `${position.get(p)!}:${rows}`).join(',')}\n`).join(''),
        );
        const key = `${segmentPrefix(segment.id)}${String(i).padStart(6, '0')}.${randomUUID().slice(0, 8)}.tsv`;
        await putBytes(deps.s3, deps.jurisdiction.buckets.catalog, key, body, {
          contentType: 'text/tab-separated-values',
        });
        shards.push({ key, first: kept[0]![0], last: kept.at(-1)![0], tokens: kept.length, bytes: body.length });
      }
      segment.shards = shards;
    }
    m.segments = m.segments.filter((s) => s.shards.length > 0);
    return { manifest: m, garbage };
  });
  return { shardsRewritten };
}

export interface IndexVerification {
  objects: number;
  postings: number;
  problems: string[];
}

/**
 * Compares the index with a full scan: every table of every dataset record is read and its distinct tokens compared
 * with the index's postings for it; places the index names that no record has are reported too. Reads everything.
 */
export async function verifyIndex(
  deps: IndexDeps,
  conn: DuckDBConnection,
  workDir: string,
  onProgress: (done: number, of: number) => void = () => {},
): Promise<IndexVerification> {
  const { manifest } = await readManifest(deps);
  const indexed = new Map<string, Map<string, number>>();
  let postings = 0;
  for (const segment of manifest.segments) {
    for (const [token, places] of await readSegment(deps, manifest, segment)) {
      for (const [p, rows] of places) {
        indexed.set(p, (indexed.get(p) ?? new Map()).set(token, rows));
        postings += 1;
      }
    }
  }
  const problems: string[] = [];
  const listed = await listObjects(deps.s3, deps.jurisdiction.buckets.catalog, DATASETS_PREFIX);
  const ids = listed.map((o) => datasetIdOfRecordKey(o.key)).filter((id): id is string => !!id && !id.includes('/'));
  const seen = new Set<string>();
  let objects = 0;
  for (const [n, id] of ids.entries()) {
    const record = await readDatasetRecord(deps.s3, deps.jurisdiction.buckets.catalog, id);
    onProgress(n + 1, ids.length);
    if (!record) continue;
    for (const place of datasetPlaces(record)) {
      objects += 1;
      const entry = Object.entries(manifest.places).find(([, p]) => samePlace(p, place));
      const label = `dataset ${id} table ${place.table}`;
      if (!entry) {
        problems.push(`${label} (version ${place.versionId}) is not in the index`);
        continue;
      }
      seen.add(entry[0]);
      const actual = await tokensOfTable(deps, conn, workDir, place);
      const held = indexed.get(entry[0]) ?? new Map<string, number>();
      const missing = [...actual.keys()].filter((t) => !held.has(t)).length;
      const extra = [...held.keys()].filter((t) => !actual.has(t)).length;
      const miscounted = [...actual].filter(([t, rows]) => held.has(t) && held.get(t) !== rows).length;
      if (missing > 0) problems.push(`${label}: ${missing} of its ${actual.size} subjects are missing from the index`);
      if (extra > 0) problems.push(`${label}: the index names ${extra} subjects it does not hold`);
      if (miscounted > 0) problems.push(`${label}: the index counts the rows of ${miscounted} subjects wrong`);
    }
  }
  for (const [placeId, place] of Object.entries(manifest.places)) {
    if (place.kind === 'dataset' && !seen.has(placeId)) {
      problems.push(`the index names dataset ${place.datasetId} table ${place.table}, which no record holds now`);
    }
  }
  // A dataset recorded while this ran is indexed right after its record is written: such a "missing" one is looked
  // for again in the index as it is now.
  const missing = problems.filter((p) => p.endsWith('is not in the index'));
  if (missing.length > 0) {
    const now = (await readManifest(deps)).manifest;
    const indexedNow = (p: string) =>
      Object.values(now.places).some(
        (place) =>
          place.kind === 'dataset' &&
          p.startsWith(`dataset ${place.datasetId} table ${place.table} (version ${place.versionId})`),
      );
    return { objects, postings, problems: problems.filter((p) => !missing.includes(p) || !indexedNow(p)) };
  }
  return { objects, postings, problems };
}

/** Deletes the index (every version of every object under its prefix) and builds it again from the catalog. */
export async function rebuildIndex(
  deps: IndexDeps,
  conn: DuckDBConnection,
  workDir: string,
  onProgress: (done: number, of: number) => void = () => {},
): Promise<IndexChange> {
  await deleteAllVersions(deps.s3, deps.jurisdiction.buckets.catalog, INDEX_PREFIX);
  return syncIndex(deps, conn, workDir, onProgress);
}

/** Whether an index exists in the jurisdiction (a manifest was written). */
export async function indexExists(deps: IndexDeps): Promise<boolean> {
  return (await readManifest(deps)).etag !== null;
}

export { INDEX_PREFIX as SUBJECT_INDEX_PREFIX };
