import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { getJurisdiction } from '../jurisdictions';
import { datasetRetention } from '../lib/retention/rules';
import { inLanes } from '../lib/runtime/lanes';
import { readDatasetRecord, writeDatasetRecord } from '../lib/storage/catalog';
import { datasetObjectKey, packagePrefix } from '../lib/storage/layout';
import { hashFile, putFileOnce } from '../lib/storage/objects';
import { createS3Client } from '../lib/storage/s3';
import { discoverByIndex, discoverByScan } from '../lib/subject-rights/discovery';
import { rewriteWithoutSubject } from '../lib/subject-rights/erasure';
import { eraseFromIndex, lookupTokens, syncIndex } from '../lib/subject-rights/subject-index';
import { quoteLiteral } from '../lib/tabular/sql';
import type { DatasetRecord } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { SubjectPlace, SubjectTokens } from '../schemas/subject-request';
import type { BenchStack } from './ingest';
import { line } from './report';

const DATASETS = Number(process.env.BENCH_DSR_DATASETS ?? 1000);
const ROWS = Number(process.env.BENCH_DSR_ROWS ?? 10_000);
/** The first `SMALL` datasets are the small catalog; the subjects are in `HOLDING` of them. */
const SMALL = Math.max(10, Math.round(DATASETS / 10));
const HOLDING = 10;
/** Erasures timed in each catalog size (the median is compared): one subject each, all held by the same datasets. */
const TRIES = 3;
const SMALL_SUBJECTS = Array.from({ length: TRIES }, (_, i) => `subject-A${i}`);
const LARGE_SUBJECTS = Array.from({ length: TRIES }, (_, i) => `subject-B${i}`);
const STUDY = 'BENCH-DSR';

/** A token-shaped pseudonym for a bench subject (the bench holds no real identifiers). */
const tokenOf = (name: string) => `v1.${createHash('sha256').update(name).digest('base64url').slice(0, 43)}`;

/**
 * Writes datasets `from`..`to` of the bench catalog: each one table of ROWS rows over 1,000 subjects of a pool of
 * 200,000 (as ingestion writes them: Parquet in the curated bucket, a record in the catalog), with the bench subjects
 * A0..A2 and B0..B2 (3 rows each) in the first HOLDING datasets.
 */
async function writeDatasets(s3: S3Client, eu: Jurisdiction, work: string, from: number, to: number) {
  const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
  const conns = await Promise.all([db.connect(), db.connect()]);
  const rule = eu.retention['real-world']!;
  const createdAt = new Date().toISOString();
  const retention = datasetRetention('real-world', rule, { curation: createdAt, 'last-effective-date': createdAt });
  retention.lockedUntil = null;
  const extra = [...SMALL_SUBJECTS, ...LARGE_SUBJECTS].map(tokenOf);
  await inLanes(
    Array.from({ length: to - from }, (_, i) => from + i),
    2,
    async (d, lane) => {
      const file = path.join(work, `d-${d}.parquet`);
      const holds = d < HOLDING;
      await conns[lane]!.run(
        `COPY (
           SELECT 'v1.' || substr(replace(replace(to_base64(sha256(('s' || ((${d} * 977 + (i % 1000) * 131) % 200000))::VARCHAR)::BLOB), '+', '-'), '/', '_'), 1, 43) AS subject_id,
                  DATE '2024-01-01' + (i % 365)::INTEGER AS visit_date,
                  'lab-' || (i % 40)::VARCHAR AS lab,
                  (hash(i, ${d}) % 100000) / 100.0 AS value
           FROM range(${ROWS}) t(i)
           ${holds ? `UNION ALL SELECT unnest([${extra.map(quoteLiteral).join(', ')}, ${extra.map(quoteLiteral).join(', ')}, ${extra.map(quoteLiteral).join(', ')}]), DATE '2024-06-01', 'lab-0', 1.0` : ''}
         ) TO ${quoteLiteral(file)} (FORMAT parquet)`,
      );
      const datasetId = `ds-bench-dsr-${String(d).padStart(5, '0')}`;
      const key = datasetObjectKey(datasetId, 'visits.parquet');
      const digest = await hashFile(file);
      const put = await putFileOnce(s3, eu.buckets.curated, key, file, digest.sha256, {
        contentType: 'application/vnd.apache.parquet',
        tags: { jurisdiction: eu.id, 'study-id': STUDY, 'dataset-id': datasetId },
      });
      await rm(file, { force: true });
      const rows = ROWS + (holds ? 6 : 0);
      const counts = { in: rows, curated: rows, excluded: 0, excludedByReason: {} };
      const record: DatasetRecord = {
        format: 'steward-dataset/1',
        datasetId,
        packageId: `pkg-bench-dsr-${d}`,
        jurisdiction: eu.id,
        studyId: STUDY,
        protocolId: 'BENCH-DSR',
        derivedFrom: [],
        erasures: [],
        run: null,
        dataClass: 'real-world',
        classification: rule.classification,
        purpose: 'primary-research',
        consentScopes: ['primary-research'],
        sourceSystem: 'steward-bench',
        keyVersions: [1],
        dateShiftDays: 0,
        createdAt,
        retention,
        holds: [],
        rows: counts,
        inputs: [],
        outputs: [
          {
            table: 'visits',
            source: 'data/visits.csv',
            bucket: eu.buckets.curated,
            key,
            versionId: put.versionId,
            sha256: digest.sha256,
            bytes: digest.bytes,
            columns: [
              { name: 'subject_id', type: 'VARCHAR', role: 'subject-id' },
              { name: 'visit_date', type: 'DATE', role: 'date' },
              { name: 'lab', type: 'VARCHAR', role: 'keep' },
              { name: 'value', type: 'DOUBLE', role: 'keep' },
            ],
            rows: counts,
          },
        ],
        lineage: {
          landing: { bucket: eu.buckets.landing, prefix: packagePrefix(`pkg-bench-dsr-${d}`) },
          manifestSha256: createHash('sha256').update(datasetId).digest('hex'),
          workflowId: `bench-dsr-${d}`,
          runId: 'bench',
          submittedBy: { id: 'Steward bench', role: 'steward' },
          source: null,
        },
      };
      await writeDatasetRecord(s3, eu.buckets.catalog, record);
    },
  );
  conns.forEach((c) => c.closeSync());
  db.closeSync();
}

const found = (subject: string): SubjectTokens => ({
  studies: [{ studyId: STUDY, tokens: [{ version: 1, token: tokenOf(subject) }], cryptoErased: [] }],
});

/**
 * The data path of one erasure: discovery through the index, each table holding the subject rewritten without them
 * (record updated, the older version deleted), the subject's tokens taken out of the index, and a lookup that must
 * find nothing. Seconds.
 */
async function eraseSubject(s3: S3Client, eu: Jurisdiction, work: string, subject: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
  const conn = await db.connect();
  const tokens = [tokenOf(subject)];
  const started = performance.now();
  const discovery = await discoverByIndex(s3, eu, conn, path.join(work, 'erase'), found(subject));
  const tables = discovery.places.filter((p): p is Extract<SubjectPlace, { kind: 'dataset' }> => p.kind === 'dataset');
  if (tables.length !== HOLDING) throw new Error(`erasure found ${tables.length} tables, expected ${HOLDING}`);
  const rewritten = [];
  for (const place of tables) {
    const r = await rewriteWithoutSubject(
      s3,
      eu,
      conn,
      path.join(work, 'rewrite'),
      { itemId: place.datasetId, place, lock: null },
      tokens,
    );
    const record = (await readDatasetRecord(s3, eu.buckets.catalog, place.datasetId))!;
    await writeDatasetRecord(s3, eu.buckets.catalog, {
      ...record,
      outputs: record.outputs.map((o) => (o.table === place.table ? r.output : o)),
    });
    await s3.send(new DeleteObjectCommand({ Bucket: place.bucket, Key: place.key, VersionId: r.before.versionId! }));
    rewritten.push({
      datasetId: place.datasetId,
      table: place.table,
      versionId: r.after.versionId,
      sha256: r.after.sha256,
    });
  }
  await eraseFromIndex({ s3, jurisdiction: eu }, tokens, rewritten);
  const left = await lookupTokens({ s3, jurisdiction: eu }, tokens);
  if (left.places.size > 0) throw new Error('the index still names the erased subject');
  const seconds = (performance.now() - started) / 1000;
  conn.closeSync();
  db.closeSync();
  return seconds;
}

/** Erases each subject in turn; the median of their times. */
async function medianErasure(s3: S3Client, eu: Jurisdiction, work: string, subjects: readonly string[]) {
  const times: number[] = [];
  for (const subject of subjects) times.push(await eraseSubject(s3, eu, work, subject));
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

/**
 * Discovery and erasure of a subject held by 10 datasets among DATASETS (≥ 10M rows in all), beside discovery by a
 * full scan of the same catalog; erasure of the same 10 datasets among SMALL datasets and among DATASETS.
 */
export async function subjectRightsBench(bench: BenchStack, work: string): Promise<void> {
  const eu = getJurisdiction('eu');
  const s3 = createS3Client({ ...bench.stack.state.s3, ...bench.stack.state.jurisdictions.eu!.account! });
  const dir = path.join(work, 'dsr');
  await mkdir(dir, { recursive: true });
  const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
  const conn = await db.connect();
  try {
    process.stderr.write(`writing ${SMALL} datasets of ${ROWS} rows…\n`);
    await writeDatasets(s3, eu, dir, 0, SMALL);
    let t = performance.now();
    await syncIndex({ s3, jurisdiction: eu }, conn, path.join(dir, 'sync'));
    line(`subject index: first ${SMALL} datasets indexed in`, `${((performance.now() - t) / 1000).toFixed(1)} s`);
    const small = await medianErasure(s3, eu, dir, SMALL_SUBJECTS);
    line(`erasure of a subject in ${HOLDING} datasets among ${SMALL} (median of ${TRIES})`, `${small.toFixed(2)} s`);

    process.stderr.write(`writing ${DATASETS - SMALL} more datasets…\n`);
    await writeDatasets(s3, eu, dir, SMALL, DATASETS);
    t = performance.now();
    await syncIndex({ s3, jurisdiction: eu }, conn, path.join(dir, 'sync'));
    line(
      `subject index: ${DATASETS - SMALL} more datasets indexed in`,
      `${((performance.now() - t) / 1000).toFixed(1)} s`,
    );

    t = performance.now();
    const scan = await discoverByScan(s3, eu, conn, path.join(dir, 'scan'), found(LARGE_SUBJECTS[0]!));
    const scanSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const indexed = await discoverByIndex(s3, eu, conn, path.join(dir, 'index'), found(LARGE_SUBJECTS[0]!));
    const indexSeconds = (performance.now() - t) / 1000;
    const sameAnswer =
      JSON.stringify(scan.places.map((p) => JSON.stringify(p)).sort()) ===
      JSON.stringify(indexed.places.map((p) => JSON.stringify(p)).sort());
    if (!sameAnswer) throw new Error('discovery by index and by full scan found different places');
    const rows = DATASETS * ROWS;
    line(
      `discovery, full scan of ${DATASETS} datasets (${(rows / 1e6).toFixed(1)}M rows)`,
      `${scan.read.objects} objects, ${(scan.read.bytes / 2 ** 20).toFixed(1)} MiB, ${scanSeconds.toFixed(2)} s`,
    );
    line(
      `discovery through the index (same ${indexed.places.length} places)`,
      `${indexed.read.objects} objects, ${(indexed.read.bytes / 2 ** 20).toFixed(2)} MiB, ${indexSeconds.toFixed(2)} s`,
    );
    line('discovery bytes, index / full scan (target ≤ 0.01)', (indexed.read.bytes / scan.read.bytes).toFixed(4));
    line('discovery time, index / full scan (target ≤ 0.05)', (indexSeconds / scanSeconds).toFixed(4));
    const large = await medianErasure(s3, eu, dir, LARGE_SUBJECTS);
    line(
      `erasure of a subject in the same ${HOLDING} datasets among ${DATASETS} (median of ${TRIES})`,
      `${large.toFixed(2)} s`,
    );
    line(`erasure time, ${DATASETS} / ${SMALL} datasets (target ≤ 1.5)`, (large / small).toFixed(2));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
