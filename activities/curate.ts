import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import type { ConsentEntry } from '../schemas/consent';
import { readConsentRegistry } from '../lib/catalog';
import type { DatasetOutput, ExclusionReason, RowCounts } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { Column, PackageMetadata, Table } from '../schemas/package';
import type { PackageProblem } from '../schemas/workflows';
import { consentExclusion, newerConsent } from '../lib/consent';
import type { KeyStore } from '../lib/keystore';
import { downloadHashed, hashFile, putFileOnce } from '../lib/objects';
import { dateShiftDays, LOW_POPULATION_ZIP3, Tokenizer, tokenKeyVersion } from '../lib/pseudonymize';
import type { TokenPool } from '../lib/token-pool';
import { sealIdentifier, writeVaultShard, type VaultShard } from '../lib/vault';
import { inLanes } from '../lib/lanes';
import { loadDeclaredTable, parseMemoryLimit, quoteIdent, quoteLiteral } from '../lib/tabular';
import { rejectPackage, stagedFile, type VerifiedFile } from './verify';

export interface CuratePackageInput {
  packageId: string;
  datasetId: string;
  jurisdiction: string;
  landing: { bucket: string; prefix: string };
  metadata: PackageMetadata;
  files: VerifiedFile[];
  /** The day consent is evaluated for (YYYY-MM-DD), decided by the workflow. */
  asOf: string;
}

export interface CuratePackageResult {
  outputs: DatasetOutput[];
  rows: RowCounts;
  keyVersions: number[];
  classification: string;
}

export function curatedKey(datasetId: string, table: string): string {
  return `datasets/${datasetId}/${table}.parquet`;
}

interface CurateDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
  stageDir: string;
  duckdbMemoryLimit: string;
  pool: TokenPool;
}

function addCounts(into: RowCounts, from: RowCounts): void {
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
async function buildTokenMap(
  conn: DuckDBConnection,
  source: string,
  column: string,
  mapTable: string,
  tokens: (values: string[]) => Promise<string[]>,
  subject: ((raw: string, token: string) => { reason: ExclusionReason | undefined; shift: number }) | undefined,
  onKeyed: ((raw: string, token: string) => void) | undefined,
): Promise<RowCounts> {
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
interface PackageKeyCache {
  tokens: Map<string, string>;
  subjects: Map<string, { reason: ExclusionReason | undefined; shift: number }>;
}

interface TableDeps {
  memoryLimitBytes: number;
  /** Whether the file still has the checksum verification saw. */
  unchanged: Promise<boolean>;
  pool: TokenPool;
  onKeyed: ((raw: string, token: string) => void) | undefined;
  cache: PackageKeyCache;
}

interface TableOutcome {
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

async function curateTable(
  conn: DuckDBConnection,
  index: number,
  localFile: string,
  outFile: string,
  table: Table,
  input: CuratePackageInput,
  tokenizer: Tokenizer,
  consent: Promise<(raw: string, token: string) => ExclusionReason | undefined>,
  problems: PackageProblem[],
  { memoryLimitBytes, pool, onKeyed, cache, unchanged }: TableDeps,
): Promise<{ rows: RowCounts; columns: DatasetOutput['columns'] } | undefined> {
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
  const rows = await buildTokenMap(conn, source, subject.name, subjectMap, keyed, decide, onKeyed);
  // One map for all the other identifier columns: their values are keyed alike, so one scan and one table serve all.
  const identifierMap = `map_${index}_identifiers`;
  if (identifiers.length > 0) {
    const values = identifiers
      .map((c) => `SELECT CAST(${quoteIdent(c.name)} AS VARCHAR) AS value FROM ${source}`)
      .join(' UNION ALL ');
    await buildTokenMap(conn, `(${values})`, 'value', identifierMap, keyed, undefined, onKeyed);
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

/**
 * Downloads the verified files (re-hashing them), validates every row, excludes rows without valid consent,
 * tokenizes direct identifiers, writes Parquet and uploads it to the curated bucket with SHA-256 checksums and tags.
 * Retry-safe: the work happens in a fresh scratch directory, outputs go to keys derived from the dataset id,
 * and an upload is skipped when the object already holds the same bytes.
 */
export async function curatePackage(deps: CurateDeps, input: CuratePackageInput): Promise<CuratePackageResult> {
  const { s3, keys, jurisdiction } = deps;
  const { metadata } = input;
  const work = path.join(deps.scratchDir, `curate-${input.packageId}-${process.pid}-${Date.now()}`);
  await mkdir(path.join(work, 'tmp'), { recursive: true });
  const heartbeat = setInterval(() => Context.current().heartbeat({ phase: 'curating' }), 5_000);
  const started = Date.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => {
    timings[name] = (timings[name] ?? 0) + Date.now() - since;
    return Date.now();
  };
  // Tables are loaded into DuckDB: in memory when the package fits comfortably within the memory limit, else into a
  // database file in scratch, which DuckDB pages to and from disk, so memory stays bounded whatever the package size.
  const memoryLimitBytes = parseMemoryLimit(deps.duckdbMemoryLimit);
  const inputBytes = input.files.reduce((sum, f) => sum + f.bytes, 0);
  const inMemory = inputBytes * 2 < memoryLimitBytes;
  const instance = await DuckDBInstance.create(inMemory ? ':memory:' : path.join(work, 'curate.duckdb'), {
    threads: String(Math.max(1, Math.min(4, Number(process.env.STEWARD_DUCKDB_THREADS ?? 2)))),
    memory_limit: deps.duckdbMemoryLimit,
    temp_directory: path.join(work, 'tmp'),
    preserve_insertion_order: 'true',
    autoinstall_known_extensions: 'false',
  });
  const conn = await instance.connect();
  const connections: DuckDBConnection[] = [conn];
  const cancel = () => connections.forEach((c) => c.interrupt());
  Context.current().cancellationSignal.addEventListener('abort', cancel);
  try {
    const key = await keys.studyKey(jurisdiction.id, metadata.studyId);
    const tokenizer = new Tokenizer(key.material, key.version);
    // The registry is read while the first table is checked and loaded.
    const consent = (async () => {
      const registry = new Map(
        (
          await readConsentRegistry(s3, jurisdiction.buckets.catalog, jurisdiction.id, metadata.studyId, input.asOf)
        ).entries.map((e) => [e.token, e]),
      );
      const registryVersions = [
        ...new Set([...registry.keys()].map(tokenKeyVersion).filter((v): v is number => v !== undefined)),
      ];
      const lookups = await Promise.all(
        registryVersions.map(async (v) =>
          v === key.version
            ? tokenizer
            : new Tokenizer((await keys.studyKeyVersion(jurisdiction.id, metadata.studyId, v)).material, v),
        ),
      );
      return (raw: string, token: string) => {
        // Registry keyed under the current version only (or empty): one look-up with the token at hand.
        if (lookups.every((t) => t === tokenizer)) {
          return consentExclusion(registry.get(token), metadata.purpose, input.asOf);
        }
        // A subject may hold records under several key versions (before and after a rotation): the latest decision wins.
        const entries = lookups
          .map((t) => registry.get(t === tokenizer ? token : t.token(raw)))
          .filter((e): e is ConsentEntry => e !== undefined);
        const entry = entries.length > 0 ? entries.reduce(newerConsent) : undefined;
        return consentExclusion(entry, metadata.purpose, input.asOf);
      };
    })();
    // Awaited where it is used; a table rejected before that must not leave the failure unobserved.
    consent.catch(() => undefined);

    const vaultKey = metadata.reidentificationVault
      ? await keys.vaultKey(jurisdiction.id, metadata.studyId)
      : undefined;
    const vault: VaultShard | undefined = vaultKey
      ? {
          format: 'steward-vault/1',
          jurisdiction: jurisdiction.id,
          studyId: metadata.studyId,
          datasetId: input.datasetId,
          keyId: vaultKey.id,
          entries: {},
        }
      : undefined;
    const cache: PackageKeyCache = { tokens: new Map(), subjects: new Map() };
    const byPath = new Map(input.files.map((f) => [f.path, f]));
    const rows: RowCounts = { in: 0, curated: 0, excluded: 0, excludedByReason: {} };
    const onKeyed = vault
      ? (raw: string, token: string) => void (vault.entries[token] ??= sealIdentifier(vaultKey!, token, raw))
      : undefined;
    const curateOne = async (index: number, tableConn: DuckDBConnection): Promise<TableOutcome> => {
      const table = metadata.tables[index]!;
      const verified = byPath.get(table.path)!;
      const localFile = path.join(work, `in-${index}.${table.format}`);
      let t = Date.now();
      const staged = stagedFile(deps.stageDir, input.packageId, verified.sha256);
      let file = localFile;
      let unchanged: Promise<boolean>;
      if (existsSync(staged)) {
        file = staged;
        unchanged = hashFile(staged).then((got) => got.sha256 === verified.sha256);
        unchanged.catch(() => undefined);
      } else {
        const got = await downloadHashed(s3, input.landing.bucket, `${input.landing.prefix}${table.path}`, localFile);
        unchanged = Promise.resolve(got.sha256 === verified.sha256);
      }
      t = lap('download', t);
      const outFile = path.join(work, `out-${index}.parquet`);
      const problems: PackageProblem[] = [];
      const result = await curateTable(tableConn, index, file, outFile, table, input, tokenizer, consent, problems, {
        memoryLimitBytes,
        unchanged,
        pool: deps.pool,
        onKeyed,
        cache,
      });
      lap('transform', t);
      await rm(localFile, { force: true });
      return { problems, produced: result && { table, outFile, ...result } };
    };
    // Two lanes on a package that fits in memory: the largest table on one, the others one after another on the
    // second, so the small tables' keying and writing overlap the large table's load. Each lane has its connection.
    const lanes = inMemory && metadata.tables.length > 1 ? 2 : 1;
    const order = metadata.tables
      .map((table, index) => ({ index, bytes: byPath.get(table.path)?.bytes ?? 0 }))
      .sort((a, b) => b.bytes - a.bytes)
      .map((t) => t.index);
    while (connections.length < lanes) connections.push(await instance.connect());
    const outcomes = new Array<TableOutcome>(metadata.tables.length);
    await inLanes(order, lanes, async (index, lane) => {
      outcomes[index] = await curateOne(index, connections[lane]!);
    });
    const problems = outcomes.flatMap((o) => o.problems);
    const produced = outcomes.flatMap((o) => (o.produced ? [o.produced] : []));
    if (problems.length > 0) throw rejectPackage(problems);

    if (vault) await writeVaultShard(s3, jurisdiction.buckets.catalog, vault);
    const classification = jurisdiction.retention[metadata.dataClass]!.classification;
    const uploadStart = Date.now();
    Context.current().heartbeat({ phase: 'uploading' });
    // Every table is valid by now: the outputs go up together, and are recorded in the package's table order.
    const outputs = await Promise.all(
      produced.map(async (item): Promise<DatasetOutput> => {
        const digest = await hashFile(item.outFile);
        const objectKey = curatedKey(input.datasetId, item.table.name);
        const put = await putFileOnce(s3, jurisdiction.buckets.curated, objectKey, item.outFile, digest.sha256, {
          contentType: 'application/vnd.apache.parquet',
          tags: {
            jurisdiction: jurisdiction.id,
            'study-id': metadata.studyId,
            'dataset-id': input.datasetId,
            'data-class': metadata.dataClass,
            classification,
            'consent-scopes': metadata.purpose,
            'key-version': String(key.version),
          },
        });
        return {
          table: item.table.name,
          source: item.table.path,
          bucket: jurisdiction.buckets.curated,
          key: objectKey,
          versionId: put.versionId,
          sha256: digest.sha256,
          bytes: digest.bytes,
          columns: item.columns,
          rows: item.rows,
        };
      }),
    );
    for (const item of produced) addCounts(rows, item.rows);
    lap('upload', uploadStart);
    Context.current().log.info('curated package', {
      datasetId: input.datasetId,
      rows: rows.in,
      ms: Date.now() - started,
      ...timings,
    });
    return { outputs, rows, keyVersions: [key.version], classification };
  } finally {
    clearInterval(heartbeat);
    Context.current().cancellationSignal.removeEventListener('abort', cancel);
    connections.forEach((c) => c.closeSync());
    instance.closeSync();
    await rm(work, { recursive: true, force: true });
    await rm(path.join(deps.stageDir, input.packageId), { recursive: true, force: true });
  }
}
