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
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  await rm(work, { recursive: true, force: true });
  await writeFile(path.join(dir, 'pipeline.json'), `${JSON.stringify(REFERENCE_PIPELINE, null, 2)}\n`);
}
