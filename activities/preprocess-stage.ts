import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import { ErrorType, nonRetryable } from '../contracts';
import { decideConsent } from '../lib/consent/decide';
import { readConsentRegistry } from '../lib/storage/catalog';
import { subjectExclusions } from '../lib/storage/subjects';
import { downloadHashed } from '../lib/storage/objects';
import { isAccessDenied } from '../lib/storage/s3';
import { quoteIdent, quoteLiteral } from '../lib/tabular/sql';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ConsentExclusion, PreprocessInput, RunDocument } from '../schemas/preprocess';

/** Runs a storage call; storage refusing these credentials fails for good, naming the bucket. */
export type GuardedStorage = <T>(what: string, bucket: string, op: () => Promise<T>) => Promise<T>;

/** Storage refused these credentials: no retry helps, and the message says whose bucket it was. */
export function guardedStorage(jurisdiction: Jurisdiction): GuardedStorage {
  return async (what, bucket, op) => {
    try {
      return await op();
    } catch (error) {
      if (isAccessDenied(error)) {
        throw nonRetryable(
          ErrorType.StorageDenied,
          `storage refused ${what} in bucket ${bucket} (AccessDenied): this worker's credentials reach only the ${jurisdiction.id} buckets`,
        );
      }
      throw error;
    }
  };
}

export interface StageInputsJob {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  storage: GuardedStorage;
  /** One DuckDB thread: staging reads and writes rows in the input's order. */
  conn: DuckDBConnection;
  inputs: readonly PreprocessInput[];
  /** The pipeline's purpose, and the day (from the workflow) consent is decided as of. */
  purpose: string;
  asOf: string;
  /** When the job started (workflow time): the registry is read as of then. */
  registryAt: string;
  /** The job's scratch, and the folder the executor reads its inputs from. */
  workDir: string;
  inputDir: string;
  signal: AbortSignal;
  /** Told the rows staged so far, after each input. */
  onStaged: (rows: number) => void;
}

export interface StagedInputs {
  inputs: RunDocument['inputs'];
  consent: ConsentExclusion;
  /** Rows staged, all inputs together. */
  rows: number;
}

/**
 * Stages each input version, checked against its recorded SHA-256, without the rows of subjects whose consent does
 * not cover the pipeline's purpose as of the job's day, whose processing is restricted (GDPR Art. 18: counted as
 * `restricted`), or who were erased (Art. 17: counted as `erased`, for rows kept under a duty to keep). A curated dataset holds one token per subject: the registry
 * holds every decision under the token of every live key version (and links tokens made later), so the one token
 * gets the decision ingestion would give (`decideConsent`).
 */
export async function stageInputs(job: StageInputsJob): Promise<StagedInputs> {
  const { s3, jurisdiction, storage, conn } = job;
  const consent: ConsentExclusion = { purpose: job.purpose, asOf: job.asOf, subjects: 0, rows: 0, byReason: {} };
  const inputs: RunDocument['inputs'] = [];
  const excludedSubjects = new Set<string>();
  // Restricted and erased subjects, read once, when the first input with subjects is staged.
  let exclusions: Awaited<ReturnType<typeof subjectExclusions>> | undefined;
  let staged = 0;
  for (const item of job.inputs) {
    if (job.signal.aborted) throw job.signal.reason;
    const raw = path.join(job.workDir, `${item.datasetId}.source.parquet`);
    const digest = await storage(`reading ${item.key}`, item.bucket, () =>
      downloadHashed(s3, item.bucket, item.key, raw, () => {}, item.versionId),
    );
    if (digest.sha256 !== item.sha256) {
      throw nonRetryable(
        ErrorType.PreprocessFailed,
        `input ${item.datasetId} table ${item.table}: object ${item.bucket}/${item.key} version ${item.versionId} has SHA-256 ${digest.sha256}, not the recorded ${item.sha256}`,
      );
    }
    const target = path.join(job.inputDir, `${item.datasetId}.parquet`);
    let rowsIn: number;
    let rowsExcluded = 0;
    if (item.subjectColumn) {
      const registry = await storage('reading consent', jurisdiction.buckets.catalog, () =>
        readConsentRegistry(s3, jurisdiction.buckets.catalog, jurisdiction.id, item.studyId, job.registryAt),
      );
      const byToken = new Map(registry.entries.map((e) => [e.token, e]));
      exclusions ??= await storage('reading restrictions and erasures', jurisdiction.buckets.catalog, () =>
        subjectExclusions(s3, jurisdiction.buckets.catalog),
      );
      const excluded = exclusions;
      const subject = quoteIdent(item.subjectColumn);
      const tokens = await conn.runAndReadAll(
        `SELECT DISTINCT CAST(${subject} AS VARCHAR) AS t FROM read_parquet(${quoteLiteral(raw)}) WHERE ${subject} IS NOT NULL`,
      );
      await conn.run('CREATE OR REPLACE TABLE excluded (token VARCHAR)');
      const appender = await conn.createAppender('excluded');
      for (const row of tokens.getRows()) {
        const token = String(row[0]);
        const reason =
          excluded.get(item.studyId)?.get(token) ?? decideConsent(byToken, [token], job.purpose, job.asOf).reason;
        if (!reason) continue;
        appender.appendVarchar(token);
        appender.endRow();
        if (!excludedSubjects.has(`${item.studyId}/${token}`)) {
          excludedSubjects.add(`${item.studyId}/${token}`);
          consent.byReason[reason] = (consent.byReason[reason] ?? 0) + 1;
        }
      }
      appender.flushSync();
      appender.closeSync();
      const counts = await conn.runAndReadAll(
        `SELECT count(*) AS n, count(*) FILTER (WHERE CAST(${subject} AS VARCHAR) IN (SELECT token FROM excluded)) AS x FROM read_parquet(${quoteLiteral(raw)})`,
      );
      const [n, x] = counts.getRows()[0]!.map(Number) as [number, number];
      rowsIn = n;
      rowsExcluded = x;
      consent.rows += x;
      if (x === 0) {
        await rename(raw, target);
      } else {
        // One thread reads and writes in the input's order.
        await conn.run(
          `COPY (SELECT * FROM read_parquet(${quoteLiteral(raw)})
             WHERE ${subject} IS NULL OR CAST(${subject} AS VARCHAR) NOT IN (SELECT token FROM excluded))
           TO ${quoteLiteral(target)} (FORMAT parquet, COMPRESSION zstd)`,
        );
      }
    } else {
      rowsIn = Number(
        (await conn.runAndReadAll(`SELECT count(*) FROM read_parquet(${quoteLiteral(raw)})`)).getRows()[0]![0],
      );
      await rename(raw, target);
    }
    await rm(raw, { force: true });
    staged += rowsIn - rowsExcluded;
    inputs.push({ ...item, rowsIn, rowsExcluded });
    job.onStaged(staged);
  }
  consent.subjects = excludedSubjects.size;
  return { inputs, consent, rows: staged };
}
