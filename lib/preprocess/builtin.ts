import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { TransformStep } from '../../schemas/preprocess';
import { quoteIdent, quoteLiteral } from '../tabular/sql';

/** A step that cannot run on the data it was given: which step, which column, which rule. */
export class TransformError extends Error {
  constructor(
    readonly step: number,
    readonly op: string,
    readonly column: string | undefined,
    readonly rule: string,
  ) {
    super(`step ${step + 1} (${op})${column ? `, column "${column}"` : ''}: ${rule}`);
  }
}

const NUMERIC =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*)$/;
const TEMPORAL = /^(DATE|TIMESTAMP.*)$/;
/** Carries each row's position so the output keeps the input's order whatever the steps do. */
const ROW = '__steward_row';

type Columns = Map<string, string>;

async function columnsOf(conn: DuckDBConnection, relation: string): Promise<Columns> {
  const reader = await conn.runAndReadAll(`DESCRIBE ${relation}`);
  return new Map(reader.getRowObjectsJS().map((r) => [String(r.column_name), String(r.column_type)]));
}

async function scalar(conn: DuckDBConnection, sql: string): Promise<unknown> {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRows()[0]?.[0];
}

function need(columns: Columns, step: number, op: string, column: string, kind?: 'numeric' | 'temporal'): string {
  const type = columns.get(column);
  if (type === undefined || column === ROW) throw new TransformError(step, op, column, 'no such column');
  if (kind === 'numeric' && !NUMERIC.test(type)) {
    throw new TransformError(step, op, column, `must be numeric, is ${type}`);
  }
  if (kind === 'temporal' && !TEMPORAL.test(type)) {
    throw new TransformError(step, op, column, `must be a date or timestamp, is ${type}`);
  }
  return quoteIdent(column);
}

async function categories(conn: DuckDBConnection, relation: string, column: string): Promise<string[]> {
  const reader = await conn.runAndReadAll(
    `SELECT DISTINCT CAST(${quoteIdent(column)} AS VARCHAR) AS v FROM ${relation} WHERE ${quoteIdent(column)} IS NOT NULL ORDER BY v`,
  );
  return reader.getRows().map((r) => String(r[0]));
}

/** A statistic as an exact DOUBLE constant (JavaScript's shortest round-trip form, parsed by DuckDB as a double). */
function doubleLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'CAST(NULL AS DOUBLE)';
  return `CAST(${quoteLiteral(String(Number(value)))} AS DOUBLE)`;
}

/** The SELECT that turns relation `from` into the next one. */
async function stepSql(
  conn: DuckDBConnection,
  from: string,
  columns: Columns,
  step: TransformStep,
  index: number,
  seed: number,
): Promise<string> {
  switch (step.op) {
    case 'sample': {
      // hash() is DuckDB's own 64-bit hash: the same on every machine for the same position and seed.
      const scale = 1_000_000;
      return `SELECT * FROM ${from} WHERE hash(${ROW}, ${Math.trunc(seed)}) % ${scale} < ${Math.round(step.fraction * scale)}`;
    }
    case 'standardize':
    case 'min-max':
    case 'impute': {
      const cols = step.columns.map((c) => need(columns, index, step.op, c, 'numeric'));
      // The statistics first, as constants (one scan): a global window (`avg(x) OVER ()`) would hold the whole table
      // in memory. Single-threaded aggregation sums in a fixed order, so the constants are the same every run.
      const stats = (agg: (col: string) => string[]) => cols.flatMap(agg);
      const aggregates =
        step.op === 'standardize'
          ? stats((c) => [`avg(${c})`, `stddev_pop(${c})`])
          : step.op === 'min-max'
            ? stats((c) => [`min(${c})`, `max(${c})`])
            : step.method === 'constant'
              ? []
              : stats((c) => [`${step.method === 'mean' ? 'avg' : 'median'}(${c})`]);
      const values =
        aggregates.length === 0
          ? []
          : ((
              await conn.runAndReadAll(
                `SELECT ${aggregates.map((a) => `CAST(${a} AS DOUBLE)`).join(', ')} FROM ${from}`,
              )
            ).getRows()[0] ?? []);
      const constant = (i: number) => doubleLiteral(values[i]);
      const replaced = cols.map((col, i) => {
        // Standardize and min-max keep a missing value missing (impute fills it); a constant column becomes 0.
        if (step.op === 'standardize') {
          return `CASE WHEN ${col} IS NULL THEN NULL ELSE coalesce((${col} - ${constant(2 * i)}) / nullif(${constant(2 * i + 1)}, 0), 0.0) END AS ${col}`;
        }
        if (step.op === 'min-max') {
          return `CASE WHEN ${col} IS NULL THEN NULL ELSE coalesce((${col} - ${constant(2 * i)}) / nullif(${constant(2 * i + 1)} - ${constant(2 * i)}, 0), 0.0) END AS ${col}`;
        }
        const fill = step.method === 'constant' ? doubleLiteral(step.value) : constant(i);
        return `coalesce(CAST(${col} AS DOUBLE), ${fill}) AS ${col}`;
      });
      return `SELECT * REPLACE (${replaced.join(', ')}) FROM ${from}`;
    }
    case 'one-hot': {
      const col = need(columns, index, step.op, step.column);
      const values = step.categories ?? (await categories(conn, from, step.column));
      const flags = values.map(
        (v) =>
          `CAST(coalesce(CAST(${col} AS VARCHAR) = ${quoteLiteral(v)}, false) AS TINYINT) AS ${quoteIdent(`${step.column}=${v}`)}`,
      );
      return `SELECT * EXCLUDE (${col}), ${flags.join(', ')} FROM ${from}`;
    }
    case 'ordinal': {
      const col = need(columns, index, step.op, step.column);
      const order = step.order ?? (await categories(conn, from, step.column));
      const listed = order.map(quoteLiteral).join(', ');
      const unknown = await scalar(
        conn,
        `SELECT any_value(CAST(${col} AS VARCHAR)) FROM ${from} WHERE ${col} IS NOT NULL AND CAST(${col} AS VARCHAR) NOT IN (${listed})`,
      );
      if (unknown !== null && unknown !== undefined) {
        throw new TransformError(index, step.op, step.column, 'holds a value that the order does not list');
      }
      const cases = order.map((v, i) => `WHEN ${quoteLiteral(v)} THEN ${i}`).join(' ');
      return `SELECT * REPLACE (CAST(CASE CAST(${col} AS VARCHAR) ${cases} END AS INTEGER) AS ${col}) FROM ${from}`;
    }
    case 'window': {
      const subject = need(columns, index, step.op, step.subject);
      const time = need(columns, index, step.op, step.time, 'temporal');
      const values = step.values.map((v) => need(columns, index, step.op, v, 'numeric'));
      const agg = { mean: 'avg', sum: 'sum', min: 'min', max: 'max' }[step.aggregate];
      return `
        WITH firsts AS (
          SELECT *, CAST(min(${time}) OVER (PARTITION BY ${subject}) AS DATE) AS __first FROM ${from}
          WHERE ${subject} IS NOT NULL AND ${time} IS NOT NULL
        ), windows AS (
          SELECT *, CAST(floor(date_diff('day', __first, CAST(${time} AS DATE)) / ${step.days}) AS INTEGER) AS window_index
          FROM firsts
        ), grouped AS (
          SELECT ${subject}, window_index, any_value(__first) + window_index * ${step.days} AS window_start,
                 CAST(count(*) AS INTEGER) AS rows_in_window, ${values.map((v) => `${agg}(${v}) AS ${v}`).join(', ')}
          FROM windows GROUP BY ${subject}, window_index
        )
        SELECT row_number() OVER (ORDER BY ${subject}, window_index) AS ${ROW}, * FROM grouped`;
    }
  }
}

export interface BuiltinRunResult {
  rows: number;
  columns: { name: string; type: string }[];
}

/**
 * Runs built-in transforms over one Parquet file into another, in DuckDB, single-threaded: the same input and steps give
 * the same output bytes (no parallel floating-point sums in varying order), rows in the input's order (or by subject
 * and window after a window step).
 */
export async function runBuiltin(options: {
  input: string;
  output: string;
  steps: readonly TransformStep[];
  seed: number;
  tempDir?: string;
  /** Called every quarter second while the output is written, with the share of the work done (0 to 1). */
  onProgress?: (fraction: number) => void;
  /** Aborting interrupts the running query. */
  signal?: AbortSignal;
}): Promise<BuiltinRunResult> {
  const db = await DuckDBInstance.create(':memory:', {
    threads: '1',
    autoinstall_known_extensions: 'false',
    ...(options.tempDir ? { temp_directory: options.tempDir } : {}),
  });
  const conn = await db.connect();
  try {
    // Recorded in the run documentation; the sample step keys its choice on it (and on each row's position).
    await conn.run(`SELECT setseed(${(options.seed % 2 ** 31) / 2 ** 31})`);
    await conn.run(
      `CREATE VIEW t0 AS SELECT file_row_number AS ${ROW}, * EXCLUDE (file_row_number) FROM read_parquet(${quoteLiteral(options.input)}, file_row_number = true)`,
    );
    for (const [i, step] of options.steps.entries()) {
      const columns = await columnsOf(conn, `t${i}`);
      await conn.run(`CREATE VIEW t${i + 1} AS ${await stepSql(conn, `t${i}`, columns, step, i, options.seed)}`);
    }
    const last = `t${options.steps.length}`;
    // DuckDB reports a running query's progress only with its progress bar on (not printed).
    await conn.run('SET enable_progress_bar = true; SET enable_progress_bar_print = false');
    const interrupt = () => conn.interrupt();
    options.signal?.addEventListener('abort', interrupt, { once: true });
    const ticker = setInterval(() => {
      const { percentage } = conn.progress;
      if (percentage >= 0) options.onProgress?.(Math.min(1, percentage / 100));
    }, 250);
    try {
      if (options.signal?.aborted) throw options.signal.reason;
      await conn.run(
        // Projections keep the input's order; only a window step regroups rows, and then they are sorted.
        `COPY (SELECT * EXCLUDE (${ROW}) FROM ${last}${options.steps.some((s) => s.op === 'window') ? ` ORDER BY ${ROW}` : ''}) TO ${quoteLiteral(options.output)} (FORMAT parquet, COMPRESSION zstd)`,
      );
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw error;
    } finally {
      clearInterval(ticker);
      options.signal?.removeEventListener('abort', interrupt);
    }
    const columns = [...(await columnsOf(conn, last)).entries()]
      .filter(([name]) => name !== ROW)
      .map(([name, type]) => ({ name, type }));
    const rows = Number(await scalar(conn, `SELECT count(*) FROM read_parquet(${quoteLiteral(options.output)})`));
    return { rows, columns };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
