import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { runBuiltin, TransformError } from '../../lib/preprocess/builtin';
import { PipelineSpecSchema, type TransformStep } from '../../schemas/preprocess';
import { tempDir } from '../helpers';

let dir: string;
let input: string;

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    return (await conn.runAndReadAll(sql)).getRowObjectsJS() as Record<string, unknown>[];
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

let runs = 0;
async function transform(steps: TransformStep[], seed = 7): Promise<{ rows: Record<string, unknown>[]; file: string }> {
  const file = path.join(dir, `out-${runs++}.parquet`);
  await runBuiltin({ input, output: file, steps, seed });
  return { rows: await query(`SELECT * FROM read_parquet('${file}')`), file };
}

const close = (expected: number) => expect.closeTo(expected, 9);

beforeAll(async () => {
  dir = await tempDir('steward-preprocess-');
  input = path.join(dir, 'visits.parquet');
  await query(`COPY (SELECT * FROM (VALUES
      ('S1', DATE '2025-01-01', 60.0, 120, 'A', 'mild'),
      ('S1', DATE '2025-01-10', NULL, 130, 'B', 'severe'),
      ('S1', DATE '2025-02-05', 70.0, 110, 'A', 'moderate'),
      ('S2', DATE '2025-01-03', 80.0, 140, NULL, 'mild')
    ) v(subject_id, visit_date, weight, sbp, arm, severity)) TO '${input}' (FORMAT parquet)`);
});

describe('built-in transforms (DuckDB), against hand-computed values', () => {
  it('standardize: (x − mean) / population sd, missing stays missing', async () => {
    const { rows } = await transform([{ op: 'standardize', columns: ['weight'] }]);
    // mean 70, population sd √(200/3) = 8.16496580927726
    expect(rows.map((r) => r.weight)).toEqual([
      close(-10 / 8.16496580927726),
      null,
      close(0),
      close(1.224744871391589),
    ]);
  });

  it('min-max: (x − min) / (max − min)', async () => {
    const { rows } = await transform([{ op: 'min-max', columns: ['sbp'] }]);
    expect(rows.map((r) => r.sbp)).toEqual([close(1 / 3), close(2 / 3), close(0), close(1)]);
  });

  it('impute: mean, median and a constant fill only the missing value', async () => {
    for (const [method, filled] of [
      ['mean', 70],
      ['median', 70],
    ] as const) {
      const { rows } = await transform([{ op: 'impute', columns: ['weight'], method }]);
      expect(rows.map((r) => r.weight)).toEqual([60, filled, 70, 80]);
    }
    const { rows } = await transform([{ op: 'impute', columns: ['weight'], method: 'constant', value: -1 }]);
    expect(rows.map((r) => r.weight)).toEqual([60, -1, 70, 80]);
  });

  it('one-hot: one 0/1 column per sorted category, the column dropped; ordinal: positions in the given order', async () => {
    const { rows } = await transform([
      { op: 'one-hot', column: 'arm' },
      { op: 'ordinal', column: 'severity', order: ['mild', 'moderate', 'severe'] },
    ]);
    expect(rows.map((r) => [r['arm=A'], r['arm=B'], r.severity])).toEqual([
      [1, 0, 0],
      [0, 1, 2],
      [1, 0, 1],
      [0, 0, 0],
    ]);
    expect(Object.keys(rows[0]!)).not.toContain('arm');
  });

  it('window: per-subject fixed windows of 28 days from the first observation', async () => {
    const { rows } = await transform([
      { op: 'window', subject: 'subject_id', time: 'visit_date', days: 28, values: ['sbp'], aggregate: 'mean' },
    ]);
    expect(
      rows.map((r) => [
        r.subject_id,
        r.window_index,
        (r.window_start as Date).toISOString().slice(0, 10),
        r.rows_in_window,
        r.sbp,
      ]),
    ).toEqual([
      ['S1', 0, '2025-01-01', 2, 125],
      ['S1', 1, '2025-01-29', 1, 110],
      ['S2', 0, '2025-01-03', 1, 140],
    ]);
  });

  it('sample: a Bernoulli sample keyed on the seed: the same seed keeps the same rows, another seed others', async () => {
    const many = path.join(dir, 'many.parquet');
    await query(`COPY (SELECT i AS id, i % 97 AS v FROM range(20000) t(i)) TO '${many}' (FORMAT parquet)`);
    const sampled = async (seed: number) => {
      const file = path.join(dir, `sample-${seed}-${runs++}.parquet`);
      await runBuiltin({ input: many, output: file, steps: [{ op: 'sample', fraction: 0.25 }], seed });
      return (await query(`SELECT id FROM read_parquet('${file}')`)).map((r) => Number(r.id));
    };
    const [a, again, b] = [await sampled(3), await sampled(3), await sampled(4)];
    expect(again).toEqual(a);
    expect(b).not.toEqual(a);
    // About a quarter each, in the input's order.
    for (const ids of [a, b]) {
      expect(ids.length).toBeGreaterThan(4500);
      expect(ids.length).toBeLessThan(5500);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
    }
  });

  it('is deterministic: the same input, steps and seed give the same bytes', async () => {
    const steps: TransformStep[] = [
      { op: 'impute', columns: ['weight'], method: 'median' },
      { op: 'standardize', columns: ['weight', 'sbp'] },
      { op: 'one-hot', column: 'arm' },
    ];
    const sha = async (file: string) =>
      createHash('sha256')
        .update(await readFile(file))
        .digest('hex');
    const [a, b] = [await transform(steps), await transform(steps)];
    expect(await sha(a.file)).toBe(await sha(b.file));
    const changed = await transform([{ ...steps[0]!, method: 'mean' } as TransformStep, ...steps.slice(1)]);
    expect(await sha(changed.file)).toBe(await sha(a.file)); // mean and median of 60, 70, 80 agree: same values
    const other = await transform([
      { op: 'impute', columns: ['weight'], method: 'constant', value: 0 },
      ...steps.slice(1),
    ]);
    expect(await sha(other.file)).not.toBe(await sha(a.file));
  });

  it('names the step, column and rule when a step cannot run', async () => {
    await expect(transform([{ op: 'standardize', columns: ['arm'] }])).rejects.toThrow(
      new TransformError(0, 'standardize', 'arm', 'must be numeric, is VARCHAR'),
    );
    await expect(
      transform([
        { op: 'one-hot', column: 'arm' },
        { op: 'min-max', columns: ['arm'] },
      ]),
    ).rejects.toThrow('step 2 (min-max), column "arm": no such column');
    await expect(transform([{ op: 'ordinal', column: 'severity', order: ['mild', 'severe'] }])).rejects.toThrow(
      'step 1 (ordinal), column "severity": holds a value that the order does not list',
    );
    await expect(
      transform([{ op: 'window', subject: 'subject_id', time: 'sbp', days: 7, values: ['weight'], aggregate: 'sum' }]),
    ).rejects.toThrow('step 1 (window), column "sbp": must be a date or timestamp, is INTEGER');
  });

  it('pipeline specs are validated: a constant imputation needs its value', () => {
    const base = { name: 'vitals-std', version: '1.0.0', executor: 'builtin', purpose: 'primary-research' };
    expect(PipelineSpecSchema.safeParse({ ...base, steps: [{ op: 'standardize', columns: ['x'] }] }).success).toBe(
      true,
    );
    const bad = PipelineSpecSchema.safeParse({
      ...base,
      steps: [{ op: 'impute', columns: ['x'], method: 'constant' }],
    });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toBe('a constant imputation needs value, and only it');
  });
});

describe('a long built-in run', () => {
  let big: string;
  beforeAll(async () => {
    big = path.join(dir, 'big.parquet');
    await query(
      `COPY (SELECT i % 1000 AS s, ((i * 7) % 1009)::DOUBLE AS a, ((i * 13) % 997)::DOUBLE AS b, ((i * 17) % 991)::DOUBLE AS c
             FROM range(6000000) t(i)) TO '${big}' (FORMAT parquet)`,
    );
  });
  const steps: TransformStep[] = [{ op: 'standardize', columns: ['a', 'b', 'c'] }];

  it('reports its progress while it writes', async () => {
    const seen: number[] = [];
    const result = await runBuiltin({
      input: big,
      output: path.join(dir, 'big-out.parquet'),
      steps,
      seed: 1,
      onProgress: (f) => seen.push(f),
    });
    expect(result.rows).toBe(6_000_000);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((f) => f >= 0 && f <= 1)).toBe(true);
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
  });

  it('stops when its job is cancelled, with the reason', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('cancelled by the test')), 300);
    await expect(
      runBuiltin({ input: big, output: path.join(dir, 'big-cancelled.parquet'), steps, seed: 1, signal: abort.signal }),
    ).rejects.toThrow('cancelled by the test');
  });
});
