import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { PipelineSpec } from '../../schemas/preprocess';
import { quoteLiteral } from '../tabular/sql';
import { runBuiltin } from './builtin';

/**
 * The reference pipeline the GPU pipeline is qualified against: every built-in transform the GPU pipeline implements,
 * on a small generated table with missing values and categories.
 */
export const REFERENCE_PIPELINE: Extract<PipelineSpec, { executor: 'builtin' }> = {
  name: 'reference-transforms',
  version: '1.0.0',
  executor: 'builtin',
  gpu: false,
  purpose: 'primary-research',
  steps: [
    { op: 'impute', columns: ['weight'], method: 'median' },
    { op: 'impute', columns: ['glucose'], method: 'mean' },
    { op: 'impute', columns: ['ldl'], method: 'constant', value: 100 },
    { op: 'standardize', columns: ['weight', 'glucose'] },
    { op: 'min-max', columns: ['sbp', 'ldl'] },
    { op: 'one-hot', column: 'arm' },
    { op: 'ordinal', column: 'severity', order: ['mild', 'moderate', 'severe'] },
  ],
};

/** The window step, qualified on its own: per-subject 30-day windows of a time series, mean, sum, min and max. */
export const REFERENCE_WINDOW_PIPELINES: Extract<PipelineSpec, { executor: 'builtin' }>[] = (
  ['mean', 'sum', 'min', 'max'] as const
).map((aggregate) => ({
  name: `reference-window-${aggregate}`,
  version: '1.0.0',
  executor: 'builtin',
  gpu: false,
  purpose: 'primary-research',
  steps: [
    { op: 'window', subject: 'subject_id', time: 'measured_on', days: 30, values: ['glucose', 'sbp'], aggregate },
  ],
}));

/** A time series: 12 subjects, irregular days over 200 days, values with gaps. */
function referenceSeriesSql(rows: number): string {
  return `
    SELECT printf('S%02d', i % 12) AS subject_id,
           DATE '2024-01-01' + CAST((i * 7 + i % 5) % 200 AS INTEGER) AS measured_on,
           CASE WHEN i % 9 = 0 THEN NULL ELSE 70 + (i * 53 % 89) + (i % 4) / 4 END::DOUBLE AS glucose,
           (100 + (i * 41 % 70))::INTEGER AS sbp
    FROM range(${rows}) t(i)`;
}

/** A deterministic table of `rows` rows: numeric columns with missing values, two categorical columns. */
function referenceInputSql(rows: number): string {
  return `
    SELECT printf('S%04d', i) AS subject_id,
           CASE WHEN i % 17 = 0 THEN NULL ELSE 50 + (i * 37 % 61) + (i % 7) / 10 END::DOUBLE AS weight,
           CASE WHEN i % 13 = 0 THEN NULL ELSE 70 + (i * 53 % 89) END::DOUBLE AS glucose,
           CASE WHEN i % 11 = 0 THEN NULL ELSE 60 + (i * 29 % 140) END::DOUBLE AS ldl,
           (100 + (i * 41 % 70))::INTEGER AS sbp,
           CASE WHEN i % 19 = 0 THEN NULL ELSE ['A', 'B', 'C'][1 + i * 7 % 3] END AS arm,
           ['mild', 'moderate', 'severe'][1 + i * 5 % 3] AS severity
    FROM range(${rows}) t(i)`;
}

/**
 * Writes `input.csv`, `builtin.csv` (the built-in executor's output) and `pipeline.json` into `dir`:
 * what the device check carries to a GPU machine, which has Python but no Node.
 */
export async function writeReferenceFixtures(dir: string, rows = 240): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'steward-reference-'));
  const input = path.join(work, 'input.parquet');
  const output = path.join(work, 'builtin.parquet');
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  try {
    await conn.run(`COPY (${referenceInputSql(rows)}) TO ${quoteLiteral(input)} (FORMAT parquet)`);
    await conn.run(`COPY (${referenceInputSql(rows)}) TO ${quoteLiteral(path.join(dir, 'input.csv'))} (HEADER)`);
    await runBuiltin({ input, output, steps: REFERENCE_PIPELINE.steps, seed: 1 });
    await conn.run(
      `COPY (SELECT * FROM read_parquet(${quoteLiteral(output)})) TO ${quoteLiteral(path.join(dir, 'builtin.csv'))} (HEADER)`,
    );
    const series = path.join(work, 'series.parquet');
    await conn.run(`COPY (${referenceSeriesSql(rows)}) TO ${quoteLiteral(series)} (FORMAT parquet)`);
    await conn.run(
      `COPY (${referenceSeriesSql(rows)}) TO ${quoteLiteral(path.join(dir, 'window-input.csv'))} (HEADER)`,
    );
    for (const pipeline of REFERENCE_WINDOW_PIPELINES) {
      const aggregate = pipeline.name.slice('reference-window-'.length);
      const out = path.join(work, `window-${aggregate}.parquet`);
      await runBuiltin({ input: series, output: out, steps: pipeline.steps, seed: 1 });
      await conn.run(
        `COPY (SELECT * FROM read_parquet(${quoteLiteral(out)})) TO ${quoteLiteral(path.join(dir, `window-${aggregate}.csv`))} (HEADER)`,
      );
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  await rm(work, { recursive: true, force: true });
  await writeFile(path.join(dir, 'pipeline.json'), `${JSON.stringify(REFERENCE_PIPELINE, null, 2)}\n`);
  await writeFile(path.join(dir, 'window-pipelines.json'), `${JSON.stringify(REFERENCE_WINDOW_PIPELINES, null, 2)}\n`);
}
