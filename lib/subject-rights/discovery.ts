import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import type { Discovery, SubjectPlace, SubjectTokens } from '../../schemas/subject-request';
import { listDatasetRecords } from '../storage/catalog';
import { DatasetRecordSchema, type DatasetOutput, type DatasetRecord } from '../../schemas/dataset';
import { lookupTokens, syncIndex, type IndexChange } from './subject-index';
import { getJson } from '../storage/json';
import { consentPartsPrefix, datasetRecordKey } from '../storage/layout';
import { downloadHashed, getObjectOrUndefined, listObjects } from '../storage/objects';
import { readVaultShards } from '../crypto/vault';
import { quoteIdent, quoteLiteral } from '../tabular/sql';
import { ConsentPartSchema } from '../../schemas/consent';

/** The subject's tokens per study, as discovery searches for them. */
export function tokensByStudy(found: SubjectTokens): Map<string, string[]> {
  return new Map(
    found.studies.filter((s) => s.tokens.length > 0).map((s) => [s.studyId, s.tokens.map((t) => t.token)] as const),
  );
}

/**
 * Every place of the jurisdiction that holds the subject's tokens, by reading it all: each curated table of the
 * studies the subject has tokens in, the studies' consent registries and vaults. Reads only the jurisdiction's own
 * buckets. Data under a destroyed key version is reported as crypto-erased, not searched.
 */
export async function discoverByScan(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  conn: DuckDBConnection,
  workDir: string,
  found: SubjectTokens,
  onProgress: (datasets: number) => void = () => {},
): Promise<Discovery> {
  const byStudy = tokensByStudy(found);
  const places: SubjectPlace[] = [];
  const read = { objects: 0, bytes: 0 };
  await mkdir(workDir, { recursive: true });
  const file = path.join(workDir, 'table.parquet');
  let seen = 0;
  for (const record of await listDatasetRecords(s3, jurisdiction.buckets.catalog)) {
    const tokens = byStudy.get(record.studyId);
    onProgress(++seen);
    if (!tokens) continue;
    for (const output of record.outputs) {
      const place = await countInTable(s3, conn, file, record, output, tokens, read);
      if (place) places.push(place);
    }
  }
  places.push(...(await discoverInRegistries(s3, jurisdiction, byStudy, read)));
  return {
    places,
    cryptoErased: cryptoErasedOf(found),
    read,
  };
}

function cryptoErasedOf(found: SubjectTokens): Discovery['cryptoErased'] {
  return found.studies
    .filter((s) => s.cryptoErased.length > 0)
    .map((s) => ({ studyId: s.studyId, versions: s.cryptoErased }));
}

/** The subject's rows in one table version, as a place; undefined when it holds none (or no subject column). */
async function countInTable(
  s3: S3Client,
  conn: DuckDBConnection,
  file: string,
  record: DatasetRecord,
  output: DatasetOutput,
  tokens: readonly string[],
  read: Discovery['read'],
): Promise<SubjectPlace | undefined> {
  const subject = output.columns.find((c) => c.role === 'subject-id');
  if (!subject) return undefined;
  const digest = await downloadHashed(s3, output.bucket, output.key, file, () => {}, output.versionId);
  read.objects += 1;
  read.bytes += digest.bytes;
  const counted = await conn.runAndReadAll(
    `SELECT count(*) FROM read_parquet(${quoteLiteral(file)}) WHERE CAST(${quoteIdent(subject.name)} AS VARCHAR) IN (${tokens.map(quoteLiteral).join(', ')})`,
  );
  const rows = Number(counted.getRows()[0]![0]);
  await rm(file, { force: true });
  if (rows === 0) return undefined;
  return {
    kind: 'dataset',
    datasetId: record.datasetId,
    studyId: record.studyId,
    dataClass: record.dataClass,
    table: output.table,
    bucket: output.bucket,
    key: output.key,
    versionId: output.versionId,
    sha256: output.sha256,
    subjectColumn: subject.name,
    rows,
  };
}

/** The subject in the consent registries and vaults of the studies they have tokens in. */
async function discoverInRegistries(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  byStudy: ReadonlyMap<string, string[]>,
  read: Discovery['read'],
): Promise<SubjectPlace[]> {
  const places: SubjectPlace[] = [];
  for (const [studyId, tokens] of byStudy) {
    const wanted = new Set(tokens);
    let records = 0;
    for (const part of await listObjects(s3, jurisdiction.buckets.catalog, consentPartsPrefix(studyId))) {
      const stored = await getJson(s3, jurisdiction.buckets.catalog, part.key, ConsentPartSchema);
      read.objects += 1;
      read.bytes += part.size;
      records += stored?.entries.filter((e) => wanted.has(e.token)).length ?? 0;
    }
    if (records > 0) places.push({ kind: 'consent', studyId, records });
    let entries = 0;
    for (const { shard, size } of await readVaultShards(s3, jurisdiction.buckets.catalog, studyId)) {
      read.objects += 1;
      read.bytes += size;
      entries += tokens.filter((t) => shard.entries[t] !== undefined).length;
    }
    if (entries > 0) places.push({ kind: 'vault', studyId, entries });
  }
  return places;
}

/**
 * Every place of the jurisdiction that holds the subject's tokens, found through the subject index: the index is
 * brought up to date first (only what changed since is read), then it names the tables and access packages holding
 * the tokens with the subject's rows in each; only those tables' records are read, with the studies' consent registries
 * and vaults. Its cost grows with the data that holds the subject. Reads only the jurisdiction's own buckets.
 */
export async function discoverByIndex(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  conn: DuckDBConnection,
  workDir: string,
  found: SubjectTokens,
  onProgress: (phase: string) => void = () => {},
): Promise<Discovery & { sync: IndexChange }> {
  const deps = { s3, jurisdiction };
  const byStudy = tokensByStudy(found);
  onProgress('bringing the subject index up to date');
  const sync = await syncIndex(deps, conn, workDir);
  onProgress('looking the subject up');
  const hits = await lookupTokens(deps, [...byStudy.values()].flat());
  const read = { objects: hits.cost.objects, bytes: hits.cost.bytes };
  const places: SubjectPlace[] = [];
  const hitsInOrder = [...hits.places.values()].sort((a, b) =>
    JSON.stringify(a.place).localeCompare(JSON.stringify(b.place)),
  );
  for (const { place, rows } of hitsInOrder) {
    if (place.kind === 'export') {
      places.push({ kind: 'export', requestId: place.requestId, bucket: place.bucket, prefix: place.prefix });
      continue;
    }
    // The record says which study and class the table is of, and that the indexed version is the current one.
    const raw = await getObjectOrUndefined(s3, jurisdiction.buckets.catalog, datasetRecordKey(place.datasetId));
    const record = raw === undefined ? undefined : DatasetRecordSchema.parse(JSON.parse(raw.toString('utf8')));
    read.objects += 1;
    read.bytes += raw?.length ?? 0;
    const output = record?.outputs.find((o) => o.table === place.table && o.versionId === place.versionId);
    if (!record || !output || !byStudy.has(record.studyId) || rows === 0) continue;
    places.push({
      kind: 'dataset',
      datasetId: record.datasetId,
      studyId: record.studyId,
      dataClass: record.dataClass,
      table: output.table,
      bucket: output.bucket,
      key: output.key,
      versionId: output.versionId,
      sha256: output.sha256,
      subjectColumn: place.subjectColumn,
      rows,
    });
  }
  places.push(...(await discoverInRegistries(s3, jurisdiction, byStudy, read)));
  return { places, cryptoErased: cryptoErasedOf(found), read, sync };
}
