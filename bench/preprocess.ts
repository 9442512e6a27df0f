import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ingestTaskQueue, preprocessJobWorkflowId } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { signedInput } from '../lib/client/request';
import { loadPipeline } from '../lib/preprocess/load-pipeline';
import { writeConsentPart, writeDatasetRecord } from '../lib/storage/catalog';
import { datasetObjectKey } from '../lib/storage/layout';
import { hashFile, putFileOnce } from '../lib/storage/objects';
import { quoteLiteral } from '../lib/tabular/sql';
import { DatasetRecordSchema } from '../schemas/dataset';
import type { PreprocessJobResult } from '../schemas/preprocess';
import type { BenchStack } from './ingest';
import { line } from './report';

const ROWS = Number(process.env.BENCH_PREPROCESS_ROWS ?? 10_000_000);
const SUBJECTS = 10_000;
const NUMERIC = 18;
const STUDY = 'BENCH-PRE';

const numeric = Array.from({ length: NUMERIC }, (_, i) => `x${String(i + 1).padStart(2, '0')}`);

/** 20 columns: a subject token, 18 measurements (some missing), one categorical arm. Same rows on every run. */
function tableSql(rows: number): string {
  return `SELECT 'v1.' || md5(CAST(i % ${SUBJECTS} AS VARCHAR)) AS subject_id,
    ${numeric.map((c, k) => `CASE WHEN (i + ${k}) % 97 = 0 THEN NULL ELSE ((i * ${k + 7}) % 1009) / 10.0 + ${k} END::DOUBLE AS ${c}`).join(',\n    ')},
    ['A', 'B', 'C', 'D', 'E'][1 + i % 5] AS arm
  FROM range(${rows}) t(i)`;
}

/** The transform a job runs, as one bare DuckDB query on the same file (all threads, statistics in a CTE). */
function referenceSql(input: string, output: string): string {
  const file = `read_parquet(${quoteLiteral(input)})`;
  return `COPY (
    WITH s AS (SELECT ${numeric.map((c) => `avg(${c}) AS m_${c}, stddev_pop(${c}) AS s_${c}`).join(', ')} FROM ${file})
    SELECT subject_id,
      ${numeric.map((c) => `CASE WHEN ${c} IS NULL THEN NULL ELSE coalesce((${c} - m_${c}) / nullif(s_${c}, 0), 0.0) END AS ${c}`).join(',\n      ')},
      ${['A', 'B', 'C', 'D', 'E'].map((v) => `CAST(coalesce(arm = '${v}', false) AS TINYINT) AS "arm=${v}"`).join(', ')}
    FROM ${file}, s
  ) TO ${quoteLiteral(output)} (FORMAT parquet, COMPRESSION zstd)`;
}

/**
 * Standardize (18 columns) + one-hot (1 column) of ROWS rows × 20 columns through a whole preprocessing job (signed
 * request, guards, download and checksum, consent check, staging, the built-in executor, upload, run documentation,
 * output dataset, audit), against the bare DuckDB query of the same transform on the same file in this process.
 */
export async function preprocessBench(bench: BenchStack, work: string): Promise<void> {
  const eu = getJurisdiction('eu');
  const input = path.join(work, 'preprocess-input.parquet');
  process.stderr.write(`writing a ${ROWS} × 20 table…\n`);
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`COPY (${tableSql(ROWS)}) TO ${quoteLiteral(input)} (FORMAT parquet, COMPRESSION zstd)`);
  const tokens = (await conn.runAndReadAll(`SELECT DISTINCT subject_id FROM read_parquet(${quoteLiteral(input)})`))
    .getRows()
    .map((r) => String(r[0]));

  // The dataset as an ingestion would have left it: the object, its record, its subjects' consent.
  const datasetId = 'ds-eu-0000000000000000000be4c1';
  const digest = await hashFile(input);
  const key = datasetObjectKey(datasetId, 'measurements.parquet');
  const put = await putFileOnce(bench.s3, eu.buckets.curated, key, input, digest.sha256, {
    contentType: 'application/vnd.apache.parquet',
  });
  const createdAt = new Date().toISOString();
  const rows = { in: ROWS, curated: ROWS, excluded: 0, excludedByReason: {} };
  await writeDatasetRecord(
    bench.s3,
    eu.buckets.catalog,
    DatasetRecordSchema.parse({
      format: 'steward-dataset/1',
      datasetId,
      packageId: '0000000000000000000be4c1',
      jurisdiction: 'eu',
      studyId: STUDY,
      protocolId: `${STUDY}-P`,
      dataClass: 'real-world',
      classification: eu.retention['real-world']!.classification,
      purpose: 'secondary-research',
      consentScopes: ['secondary-research'],
      sourceSystem: 'bench',
      keyVersions: [1],
      createdAt,
      retention: { until: null, duration: 'P10Y', legalBasis: 'bench' },
      rows,
      inputs: [],
      outputs: [
        {
          table: 'measurements',
          source: 'bench',
          bucket: eu.buckets.curated,
          key,
          versionId: put.versionId,
          sha256: digest.sha256,
          bytes: digest.bytes,
          columns: [
            { name: 'subject_id', type: 'VARCHAR', role: 'subject-id' },
            ...numeric.map((name) => ({ name, type: 'DOUBLE', role: 'value' })),
            { name: 'arm', type: 'VARCHAR', role: 'value' },
          ],
          rows,
        },
      ],
      lineage: {
        landing: { bucket: eu.buckets.landing, prefix: 'bench/' },
        manifestSha256: digest.sha256,
        workflowId: 'bench',
        runId: 'bench',
        submittedBy: { id: 'Demo Steward', role: 'steward' },
      },
    }),
  );
  await writeConsentPart(bench.s3, eu.buckets.catalog, {
    format: 'steward-consent-part/1',
    jurisdiction: 'eu',
    studyId: STUDY,
    partId: 'bench',
    kind: 'import',
    createdAt,
    entries: tokens.map((token) => ({
      token,
      scopes: ['secondary-research'],
      status: 'given' as const,
      icfVersion: 'bench',
      givenOn: '2024-01-01',
      withdrawnOn: null,
      expiresOn: null,
      importedAt: createdAt,
    })),
  });

  const pipelineFile = path.join(work, 'standardize-one-hot.json');
  await writeFile(
    pipelineFile,
    JSON.stringify({
      name: 'bench-standardize-one-hot',
      version: '1.0.0',
      executor: 'builtin',
      purpose: 'secondary-research',
      steps: [
        { op: 'standardize', columns: numeric },
        { op: 'one-hot', column: 'arm', categories: ['A', 'B', 'C', 'D', 'E'] },
      ],
    }),
  );
  const pipeline = await loadPipeline(pipelineFile, {});

  const referenceStart = performance.now();
  await conn.run(referenceSql(input, path.join(work, 'preprocess-reference.parquet')));
  const reference = (performance.now() - referenceStart) / 1000;
  conn.closeSync();
  db.closeSync();

  const requestId = `bench-preprocess-${Date.now()}`;
  const jobStart = performance.now();
  const handle = await bench.client.workflow.start('preprocessJobWorkflow', {
    taskQueue: ingestTaskQueue('eu'),
    workflowId: preprocessJobWorkflowId('eu', requestId),
    args: [
      signedInput(bench.identity, {
        action: 'preprocess.run',
        jurisdiction: 'eu',
        requestId,
        params: { datasetIds: [datasetId], pipeline, parameters: {}, seed: 1, gpu: false },
      }),
    ],
  });
  const result = (await handle.result()) as PreprocessJobResult;
  const job = (performance.now() - jobStart) / 1000;
  if (result.document.outputs[0]!.rows !== ROWS) throw new Error('the job did not transform every row');

  line(`preprocessing job, ${ROWS} rows × 20 columns (standardize 18 + one-hot 1)`, `${job.toFixed(2)} s`);
  line('bare DuckDB query of the same transform, all threads', `${reference.toFixed(2)} s`);
  line('job rows/s', (ROWS / job).toFixed(0));
  line('bare query rows/s', (ROWS / reference).toFixed(0));
  line('job / bare query (target ≥ 0.5)', (reference / job).toFixed(2));
}
