import type { DuckDBConnection } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import type { DatasetOutput, ExclusionReason, RowCounts } from '../schemas/dataset';
import type { CuratePackageInput, PackageProblem } from '../schemas/ingest';
import type { Column, Table } from '../schemas/package';
import { dateShiftDays, LOW_POPULATION_ZIP3, type Tokenizer } from '../lib/crypto/pseudonymize';
import type { TokenPool } from '../lib/crypto/token-pool';
import { loadDeclaredTable } from '../lib/tabular/load';
import { quoteIdent, quoteLiteral } from '../lib/tabular/sql';

export function addCounts(into: RowCounts, from: RowCounts): void {
  into.in += from.in;
  into.curated += from.curated;
  into.excluded += from.excluded;
  for (const [reason, n] of Object.entries(from.excludedByReason) as [ExclusionReason, number][]) {
    into.excludedByReason[reason] = (into.excludedByReason[reason] ?? 0) + n;
  }
}

/**
 * Writes one identifier column's distinct values with their tokens into `mapTable`; for the subject column also
 * whether (and why not) the subject's consent covers the purpose. Only distinct values are keyed. Returns the table's
 * rows counted by that decision (meaningful for the subject column, whose values every row holds).
 */
async function buildTokenMap({
  conn,
  source,
  column,
  mapTable,
  tokens,
  subject,
  onKeyed,
}: {
  conn: DuckDBConnection;
  /** The table (or subquery) read, and its column keyed. */
  source: string;
  column: string;
  mapTable: string;
  tokens: (values: string[]) => Promise<string[]>;
  subject: ((raw: string, token: string) => { reason: ExclusionReason | undefined; shift: number }) | undefined;
  onKeyed: ((raw: string, token: string) => void) | undefined;
}): Promise<RowCounts> {
  const rows: RowCounts = { in: 0, curated: 0, excluded: 0, excludedByReason: {} };
  await conn.run(`CREATE TABLE ${mapTable} (raw VARCHAR, token VARCHAR, reason VARCHAR, shift INTEGER)`);
  const appender = await conn.createAppender(mapTable);
  const flush = async (batch: string[], counts: number[]) => {
    const keyed = await tokens(batch);
    batch.forEach((raw, i) => {
      const token = keyed[i]!;
      const decided = subject?.(raw, token);
      onKeyed?.(raw, token);
      appender.appendVarchar(raw);
      appender.appendVarchar(token);
      if (decided?.reason) appender.appendVarchar(decided.reason);
      else appender.appendNull();
      appender.appendInteger(decided?.shift ?? 0);
      appender.endRow();
      const n = counts[i]!;
      rows.in += n;
      if (!decided?.reason) rows.curated += n;
      else {
        rows.excluded += n;
        rows.excludedByReason[decided.reason] = (rows.excludedByReason[decided.reason] ?? 0) + n;
      }
    });
    Context.current().heartbeat({ phase: 'pseudonymizing' });
  };
  const result = await conn.stream(
    `SELECT ${quoteIdent(column)}, count(*) FROM ${source} WHERE ${quoteIdent(column)} IS NOT NULL GROUP BY 1`,
  );
  let batch: string[] = [];
  let counts: number[] = [];
  for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    for (const value of chunk.getColumnValues(0)) batch.push(String(value));
    for (const n of chunk.getColumnValues(1)) counts.push(Number(n));
    if (batch.length >= 65_536) {
      await flush(batch, counts);
      batch = [];
      counts = [];
    }
  }
  if (batch.length > 0) await flush(batch, counts);
  appender.flushSync();
  appender.closeSync();
  return rows;
}

/** Past this many entries a cache starts over: memory stays bounded however many subjects a package holds. */
const CACHE_LIMIT = 1_000_000;

/** Tokens and subject decisions of one package, shared by its tables. */
export interface PackageKeyCache {
  tokens: Map<string, string>;
  subjects: Map<string, { reason: ExclusionReason | undefined; shift: number }>;
}

export interface TableDeps {
  memoryLimitBytes: number;
  /** Whether the file still has the checksum verification saw. */
  unchanged: Promise<boolean>;
  pool: TokenPool;
  onKeyed: ((raw: string, token: string) => void) | undefined;
  cache: PackageKeyCache;
}

/** One table to curate: where it is read and written, and what keys and decides its subjects. */
export interface TableJob extends TableDeps {
  conn: DuckDBConnection;
  index: number;
  localFile: string;
  outFile: string;
  table: Table;
  input: CuratePackageInput;
  tokenizer: Tokenizer;
  /** The consent decision per subject (raw identifier and its token under the dataset's key version). */
  consent: Promise<(raw: string, token: string) => ExclusionReason | undefined>;
  /** Where the table's problems are reported. */
  problems: PackageProblem[];
}

export interface TableOutcome {
  problems: PackageProblem[];
  produced?: { table: Table; outFile: string; rows: RowCounts; columns: DatasetOutput['columns'] } | undefined;
}

const ZIP3_LIST = LOW_POPULATION_ZIP3.map(quoteLiteral).join(', ');

/** The SQL that turns one input column into its curated form, per the column policy. */
function columnExpression(c: Column, ref: string, identifierIndex: number, shiftDates: boolean): string {
  switch (c.role) {
    case 'subject-id':
      return 's.token';
    case 'direct-identifier':
      return `m${identifierIndex}.token`;
    case 'date':
      if (!shiftDates) return ref;
      return c.type === 'date' ? `(${ref} + s.shift)` : `(${ref} + to_days(s.shift))`;
    case 'generalize':
      if (c.method === 'zip3') {
        return `CASE WHEN ${ref} IS NULL THEN NULL WHEN left(trim(${ref}), 3) IN (${ZIP3_LIST}) THEN '000' ELSE left(trim(${ref}), 3) END`;
      }
      if (c.method === 'age')
        return `CASE WHEN ${ref} IS NULL THEN NULL WHEN ${ref} > 89 THEN '90+' ELSE CAST(${ref} AS VARCHAR) END`;
      return `CAST(year(${ref}) AS INTEGER)`;
    default:
      return ref;
  }
}

function outputType(c: Column): string {
  if (c.role === 'generalize') return c.method === 'year' ? 'integer' : 'string';
  return c.type;
}

export async function curateTable({
  conn,
  index,
  localFile,
  outFile,
  table,
  input,
  tokenizer,
  consent,
  problems,
  memoryLimitBytes,
  pool,
  onKeyed,
  cache,
  unchanged,
}: TableJob): Promise<{ rows: RowCounts; columns: DatasetOutput['columns'] } | undefined> {
  const source = `src_${index}`;
  const found = await loadDeclaredTable(conn, localFile, table, source, { memoryLimitBytes });
  // The file's checksum is checked while DuckDB loads it; a changed file is all that is reported for it.
  if (!(await unchanged)) {
    problems.push({ file: table.path, rule: 'changed in landing after verification (SHA-256 differs)' });
    return undefined;
  }
  if (found.length > 0) {
    problems.push(...found);
    return undefined;
  }
  const consentOf = await consent;
  const subject = table.columns.find((c) => c.role === 'subject-id')!;
  const identifiers = table.columns.filter((c) => c.role === 'direct-identifier');
  const subjectMap = `map_${index}_subject`;
  const window = input.metadata.dateShiftDays ?? 0;
  // Tables of one package share their subjects: each distinct value is keyed, and each subject decided, once.
  const keyed = async (values: string[]) => {
    if (cache.tokens.size > CACHE_LIMIT) cache.tokens.clear();
    const fresh = values.filter((v) => !cache.tokens.has(v));
    const tokens = await pool.tokenize(tokenizer.key, tokenizer.keyVersion, fresh);
    fresh.forEach((v, i) => cache.tokens.set(v, tokens[i]!));
    return values.map((v) => cache.tokens.get(v)!);
  };
  const decide = (raw: string, token: string) => {
    let decided = cache.subjects.get(raw);
    if (!decided) {
      if (cache.subjects.size > CACHE_LIMIT) cache.subjects.clear();
      decided = { reason: consentOf(raw, token), shift: dateShiftDays(tokenizer.key, raw, window) };
      cache.subjects.set(raw, decided);
    }
    return decided;
  };
  const rows = await buildTokenMap({
    conn,
    source,
    column: subject.name,
    mapTable: subjectMap,
    tokens: keyed,
    subject: decide,
    onKeyed,
  });
  // One map for all the other identifier columns: their values are keyed alike, so one scan and one table serve all.
  const identifierMap = `map_${index}_identifiers`;
  if (identifiers.length > 0) {
    const values = identifiers
      .map((c) => `SELECT CAST(${quoteIdent(c.name)} AS VARCHAR) AS value FROM ${source}`)
      .join(' UNION ALL ');
    await buildTokenMap({
      conn,
      source: `(${values})`,
      column: 'value',
      mapTable: identifierMap,
      tokens: keyed,
      subject: undefined,
      onKeyed,
    });
  }

  const kept = table.columns.filter((c) => c.role !== 'suppress' && (c.role !== 'free-text' || c.keep));
  const projection = kept.map(
    (c) =>
      `${columnExpression(c, `t.${quoteIdent(c.name)}`, identifiers.indexOf(c), window > 0)} AS ${quoteIdent(c.name)}`,
  );
  const joins = identifiers
    .map((c, i) => `LEFT JOIN ${identifierMap} m${i} ON m${i}.raw = CAST(t.${quoteIdent(c.name)} AS VARCHAR)`)
    .join('\n');
  // Each writer thread buffers a row group: smaller groups under a small memory limit keep the writer within it.
  const rowGroup = Math.min(122_880, Math.max(8_192, Math.floor(memoryLimitBytes / 2048)));
  const kv = `{dataset_id: ${quoteLiteral(input.datasetId)}, study_id: ${quoteLiteral(input.metadata.studyId)}, key_version: ${quoteLiteral(String(tokenizer.keyVersion))}, source_file: ${quoteLiteral(table.path)}}`;
  Context.current().heartbeat({ phase: 'writing parquet', table: table.name });
  await conn.run(
    `COPY (SELECT ${projection.join(', ')} FROM ${source} t JOIN ${subjectMap} s ON s.raw = t.${quoteIdent(subject.name)}
      ${joins} WHERE s.reason IS NULL)
     TO ${quoteLiteral(outFile)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${rowGroup}, KV_METADATA ${kv})`,
  );
  return { rows, columns: kept.map((c) => ({ name: c.name, type: outputType(c), role: c.role })) };
}
