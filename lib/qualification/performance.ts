import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DuckDBInstance } from '@duckdb/node-api';
import type { PqAcceptance } from '../../schemas/qualification';
import type { InventoryPart } from './inventory';
import { bundledPipelines, loadPipeline } from '../preprocess/load-pipeline';
import { resolvePipeline } from '../preprocess/pipeline';
import { runBuiltin } from '../preprocess/builtin';
import { quoteLiteral } from '../tabular/sql';
import type { curateTable } from '../../activities/curate-table';
import { Tokenizer } from '../crypto/pseudonymize';
import { TokenPool } from '../crypto/token-pool';
import type { CuratePackageInput } from '../../schemas/ingest';
import type { Table } from '../../schemas/package';

type Rules = InventoryPart['rules'];

/**
 * The reference datasets of the performance qualification, by table: deterministic, generated in DuckDB (the same
 * rows on every machine), with missing values where the shipped pipelines impute.
 */
const REFERENCE_TABLES: Record<string, (rows: number) => string> = {
  visits: (rows) => `
    SELECT printf('S%06d', i) AS subject_id,
           DATE '2024-01-01' + CAST(i % 365 AS INTEGER) AS visit_date,
           CASE WHEN i % 17 = 0 THEN NULL ELSE 50 + (i * 37 % 61) + (i % 7) / 10 END::DOUBLE AS weight_kg,
           CASE WHEN i % 13 = 0 THEN NULL ELSE 100 + (i * 41 % 70) END::DOUBLE AS systolic_bp,
           CASE WHEN i % 11 = 0 THEN NULL ELSE 60 + (i * 29 % 40) END::DOUBLE AS diastolic_bp
    FROM range(${rows}) t(i)`,
  labs: (rows) => `
    SELECT printf('S%06d', i // 3) AS subject_id,
           ['GLU', 'LDL', 'HBA1C', 'CRP'][1 + i * 7 % 4] AS test_code,
           CASE WHEN i % 19 = 0 THEN NULL ELSE 1 + (i * 53 % 997) / 10 END::DOUBLE AS value
    FROM range(${rows}) t(i)`,
};

/**
 * The reference package's table, as a source system exports it: a subject identifier (four visits each), a direct
 * identifier, a ZIP code to generalize, a date to shift, values with gaps, and free text to drop.
 */
const REFERENCE_PACKAGE_TABLE: Table = {
  path: 'data/visits.csv',
  name: 'visits',
  format: 'csv',
  columns: [
    { name: 'subject_id', type: 'string', role: 'subject-id', required: true },
    { name: 'full_name', type: 'string', role: 'direct-identifier', required: true },
    { name: 'zip', type: 'string', role: 'generalize', method: 'zip3', required: false },
    { name: 'visit_date', type: 'date', role: 'date', required: true },
    { name: 'weight_kg', type: 'number', role: 'value', required: false },
    { name: 'note', type: 'string', role: 'free-text', required: false },
  ],
};

const referencePackageRows = (rows: number) => `
  SELECT printf('S%06d', i // 4) AS subject_id,
         printf('Reference Person %06d', i // 4) AS full_name,
         lpad(CAST((i // 4) * 7919 % 100000 AS VARCHAR), 5, '0') AS zip,
         DATE '2024-01-01' + CAST(i % 365 AS INTEGER) AS visit_date,
         CASE WHEN i % 17 = 0 THEN NULL ELSE 50 + (i * 37 % 61) + (i % 7) / 10 END::DOUBLE AS weight_kg,
         'visit ' || i AS note
  FROM range(${rows}) t(i)`;

/**
 * The key the reference package is pseudonymized with: fixed, so the curated output is the same on every machine.
 * It is no secret and keys nothing but the reference dataset, which holds no one's data.
 */
const REFERENCE_KEY = createHash('sha256').update('steward performance qualification: reference dataset key').digest();

export interface PipelineMeasurement {
  pipeline: string;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  /** SHA-256 of the output as CSV (header, rows in output order): the values, whatever the file format's bytes. */
  outputSha256: string;
}

/** Runs one shipped built-in pipeline over its reference table in a scratch folder: its output digest and its speed. */
async function measurePipeline(
  ref: string,
  parameters: Record<string, string | number | boolean>,
  rows: number,
  work: string,
): Promise<PipelineMeasurement> {
  const source = await loadPipeline(ref, parameters);
  const spec = resolvePipeline(ref, source.document, parameters);
  if (spec.executor !== 'builtin') throw new Error(`${ref} is not a built-in pipeline`);
  const table = spec.table ?? 'visits';
  const generate = REFERENCE_TABLES[table];
  if (!generate) throw new Error(`${ref}: no reference dataset for its table ${table}`);
  const input = path.join(work, `${spec.name}-input.parquet`);
  const output = path.join(work, `${spec.name}-output.parquet`);
  const csv = path.join(work, `${spec.name}-output.csv`);
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  try {
    await conn.run(`COPY (${generate(rows)}) TO ${quoteLiteral(input)} (FORMAT parquet)`);
    const started = performance.now();
    const result = await runBuiltin({ input, output, steps: spec.steps, seed: 1 });
    const seconds = (performance.now() - started) / 1000;
    await conn.run(
      `COPY (SELECT * FROM read_parquet(${quoteLiteral(output)})) TO ${quoteLiteral(csv)} (HEADER, DELIMITER ',')`,
    );
    return {
      pipeline: ref,
      rows: result.rows,
      seconds,
      rowsPerSecond: result.rows / Math.max(seconds, 1e-6),
      outputSha256: createHash('sha256')
        .update(await readFile(csv))
        .digest('hex'),
    };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/**
 * Curates the reference package's table as ingestion does (validation against its declared columns, keyed tokens,
 * date shift, ZIP generalization, free text dropped, Parquet written) with the fixed reference key: its output digest
 * and its speed. Everyone consents: the consent decision is the operational qualification's to test.
 */
async function measureCuration(
  curate: typeof curateTable,
  rows: number,
  work: string,
): Promise<PipelineMeasurement & { problems: string[] }> {
  const input = path.join(work, 'reference-package.csv');
  const output = path.join(work, 'reference-package.parquet');
  const csv = path.join(work, 'reference-package-curated.csv');
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  const pool = new TokenPool(1);
  try {
    await conn.run(`COPY (${referencePackageRows(rows)}) TO ${quoteLiteral(input)} (HEADER, DELIMITER ',')`);
    const metadata = {
      studyId: 'PQ-REFERENCE',
      protocolId: 'PQ-REFERENCE',
      jurisdiction: 'eu',
      dataClass: 'real-world',
      purpose: 'primary-research',
      sourceSystem: 'steward performance qualification',
      dateShiftDays: 30,
      tables: [REFERENCE_PACKAGE_TABLE],
    };
    const problems: { file: string; rule: string }[] = [];
    const started = performance.now();
    const result = await curate({
      conn,
      index: 0,
      localFile: input,
      outFile: output,
      table: REFERENCE_PACKAGE_TABLE,
      input: { datasetId: 'ds-pq-reference', metadata } as unknown as CuratePackageInput,
      tokenizer: new Tokenizer(REFERENCE_KEY, 1),
      consent: Promise.resolve(() => undefined),
      problems,
      memoryLimitBytes: 512 * 1024 * 1024,
      pool,
      onKeyed: undefined,
      cache: { tokens: new Map(), subjects: new Map() },
      unchanged: Promise.resolve(true),
    });
    const seconds = (performance.now() - started) / 1000;
    if (!result) {
      return {
        pipeline: 'ingestion',
        rows: 0,
        seconds,
        rowsPerSecond: 0,
        outputSha256: '',
        problems: problems.map((p) => `${p.file}: ${p.rule}`),
      };
    }
    // Sorted: the digest is of the curated values, whatever order the rows were written in.
    await conn.run(
      `COPY (SELECT * FROM read_parquet(${quoteLiteral(output)}) ORDER BY ALL) TO ${quoteLiteral(csv)} (HEADER, DELIMITER ',')`,
    );
    return {
      pipeline: 'ingestion',
      rows: result.rows.curated,
      seconds,
      rowsPerSecond: result.rows.curated / Math.max(seconds, 1e-6),
      outputSha256: createHash('sha256')
        .update(await readFile(csv))
        .digest('hex'),
      problems: [],
    };
  } finally {
    await pool.close();
    conn.closeSync();
    db.closeSync();
  }
}

/**
 * A seeded randomized step: the built-in `sample` step (a Bernoulli sample keyed on the job's seed) over the reference
 * table, run as a pipeline runs it, and the mean of a column of what it kept. The same seed gives the same result;
 * each seed's result lies within the stated variation of the full table's mean.
 */
async function sampledMeans(rows: number, fraction: number, seeds: readonly number[], work: string) {
  const input = path.join(work, 'sample-input.parquet');
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  try {
    await conn.run(`COPY (${REFERENCE_TABLES.visits!(rows)}) TO ${quoteLiteral(input)} (FORMAT parquet)`);
    const value = async (file: string) =>
      Number(
        (await conn.runAndReadAll(`SELECT avg(systolic_bp) FROM read_parquet(${quoteLiteral(file)})`)).getRows()[0]![0],
      );
    const full = await value(input);
    const sample = async (seed: number, run: number) => {
      const output = path.join(work, `sample-${seed}-${run}.parquet`);
      await runBuiltin({ input, output, steps: [{ op: 'sample', fraction }], seed });
      return value(output);
    };
    const runs: { seed: number; mean: number; again: number }[] = [];
    for (const seed of seeds) runs.push({ seed, mean: await sample(seed, 1), again: await sample(seed, 2) });
    return { full, runs };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/**
 * The performance qualification (PQ): ingestion's curation (`curate`, as ingestion runs it) of the reference package
 * and each shipped built-in pipeline over its reference dataset, each output's digest against the one recorded in the
 * requirements (deterministic steps), their speed against the acceptance range, and a seeded randomized step within
 * its stated variation across several runs.
 */
export async function performanceRules(acceptance: PqAcceptance, curate: typeof curateTable): Promise<Rules> {
  const rules: Rules = [];
  const work = await mkdtemp(path.join(os.tmpdir(), 'steward-pq-'));
  try {
    const shipped = await bundledPipelines();
    for (const ref of shipped) {
      const recorded = acceptance.pipelines[ref];
      const source = await loadPipeline(ref, recorded?.parameters ?? {}).catch(() => undefined);
      const executor = (source?.document as { executor?: string } | undefined)?.executor;
      if (executor !== 'builtin') continue;
      if (!recorded) {
        rules.push({
          check: 'pq.pipelines',
          rule: `${ref} has a recorded output digest`,
          ok: false,
          detail: `the requirements record none for ${ref}: a shipped pipeline without acceptance criteria`,
        });
        continue;
      }
      const m = await measurePipeline(ref, recorded.parameters, acceptance.rows, work);
      rules.push({
        check: 'pq.pipelines',
        rule: `${ref} on its reference dataset (${acceptance.rows} rows) gives the recorded output`,
        ok: m.outputSha256 === recorded.outputSha256,
        detail:
          m.outputSha256 === recorded.outputSha256
            ? `output SHA-256 ${m.outputSha256}`
            : `output SHA-256 ${m.outputSha256}, recorded ${recorded.outputSha256}`,
      });
      const { minRowsPerSecond, maxSeconds } = acceptance.throughput;
      const within = m.rowsPerSecond >= minRowsPerSecond && m.seconds <= maxSeconds;
      rules.push({
        check: 'pq.throughput',
        rule: `${ref} runs within its acceptance range (at least ${minRowsPerSecond} rows/s, at most ${maxSeconds} s)`,
        ok: within,
        detail: `${Math.round(m.rowsPerSecond)} rows/s, ${m.seconds.toFixed(3)} s for ${m.rows} rows`,
      });
    }
    const curated = await measureCuration(curate, acceptance.rows, work);
    const recordedCuration = acceptance.ingestion?.outputSha256;
    rules.push({
      check: 'pq.ingestion',
      rule: `ingestion's curation of the reference package (${acceptance.rows} rows) gives the recorded output`,
      ok: curated.problems.length === 0 && recordedCuration !== undefined && curated.outputSha256 === recordedCuration,
      detail:
        curated.problems.length > 0
          ? `refused: ${curated.problems.join('; ')}`
          : recordedCuration === undefined
            ? `output SHA-256 ${curated.outputSha256}; the requirements record none`
            : curated.outputSha256 === recordedCuration
              ? `output SHA-256 ${curated.outputSha256}`
              : `output SHA-256 ${curated.outputSha256}, recorded ${recordedCuration}`,
    });
    {
      const { minRowsPerSecond, maxSeconds } = acceptance.throughput;
      rules.push({
        check: 'pq.throughput',
        rule: `ingestion's curation runs within its acceptance range (at least ${minRowsPerSecond} rows/s, at most ${maxSeconds} s)`,
        ok: curated.rowsPerSecond >= minRowsPerSecond && curated.seconds <= maxSeconds,
        detail: `${Math.round(curated.rowsPerSecond)} rows/s, ${curated.seconds.toFixed(3)} s for ${curated.rows} rows`,
      });
    }
    const { fraction, seeds, maxRelativeDeviation } = acceptance.variation;
    const sampled = await sampledMeans(acceptance.rows, fraction, seeds, work);
    for (const run of sampled.runs) {
      const deviation = Math.abs(run.mean - sampled.full) / Math.abs(sampled.full);
      rules.push({
        check: 'pq.variation',
        rule: `the built-in sample step (${Math.round(fraction * 100)}%) with seed ${run.seed} repeats exactly and its mean lies within ${maxRelativeDeviation * 100}% of the full mean`,
        ok: run.mean === run.again && deviation <= maxRelativeDeviation,
        detail: `mean ${run.mean.toFixed(4)} (again ${run.again.toFixed(4)}), full ${sampled.full.toFixed(4)}, deviation ${(deviation * 100).toFixed(3)}%`,
      });
    }
    return rules;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
