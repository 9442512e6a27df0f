import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parse } from 'csv-parse/sync';
import type { Column, ColumnType, Table } from '../../schemas/package';
import { quoteIdent, quoteLiteral } from './sql';
import type { PackageProblem } from '../../schemas/ingest';

/** Stop collecting after this many problems in one file: the first ones are what a steward needs to fix it. */
export const MAX_PROBLEMS_PER_FILE = 50;

const DUCKDB_TYPES: Record<ColumnType, string> = {
  string: 'VARCHAR',
  integer: 'BIGINT',
  number: 'DOUBLE',
  boolean: 'BOOLEAN',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
};

const TYPE_RULES: Record<ColumnType, string> = {
  string: 'must be text',
  integer: 'must be an integer',
  number: 'must be a number',
  boolean: 'must be true or false',
  date: 'must be a date in YYYY-MM-DD form',
  timestamp: 'must be an ISO 8601 timestamp',
};

export function duckdbType(type: ColumnType): string {
  return DUCKDB_TYPES[type];
}

function columnsStruct(columns: readonly Column[]): string {
  return `{${columns.map((c) => `${quoteLiteral(c.name)}: ${quoteLiteral(DUCKDB_TYPES[c.type])}`).join(', ')}}`;
}

async function readHead(file: string, bytes = 1024 * 1024): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Header of a CSV file, compared with the declared columns; returns the columns in file order. */
async function csvHeader(file: string, table: Table, problems: PackageProblem[]): Promise<Column[] | undefined> {
  const head = await readHead(file);
  let header: string[];
  try {
    const records = parse(head, { bom: true, to_line: 1, relax_column_count: true }) as string[][];
    header = (records[0] ?? []).map((h) => h.trim());
  } catch {
    problems.push({ file: table.path, row: 1, rule: 'the header line is not valid CSV' });
    return undefined;
  }
  if (header.length === 0 || header.every((h) => h === '')) {
    problems.push({ file: table.path, rule: 'the file is empty or has no header line' });
    return undefined;
  }
  const declared = new Map(table.columns.map((c) => [c.name, c]));
  const ordered: Column[] = [];
  const seen = new Set<string>();
  for (const name of header) {
    const column = declared.get(name);
    if (seen.has(name)) problems.push({ file: table.path, field: name, rule: 'the header names this column twice' });
    else if (!column)
      problems.push({ file: table.path, field: name, rule: 'column is not declared in the package metadata' });
    else ordered.push(column);
    seen.add(name);
  }
  for (const column of table.columns) {
    if (!seen.has(column.name)) {
      problems.push({ file: table.path, field: column.name, rule: 'declared column is missing from the header' });
    }
  }
  return ordered;
}

const REJECT_RULES: Record<string, string> = {
  'MISSING COLUMNS': 'row has fewer fields than the header',
  'TOO MANY COLUMNS': 'row has more fields than the header',
  'UNQUOTED VALUE': 'malformed quoting',
  'INVALID ENCODING': 'not valid UTF-8',
  'INVALID UNICODE': 'not valid UTF-8',
  'LINE SIZE OVER MAXIMUM': 'row is longer than the maximum line size',
};

/** Loads a CSV into `target` with the declared types; rows that do not parse or cast become problems. */
async function loadCsv(
  conn: DuckDBConnection,
  file: string,
  table: Table,
  target: string,
  problems: PackageProblem[],
  bufferBytes: number,
) {
  const ordered = await csvHeader(file, table, problems);
  if (!ordered || problems.length > 0) return;
  const rejects = `${target}_rejects`;
  try {
    await conn.run(
      `CREATE TABLE ${target} AS SELECT * FROM read_csv(${quoteLiteral(file)}, header = true, auto_detect = false,
        delim = ',', quote = '"', escape = '"', strict_mode = true, columns = ${columnsStruct(ordered)}, buffer_size = ${bufferBytes},
        store_rejects = true, rejects_table = ${quoteLiteral(rejects)}, rejects_scan = ${quoteLiteral(`${rejects}_scan`)})`,
    );
  } catch (error) {
    // DuckDB's message may quote the offending line: keep only the line number.
    const line = /line[: ]+(\d+)/i.exec((error as Error).message)?.[1];
    problems.push({
      file: table.path,
      ...(line ? { row: Math.max(1, Number(line) - 1) } : {}),
      rule: 'malformed CSV: the file cannot be parsed',
    });
    return;
  }
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const reader = await conn.runAndReadAll(
    `SELECT DISTINCT line, column_name, error_type FROM ${rejects} ORDER BY line, column_name LIMIT ${MAX_PROBLEMS_PER_FILE}`,
  );
  const seen = new Set<string>();
  for (const r of reader.getRowObjectsJS()) {
    const field = typeof r.column_name === 'string' ? r.column_name : undefined;
    const errorType = String(r.error_type);
    const column = field ? byName.get(field) : undefined;
    const rule =
      errorType === 'CAST' && column
        ? TYPE_RULES[column.type]
        : (REJECT_RULES[errorType] ?? `malformed row (${errorType.toLowerCase()})`);
    const problem = {
      file: table.path,
      row: Math.max(1, Number(r.line) - 1),
      ...(field && errorType === 'CAST' ? { field } : {}),
      rule,
    };
    const id = JSON.stringify(problem);
    if (!seen.has(id)) problems.push(problem);
    seen.add(id);
  }
}

function jsonTypeOk(type: ColumnType, value: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'date':
      return (
        typeof value === 'string' &&
        /^\d{4}-\d{2}-\d{2}$/.test(value) &&
        !Number.isNaN(Date.parse(`${value}T00:00:00Z`)) &&
        new Date(`${value}T00:00:00Z`).toISOString().startsWith(value)
      );
    case 'timestamp':
      return (
        typeof value === 'string' &&
        /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(value) &&
        !Number.isNaN(Date.parse(value))
      );
  }
}

/**
 * Validates NDJSON line by line (row = line number) and, while the file is clean, appends each record to a text
 * staging table through DuckDB's appender; the typed table is then cast from it. Memory stays bounded: one line in JS
 * at a time, and DuckDB pages the staging table like any other.
 */
async function loadNdjson(
  conn: DuckDBConnection,
  file: string,
  table: Table,
  target: string,
  problems: PackageProblem[],
) {
  const declared = new Map(table.columns.map((c) => [c.name, c]));
  const staging = `${target}_text`;
  await conn.run(`CREATE TABLE ${staging} (${table.columns.map((c) => `${quoteIdent(c.name)} VARCHAR`).join(', ')})`);
  const appender = await conn.createAppender(staging);
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let row = 0;
  let records = 0;
  const add = (p: PackageProblem) => {
    if (problems.length < MAX_PROBLEMS_PER_FILE) problems.push(p);
  };
  for await (const raw of lines) {
    row += 1;
    // A byte order mark some tools write before the first line is no part of the record (CRLF: see crlfDelay).
    const line = row === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (line.trim() === '') continue;
    if (line.includes('\uFFFD')) add({ file: table.path, row, rule: 'not valid UTF-8' });
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      add({ file: table.path, row, rule: 'not valid JSON' });
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      add({ file: table.path, row, rule: 'each line must be a JSON object' });
      continue;
    }
    records += 1;
    const object = value as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      if (!declared.has(key))
        add({ file: table.path, row, field: key, rule: 'field is not declared in the package metadata' });
    }
    for (const column of table.columns) {
      const v = object[column.name];
      if (v === undefined || v === null) continue;
      if (!jsonTypeOk(column.type, v))
        add({ file: table.path, row, field: column.name, rule: TYPE_RULES[column.type] });
    }
    // Once the file has a problem it will be rejected: stop loading rows, keep checking them.
    if (problems.length > 0) continue;
    for (const column of table.columns) {
      const v = object[column.name];
      if (v === undefined || v === null) appender.appendNull();
      else appender.appendVarchar(String(v));
    }
    appender.endRow();
  }
  appender.flushSync();
  appender.closeSync();
  if (records === 0) add({ file: table.path, rule: 'the file holds no records' });
  if (problems.length === 0) {
    const casts = table.columns.map(
      (c) => `CAST(${quoteIdent(c.name)} AS ${DUCKDB_TYPES[c.type]}) AS ${quoteIdent(c.name)}`,
    );
    await conn.run(`CREATE TABLE ${target} AS SELECT ${casts.join(', ')} FROM ${staging}`);
  }
  await conn.run(`DROP TABLE ${staging}`);
}

/**
 * Loads one declared table into DuckDB table `target`, checking every row against the declared columns.
 * Returns the problems found (file, row, field, rule); the table exists only when there are none.
 */
export async function loadDeclaredTable(
  conn: DuckDBConnection,
  file: string,
  table: Table,
  target: string,
  options: { memoryLimitBytes?: number } = {},
): Promise<PackageProblem[]> {
  const problems: PackageProblem[] = [];
  // DuckDB reads CSV in buffers of 32 MiB per thread by default; under a small memory limit, smaller ones.
  const bufferBytes = Math.min(32 * 2 ** 20, Math.max(2 ** 20, Math.floor((options.memoryLimitBytes ?? 2 ** 31) / 8)));
  if (table.format === 'csv') await loadCsv(conn, file, table, target, problems, bufferBytes);
  else await loadNdjson(conn, file, table, target, problems);
  if (problems.length > 0) return problems;

  // Required values (the subject id always, other columns when declared required), in one scan of the table.
  const required = table.columns.filter((c) => c.required || c.role === 'subject-id');
  // Blank means empty or spaces only; trimming is evaluated only for values that start with a space.
  const missing = required.map((c) => {
    const ref = quoteIdent(c.name);
    return c.type === 'string'
      ? `(${ref} IS NULL OR ${ref} = '' OR (starts_with(${ref}, ' ') AND trim(${ref}) = ''))`
      : `(${ref} IS NULL)`;
  });
  if (required.length > 0) {
    const reader = await conn.runAndReadAll(
      `SELECT rowid + 1 AS row, ${missing.map((m, i) => `${m} AS m${i}`).join(', ')} FROM ${target}
       WHERE ${missing.join(' OR ')} ORDER BY rowid LIMIT ${MAX_PROBLEMS_PER_FILE}`,
    );
    for (const r of reader.getRowObjectsJS()) {
      required.forEach((column, i) => {
        if (r[`m${i}`] === true)
          problems.push({ file: table.path, row: Number(r.row), field: column.name, rule: 'a value is required' });
      });
    }
  }
  return problems.slice(0, MAX_PROBLEMS_PER_FILE);
}

/** Bytes in a DuckDB memory setting such as `1GB` or `192MB`. */
export function parseMemoryLimit(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/i.exec(value.trim());
  if (!match) throw new Error(`"${value}" is not a memory size such as 512MB or 2GB`);
  const unit = (match[2] ?? 'B').toUpperCase().replace('I', '');
  const power = { B: 0, KB: 1, MB: 2, GB: 3, TB: 4 }[unit] ?? 0;
  return Math.floor(Number(match[1]) * 1024 ** power);
}
