import { datasetObjectPrefix } from '../lib/storage/layout';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ConsentEntry } from '../schemas/consent';
import type { DatasetOutput, ExclusionReason, RowCounts } from '../schemas/dataset';
import {
  CurateProgressSchema,
  type CuratedTable,
  type CuratePackageInput,
  type CuratePackageResult,
  type PackageProblem,
} from '../schemas/ingest';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { decideConsent, linkEntries } from '../lib/consent/decide';
import { restrictedDigests, tombstonedDigests, writeCarriedTokens } from '../lib/storage/subjects';
import { subjectDigest, subjectDigestKey } from '../lib/subject-rights/digest';
import { writeConsentLinks } from '../lib/consent/links';
import type { KeyStore } from '../lib/crypto/keystore';
import { Tokenizer, tokenKeyVersion } from '../lib/crypto/pseudonymize';
import type { TokenPool } from '../lib/crypto/token-pool';
import { sealIdentifier, writeVaultShard } from '../lib/crypto/vault';
import { inLanes } from '../lib/runtime/lanes';
import { readConsentRegistry, readStudyRecord } from '../lib/storage/catalog';
import { datasetRetention } from '../lib/retention/rules';
import { activeHolds } from '../schemas/dataset';
import { downloadHashed, hashFile, putFileOnce } from '../lib/storage/objects';
import { parseMemoryLimit } from '../lib/tabular/load';
import type { VaultShard } from '../schemas/vault';
import { addCounts, curateTable, type PackageKeyCache, type TableOutcome } from './curate-table';
import { rejectPackage, stagedFile } from './verify';

export function curatedKey(datasetId: string, table: string): string {
  return `${datasetObjectPrefix(datasetId)}${table}.parquet`;
}

export interface CurateDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  /** This process's temporary space (DuckDB spill files, downloads). */
  scratchDir: string;
  /** Space that outlives this process: finished table outputs, for a retry on this machine to reuse. */
  workDir: string;
  /** Where verification on this machine left checked table files. */
  stageDir: string;
  duckdbMemoryLimit: string;
  /** DuckDB threads per package, 1 to 4 (default 2). */
  duckdbThreads?: number | undefined;
  pool: TokenPool;
}

/**
 * Tables a previous attempt finished, whose outputs are still here with the checksum it reported. Not for packages
 * that keep a re-identification vault: the vault entries of a reused table would be missing from the shard.
 */
async function finishedBefore(outDir: string, keepsVault: boolean): Promise<Map<number, CuratedTable>> {
  const parsed = CurateProgressSchema.safeParse(Context.current().info.heartbeatDetails);
  const reusable = new Map<number, CuratedTable>();
  if (!parsed.success || keepsVault) return reusable;
  for (const table of parsed.data.tables) {
    const file = path.join(outDir, table.file);
    if (existsSync(file) && (await hashFile(file)).sha256 === table.sha256) reusable.set(table.index, table);
  }
  return reusable;
}

/**
 * Downloads the verified files (re-hashing them), validates every row, excludes rows without valid consent,
 * tokenizes direct identifiers, writes Parquet and uploads it to the curated bucket with SHA-256 checksums and tags.
 * Retry-safe: outputs go to keys derived from the dataset id, and an upload is skipped when the object already holds
 * the same bytes. Resumable: each finished table is reported in the heartbeat, and a retry on this machine reuses its
 * output instead of curating the table again.
 */
export async function curatePackage(deps: CurateDeps, input: CuratePackageInput): Promise<CuratePackageResult> {
  const { s3, keys, jurisdiction } = deps;
  const { metadata } = input;
  const work = path.join(deps.scratchDir, `curate-${input.packageId}-${Date.now()}`);
  const outDir = path.join(deps.workDir, input.packageId);
  await mkdir(path.join(work, 'tmp'), { recursive: true });
  await mkdir(outDir, { recursive: true });
  const reused = await finishedBefore(outDir, metadata.reidentificationVault === true);
  const finished: CuratedTable[] = [...reused.values()];
  const progress = () => ({ phase: 'curating', tables: finished });
  const heartbeat = setInterval(() => Context.current().heartbeat(progress()), 1_000);
  const attempt = Context.current().info.attempt;
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
    threads: String(Math.max(1, Math.min(4, deps.duckdbThreads ?? 2))),
    memory_limit: deps.duckdbMemoryLimit,
    temp_directory: path.join(work, 'tmp'),
    preserve_insertion_order: 'true',
    autoinstall_known_extensions: 'false',
  });
  const conn = await instance.connect();
  const connections: DuckDBConnection[] = [conn];
  const cancel = () => connections.forEach((c) => c.interrupt());
  Context.current().cancellationSignal.addEventListener('abort', cancel);
  let keepWork = false;
  try {
    const key = await keys.studyKey(jurisdiction.id, metadata.studyId);
    const tokenizer = new Tokenizer(key.material, key.version);
    // The registry is read while the first table is checked and loaded. A subject is decided over its tokens under
    // every live key version the registry holds records of; each of those tokens (this dataset's among them) that
    // does not hold the newest decision is linked to it, so preprocessing, which has only a dataset's tokens, decides
    // alike.
    const links = new Map<string, ConsentEntry>();
    const carried = new Map<string, string>();
    const consent = (async () => {
      const registry = new Map(
        (
          await readConsentRegistry(
            s3,
            jurisdiction.buckets.catalog,
            jurisdiction.id,
            metadata.studyId,
            input.curatedAt,
          )
        ).entries.map((e) => [e.token, e]),
      );
      const registryVersions = new Set([...registry.keys()].map(tokenKeyVersion));
      const others = (await keys.liveStudyKeys(jurisdiction.id, metadata.studyId))
        .filter((k) => k.version !== key.version && registryVersions.has(k.version))
        .map((k) => new Tokenizer(k.material, k.version));
      // Erased subjects stay out, whatever their consent says; by keyed digest, which no key rotation changes.
      const erased = await tombstonedDigests(s3, jurisdiction.buckets.catalog);
      // A restricted subject keyed under a version their restriction does not name: the new token is carried from
      // one it names, so processing still leaves them out.
      const restricted = await restrictedDigests(s3, jurisdiction.buckets.catalog);
      const digestKey =
        erased.size > 0 || restricted.size > 0 ? await subjectDigestKey(keys, jurisdiction.id) : undefined;
      return (raw: string, token: string): ExclusionReason | undefined => {
        const digest = digestKey ? subjectDigest(digestKey, raw) : undefined;
        if (digest && erased.has(digest)) return 'erased';
        const restriction = digest ? restricted.get(digest)?.get(metadata.studyId) : undefined;
        if (restriction && !restriction.tokens.has(token)) carried.set(restriction.from, token);
        const tokens = [token, ...others.map((t) => t.token(raw))];
        if (others.length > 0) for (const link of linkEntries(registry, tokens)) links.set(link.token, link);
        return decideConsent(registry, tokens, metadata.purpose, input.asOf).reason;
      };
    })();
    /** Links and carried tokens found so far, written before the tables they were found for are reported finished. */
    const writeLinks = async () => {
      const entries = [...links.values()];
      links.clear();
      const carries = [...carried].map(([from, to]) => ({ from, to }));
      carried.clear();
      await writeCarriedTokens(s3, jurisdiction.buckets.catalog, {
        jurisdiction: jurisdiction.id,
        studyId: metadata.studyId,
        datasetId: input.datasetId,
        toVersion: key.version,
        createdAt: input.curatedAt,
        entries: carries,
      });
      await writeConsentLinks(s3, jurisdiction.buckets.catalog, {
        jurisdiction: jurisdiction.id,
        studyId: metadata.studyId,
        createdAt: input.curatedAt,
        entries,
      });
    };
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
      const outName = `out-${index}-a${attempt}.parquet`;
      const outFile = path.join(outDir, outName);
      const problems: PackageProblem[] = [];
      const result = await curateTable({
        conn: tableConn,
        index,
        localFile: file,
        outFile,
        table,
        input,
        tokenizer,
        consent,
        problems,
        memoryLimitBytes,
        unchanged,
        pool: deps.pool,
        onKeyed,
        cache,
      });
      lap('transform', t);
      await rm(localFile, { force: true });
      if (result) {
        await writeLinks();
        finished.push({ index, file: outName, sha256: (await hashFile(outFile)).sha256, ...result });
        Context.current().heartbeat(progress());
      }
      return { problems, produced: result && { table, outFile, ...result } };
    };
    // Two lanes on a package that fits in memory: the largest table on one, the others one after another on the
    // second, so the small tables' keying and writing overlap the large table's load. Each lane has its connection.
    const todo = metadata.tables.map((_, index) => index).filter((index) => !reused.has(index));
    const lanes = inMemory && todo.length > 1 ? 2 : 1;
    const order = todo
      .map((index) => ({ index, bytes: byPath.get(metadata.tables[index]!.path)?.bytes ?? 0 }))
      .sort((a, b) => b.bytes - a.bytes)
      .map((t) => t.index);
    while (connections.length < lanes) connections.push(await instance.connect());
    const outcomes = new Array<TableOutcome>(metadata.tables.length);
    for (const [index, table] of reused) {
      outcomes[index] = {
        problems: [],
        produced: { table: metadata.tables[index]!, outFile: path.join(outDir, table.file), ...table },
      };
    }
    await inLanes(order, lanes, async (index, lane) => {
      outcomes[index] = await curateOne(index, connections[lane]!);
    });
    const problems = outcomes.flatMap((o) => o.problems);
    const produced = outcomes.flatMap((o) => (o.produced ? [o.produced] : []));
    if (problems.length > 0) throw rejectPackage(problems);

    if (vault) await writeVaultShard(s3, jurisdiction.buckets.catalog, vault);
    const rule = jurisdiction.retention[metadata.dataClass]!;
    const classification = rule.classification;
    const study = await readStudyRecord(s3, jurisdiction.buckets.catalog, jurisdiction.id, metadata.studyId);
    const retention = datasetRetention(metadata.dataClass, rule, {
      curation: input.curatedAt,
      'last-effective-date': input.curatedAt,
      ...(study.trialEnd ? { 'end-of-trial': `${study.trialEnd.date}T00:00:00.000Z` } : {}),
    });
    // Storage refuses to delete before retention ends (a retain-until already past cannot be set: none is).
    const lock =
      retention.lockedUntil && retention.lockedUntil > input.curatedAt
        ? { mode: retention.objectLock, until: new Date(retention.lockedUntil) }
        : undefined;
    if (!lock) retention.lockedUntil = null;
    // Cancelled while the tables were curated: nothing goes up.
    Context.current().cancellationSignal.throwIfAborted();
    const uploadStart = Date.now();
    Context.current().heartbeat({ ...progress(), phase: 'uploading' });
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
          ...(lock ? { lock } : {}),
          // A study under legal hold: its new datasets are held from their first byte.
          ...(activeHolds(study).length > 0 ? { legalHold: true } : {}),
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
    const rows: RowCounts = { in: 0, curated: 0, excluded: 0, excludedByReason: {} };
    for (const item of produced) addCounts(rows, item.rows);
    lap('upload', uploadStart);
    Context.current().log.info('curated package', {
      datasetId: input.datasetId,
      rows: rows.in,
      reusedTables: reused.size,
      ms: Date.now() - started,
      ...timings,
    });
    return {
      keysCreated: key.created ? [key.id] : [],
      outputs,
      rows,
      keyVersions: [key.version],
      classification,
      retention,
    };
  } catch (error) {
    // A failure a retry can get past keeps the finished tables (and the staged inputs) for that retry.
    keepWork =
      !(error instanceof ApplicationFailure && error.nonRetryable) && !Context.current().cancellationSignal.aborted;
    throw error;
  } finally {
    clearInterval(heartbeat);
    Context.current().cancellationSignal.removeEventListener('abort', cancel);
    connections.forEach((c) => c.closeSync());
    instance.closeSync();
    await rm(work, { recursive: true, force: true });
    if (!keepWork) {
      await rm(outDir, { recursive: true, force: true });
      await rm(path.join(deps.stageDir, input.packageId), { recursive: true, force: true });
    }
  }
}
