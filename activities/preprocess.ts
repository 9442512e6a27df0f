import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { CancelledFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ErrorType, nonRetryable, preprocessJobPrefix, runDocumentKey } from '../contracts';
import { consentExclusion } from '../lib/consent/rules';
import { executorFor, ExecutorError } from '../lib/preprocess/executor';
import { cudaVisibleDevices } from '../lib/preprocess/gpu';
import { pipelineCodeSha256, pipelineDir, pipelineFiles } from '../lib/preprocess/load-pipeline';
import { PipelineError, resolvePipeline } from '../lib/preprocess/pipeline';
import { datasetRetention } from '../lib/retention/rules';
import { readConsentRegistry, readDatasetRecord, readRunDocument, writeDatasetRecord } from '../lib/storage/catalog';
import { downloadHashed, hashFile, putBytes, putFileOnce } from '../lib/storage/objects';
import { isAccessDenied } from '../lib/storage/s3';
import { quoteIdent, quoteLiteral } from '../lib/tabular/sql';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import {
  PreprocessHeartbeatSchema,
  RunDocumentRefSchema,
  RunDocumentSchema,
  RunPreprocessInputSchema,
  type ConsentExclusion,
  type GpuInventory,
  type Infrastructure,
  type PreprocessInput,
  type PreprocessOutput,
  type RunDocument,
  type RunDocumentRef,
  type RunPreprocessInput,
  type RunPreprocessResult,
} from '../schemas/preprocess';
import { z } from 'zod';
import { DatasetIdSchema } from '../schemas/ingest';
import { assertOwnBucket, assertOwnJurisdiction } from './guards';

export const PreparePreprocessInputSchema = z.object({
  jurisdiction: z.string(),
  datasetIds: z.array(DatasetIdSchema).min(1),
  table: z.string().optional(),
  at: z.iso.datetime(),
});
export type PreparePreprocessInput = z.infer<typeof PreparePreprocessInputSchema>;

export interface PreparePreprocessResult {
  inputs: PreprocessInput[];
  /** The Object Lock of outputs (retention class `preprocessing-output`), null when it is not set. */
  lock: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: string } | null;
}

export const RecordPreprocessOutputsInputSchema = z.object({
  jurisdiction: z.string(),
  document: RunDocumentSchema,
  documentRef: RunDocumentRefSchema,
});
export type RecordPreprocessOutputsInput = z.infer<typeof RecordPreprocessOutputsInputSchema>;

/** The dataset a job's outputs from one input dataset make, as the catalog records it. */
function outputRecord(
  jurisdiction: Jurisdiction,
  source: DatasetRecord,
  document: RunDocument,
  documentRef: RunDocumentRef,
  datasetId: string,
): DatasetRecord {
  const outputs = document.outputs.filter((o) => o.datasetId === datasetId);
  const inputs = document.inputs.filter((i) => i.datasetId === source.datasetId);
  const rule = jurisdiction.retention['preprocessing-output']!;
  const rowsIn = inputs.reduce((n, i) => n + i.rowsIn, 0);
  const rowsOut = outputs.reduce((n, o) => n + o.rows, 0);
  const sourceColumns = new Map(source.outputs.flatMap((o) => o.columns.map((c) => [c.name, c.role])));
  return DatasetRecordSchema.parse({
    format: 'steward-dataset/1',
    datasetId,
    packageId: document.jobId,
    jurisdiction: jurisdiction.id,
    studyId: source.studyId,
    protocolId: source.protocolId,
    dataClass: 'preprocessing-output',
    classification: rule.classification,
    purpose: document.pipeline.purpose,
    consentScopes: source.consentScopes,
    sourceSystem: `steward-preprocess ${document.pipeline.name}@${document.pipeline.version}`,
    keyVersions: source.keyVersions,
    dateShiftDays: source.dateShiftDays,
    createdAt: document.finishedAt,
    retention: datasetRetention('preprocessing-output', rule, { curation: document.finishedAt }),
    holds: [],
    rows: {
      in: rowsIn,
      curated: rowsOut,
      excluded: inputs.reduce((n, i) => n + i.rowsExcluded, 0),
      excludedByReason: {},
    },
    inputs: inputs.map((i) => ({
      path: `s3://${i.bucket}/${i.key}?versionId=${i.versionId ?? 'null'}`,
      sha256: i.sha256,
      bytes: i.bytes,
    })),
    outputs: outputs.map((o) => ({
      table: o.table,
      source: `${o.fromDatasetId}/${o.table}`,
      bucket: o.bucket,
      key: o.key,
      versionId: o.versionId,
      sha256: o.sha256,
      bytes: o.bytes,
      columns: o.columns.map((c) => ({ ...c, role: sourceColumns.get(c.name) ?? 'derived' })),
      rows: { in: rowsIn, curated: o.rows, excluded: rowsIn - o.rows, excludedByReason: {} },
    })),
    derivedFrom: inputs.map((i) => ({
      datasetId: i.datasetId,
      table: i.table,
      bucket: i.bucket,
      key: i.key,
      versionId: i.versionId,
      sha256: i.sha256,
    })),
    run: { jobId: document.jobId, ...documentRef },
    lineage: {
      landing: { bucket: documentRef.bucket, prefix: preprocessJobPrefix(document.jobId) },
      manifestSha256: documentRef.sha256,
      workflowId: document.workflowId,
      runId: document.runId,
      submittedBy: document.requestedBy,
    },
  });
}

export interface PreprocessActivityDeps {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  scratchDir: string;
  /** How the worker names itself to Temporal. */
  workerIdentity: string;
  /** The GPUs of a GPU worker (from `nvidia-smi` at start); null on a CPU worker. */
  gpu: GpuInventory | null;
  temporal: () => Promise<Client>;
}

async function temporalServerVersion(temporal: () => Promise<Client>): Promise<string | null> {
  try {
    const client = await temporal();
    const info = await client.workflowService.getSystemInfo({});
    return info.serverVersion || null;
  } catch {
    return null;
  }
}

/** The installed version of a package, from its package.json. */
function packageVersion(name: string): string {
  const file = path.join(path.dirname(require.resolve(`${name}/package.json`)), 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

async function infrastructure(
  deps: PreprocessActivityDeps,
  taskQueue: string,
  image: string | undefined,
  configuredDevices: string | null,
): Promise<Infrastructure> {
  const sdk = packageVersion('@temporalio/worker');
  const duckdb = packageVersion('@duckdb/node-api');
  return {
    worker: { identity: deps.workerIdentity, hostname: os.hostname(), pid: process.pid, taskQueue },
    node: process.version,
    temporalSdk: sdk,
    temporalServer: await temporalServerVersion(deps.temporal),
    versitygw: process.env.STEWARD_VERSITYGW_VERSION ?? null,
    duckdb,
    gpu: deps.gpu,
    cudaVisibleDevices: deps.gpu ? cudaVisibleDevices(deps.gpu, configuredDevices) : null,
    containerImage: image ?? null,
  };
}

/** Files left under a directory (0 once it is gone). */
async function countFiles(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) n += 1;
  return n;
}

/**
 * Preprocessing on a jurisdiction's preprocess worker. Every object it is asked to read or write is checked against
 * the worker's own buckets first (the second confinement layer); its credentials reach no other (the third).
 */
export function createPreprocessActivities(deps: PreprocessActivityDeps) {
  const { s3, jurisdiction } = deps;

  /** Storage refused these credentials: no retry helps, and the message says whose bucket it was. */
  const storage = async <T>(what: string, bucket: string, op: () => Promise<T>): Promise<T> => {
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

  return {
    /** Runs the job: stages its inputs (consent applied), runs the executor, uploads, documents, wipes the scratch. */
    async runPreprocessActivity(raw: RunPreprocessInput): Promise<RunPreprocessResult> {
      const input = parseInput(RunPreprocessInputSchema, raw, 'runPreprocessActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      for (const i of input.inputs) assertOwnBucket(jurisdiction, i.bucket);
      for (const o of input.outputs) assertOwnBucket(jurisdiction, o.bucket);

      const ctx = Context.current();
      const startedAt = new Date().toISOString();
      let spec;
      try {
        spec = resolvePipeline(input.pipeline.ref, input.pipeline.document, input.parameters);
      } catch (error) {
        if (error instanceof PipelineError) throw nonRetryable(ErrorType.InvalidInput, error.message);
        throw error;
      }
      const dir = pipelineDir(input.pipeline);
      const files = await pipelineFiles(input.pipeline.document, dir);
      const codeSha256 = pipelineCodeSha256(input.pipeline.document, files);
      if (!input.verify && codeSha256 !== input.pipeline.codeSha256) {
        throw nonRetryable(
          ErrorType.PreprocessFailed,
          `pipeline ${input.pipeline.ref}: its code on this worker (${codeSha256.slice(0, 12)}) is not the code the request named (${input.pipeline.codeSha256.slice(0, 12)}); install the same version on every worker`,
        );
      }
      if (spec.gpu && !deps.gpu) {
        throw nonRetryable(
          ErrorType.PreprocessFailed,
          `pipeline ${input.pipeline.ref} needs a GPU and this worker has none`,
        );
      }

      const earlier = PreprocessHeartbeatSchema.safeParse(ctx.info.heartbeatDetails);
      const uploaded = new Map<string, PreprocessOutput>(
        (earlier.success ? earlier.data.uploaded : []).map((o) => [o.fromDatasetId, o]),
      );
      const workDir = path.join(deps.scratchDir, 'preprocess', input.jobId);
      const inputDir = path.join(workDir, 'input');
      const outputDir = path.join(workDir, 'output');
      const abort = new AbortController();
      let phase = 'staging';
      let rowsDone = 0;
      let rowsTotal = 0;
      const beat = () => ctx.heartbeat({ phase, rowsDone, rowsTotal, uploaded: [...uploaded.values()] });
      const ticker = setInterval(beat, 2000);
      ctx.cancelled.catch((error: unknown) => abort.abort(error));
      const inputsDone: RunDocument['inputs'] = [];
      const consent: ConsentExclusion = { purpose: spec.purpose, asOf: input.asOf, subjects: 0, rows: 0, byReason: {} };
      const outputs: PreprocessOutput[] = [];
      const configuredDevices = process.env.CUDA_VISIBLE_DEVICES ?? null;
      let scratchFiles = 0;
      // One thread: staging reads and writes rows in the input's order. Closed before the scratch is wiped.
      let db: DuckDBInstance | undefined;
      try {
        await rm(workDir, { recursive: true, force: true });
        await mkdir(inputDir, { recursive: true });
        await mkdir(outputDir, { recursive: true });
        await mkdir(path.join(workDir, 'duckdb'), { recursive: true });
        db = await DuckDBInstance.create(':memory:', {
          threads: '1',
          temp_directory: path.join(workDir, 'duckdb'),
          autoinstall_known_extensions: 'false',
        });
        const conn = await db.connect();

        // Staging: each input version, checked against its recorded SHA-256, without the rows of subjects who have
        // no consent to the pipeline's purpose today.
        {
          const excludedSubjects = new Set<string>();
          for (const item of input.inputs) {
            if (abort.signal.aborted) throw abort.signal.reason;
            const raw = path.join(workDir, `${item.datasetId}.source.parquet`);
            const digest = await storage(`reading ${item.key}`, item.bucket, () =>
              downloadHashed(s3, item.bucket, item.key, raw, () => {}, item.versionId),
            );
            if (digest.sha256 !== item.sha256) {
              throw nonRetryable(
                ErrorType.PreprocessFailed,
                `input ${item.datasetId} table ${item.table}: object ${item.bucket}/${item.key} version ${item.versionId} has SHA-256 ${digest.sha256}, not the recorded ${item.sha256}`,
              );
            }
            const staged = path.join(inputDir, `${item.datasetId}.parquet`);
            let rowsIn: number;
            let rowsExcluded = 0;
            if (item.subjectColumn) {
              const registry = await storage('reading consent', jurisdiction.buckets.catalog, () =>
                readConsentRegistry(s3, jurisdiction.buckets.catalog, jurisdiction.id, item.studyId, startedAt),
              );
              const byToken = new Map(registry.entries.map((e) => [e.token, e]));
              const subject = quoteIdent(item.subjectColumn);
              const tokens = await conn.runAndReadAll(
                `SELECT DISTINCT CAST(${subject} AS VARCHAR) AS t FROM read_parquet(${quoteLiteral(raw)}) WHERE ${subject} IS NOT NULL`,
              );
              await conn.run('CREATE OR REPLACE TABLE excluded (token VARCHAR)');
              const appender = await conn.createAppender('excluded');
              for (const row of tokens.getRows()) {
                const token = String(row[0]);
                const reason = consentExclusion(byToken.get(token), spec.purpose, input.asOf);
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
                await rename(raw, staged);
              } else {
                // One thread reads and writes in the input's order.
                await conn.run(
                  `COPY (SELECT * FROM read_parquet(${quoteLiteral(raw)})
                     WHERE ${subject} IS NULL OR CAST(${subject} AS VARCHAR) NOT IN (SELECT token FROM excluded))
                   TO ${quoteLiteral(staged)} (FORMAT parquet, COMPRESSION zstd)`,
                );
              }
            } else {
              rowsIn = Number(
                (await conn.runAndReadAll(`SELECT count(*) FROM read_parquet(${quoteLiteral(raw)})`)).getRows()[0]![0],
              );
              await rename(raw, staged);
            }
            await rm(raw, { force: true });
            rowsTotal += rowsIn - rowsExcluded;
            inputsDone.push({ ...item, rowsIn, rowsExcluded });
          }
          consent.subjects = excludedSubjects.size;
        }

        phase = `running ${spec.executor} pipeline ${spec.name}@${spec.version}`;
        beat();
        const rowsOf = new Map(inputsDone.map((i) => [`${i.datasetId}.parquet`, i.rowsIn - i.rowsExcluded]));
        const doneOf = new Map<string, number>();
        await executorFor(spec).run({
          spec,
          pipelineDir: dir,
          workDir,
          inputDir,
          outputDir,
          parameters: input.parameters,
          seed: input.seed,
          gpu: deps.gpu,
          cudaVisibleDevices: configuredDevices,
          signal: abort.signal,
          onProgress: ({ file, fraction }) => {
            doneOf.set(file, Math.round((rowsOf.get(file) ?? 0) * fraction));
            rowsDone = [...doneOf.values()].reduce((a, b) => a + b, 0);
            beat();
          },
        });

        phase = input.verify ? 'hashing outputs' : 'uploading outputs';
        beat();
        for (const target of input.outputs) {
          if (abort.signal.aborted) throw abort.signal.reason;
          const table = input.inputs.find((i) => i.datasetId === target.fromDatasetId)!.table;
          const file = path.join(outputDir, `${target.fromDatasetId}.parquet`);
          const digest = await hashFile(file);
          const done = uploaded.get(target.fromDatasetId);
          if (done && done.sha256 === digest.sha256) {
            outputs.push(done);
            continue;
          }
          const output = `read_parquet(${quoteLiteral(file)})`;
          const columns = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${output}`))
            .getRowObjectsJS()
            .map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
          const rows = Number((await conn.runAndReadAll(`SELECT count(*) FROM ${output}`)).getRows()[0]![0]);
          const key = `${target.prefix}${table}.parquet`;
          let versionId: string | null = null;
          if (!input.verify) {
            const put = await storage(`writing ${key}`, target.bucket, () =>
              putFileOnce(s3, target.bucket, key, file, digest.sha256, {
                contentType: 'application/vnd.apache.parquet',
                tags: { ...input.tags, 'dataset-id': target.datasetId, 'job-id': input.jobId },
                ...(input.lock ? { lock: { mode: input.lock.mode, until: new Date(input.lock.until) } } : {}),
              }),
            );
            versionId = put.versionId;
          }
          const stored: PreprocessOutput = {
            datasetId: target.datasetId,
            fromDatasetId: target.fromDatasetId,
            table,
            bucket: target.bucket,
            key,
            versionId,
            sha256: digest.sha256,
            bytes: digest.bytes,
            rows,
            columns,
          };
          outputs.push(stored);
          if (!input.verify) {
            uploaded.set(target.fromDatasetId, stored);
            beat();
          }
        }
      } catch (error) {
        if (error instanceof ExecutorError) throw nonRetryable(ErrorType.PreprocessFailed, error.message);
        if (abort.signal.aborted) throw new CancelledFailure('the job was cancelled; its scratch was wiped');
        throw error;
      } finally {
        clearInterval(ticker);
        db?.closeSync();
        scratchFiles = await countFiles(workDir);
        await rm(workDir, { recursive: true, force: true });
      }
      // The wipe, verified: nothing of the job is left on this machine.
      if (existsSync(workDir)) {
        throw new Error(`the job's scratch ${workDir} could not be wiped (${await countFiles(workDir)} files left)`);
      }
      const document: RunDocument = RunDocumentSchema.parse({
        format: 'steward-run/1',
        jobId: input.jobId,
        jurisdiction: jurisdiction.id,
        workflowId: input.job.workflowId,
        runId: input.job.runId,
        requestId: input.job.requestId,
        requestedBy: input.job.requestedBy,
        startedAt: input.job.startedAt,
        finishedAt: new Date().toISOString(),
        pipeline: {
          ref: input.pipeline.ref,
          name: spec.name,
          version: spec.version,
          executor: spec.executor,
          gpu: spec.gpu,
          purpose: spec.purpose,
          codeSha256,
          files,
          document: input.pipeline.document,
          dir: input.pipeline.dir,
          bundled: input.pipeline.bundled,
        },
        parameters: input.parameters,
        seed: input.seed,
        inputs: inputsDone,
        consent,
        outputs,
        scratch: { wiped: true, verifiedAt: new Date().toISOString(), files: scratchFiles },
        infrastructure: await infrastructure(
          deps,
          ctx.info.taskQueue,
          spec.executor === 'external' ? spec.image : undefined,
          configuredDevices,
        ),
      });
      if (input.verify) return { document, documentRef: null, copies: [] };
      const body = Buffer.from(JSON.stringify(document, null, 2));
      const write = async (bucket: string, key: string): Promise<RunDocumentRef> => {
        const put = await storage(`writing ${key}`, bucket, () =>
          putBytes(s3, bucket, key, body, {
            contentType: 'application/json',
            lock: input.lock ? { mode: input.lock.mode, until: new Date(input.lock.until) } : null,
          }),
        );
        return { bucket, key, ...put };
      };
      // Beside each output dataset's objects (deleted and certified with them), and once for the job (what
      // `preprocess show` and `verify` read, kept after the outputs expire).
      const copies: RunDocumentRef[] = [];
      for (const target of input.outputs) copies.push(await write(target.bucket, `${target.prefix}run.json`));
      const documentRef = await write(input.outputs[0]!.bucket, runDocumentKey(input.jobId));
      return { document, documentRef, copies };
    },
  };
}

/** The short activities of a job, on the jurisdiction's main worker: reading the catalog and recording outputs. */
export function createPreprocessCatalogActivities({ s3, jurisdiction }: { s3: S3Client; jurisdiction: Jurisdiction }) {
  return {
    /** The exact object versions a job reads, and the retention its outputs get. */
    async preparePreprocessActivity(raw: PreparePreprocessInput): Promise<PreparePreprocessResult> {
      const input = parseInput(PreparePreprocessInputSchema, raw, 'preparePreprocessActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const inputs: PreprocessInput[] = [];
      for (const datasetId of input.datasetIds) {
        const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, datasetId);
        if (!record) {
          throw nonRetryable(
            ErrorType.DatasetNotFound,
            `dataset ${datasetId} is not in the ${jurisdiction.id} catalog`,
          );
        }
        const tables = record.outputs.map((o) => o.table);
        const output = input.table
          ? record.outputs.find((o) => o.table === input.table)
          : record.outputs.length === 1
            ? record.outputs[0]
            : undefined;
        if (!output) {
          throw nonRetryable(
            ErrorType.InvalidInput,
            input.table
              ? `dataset ${datasetId} has no table ${input.table}; its tables: ${tables.join(', ')}`
              : `dataset ${datasetId} has tables ${tables.join(', ')}: the pipeline must name one ("table")`,
          );
        }
        assertOwnBucket(jurisdiction, output.bucket);
        inputs.push({
          datasetId,
          studyId: record.studyId,
          table: output.table,
          bucket: output.bucket,
          key: output.key,
          versionId: output.versionId,
          sha256: output.sha256,
          bytes: output.bytes,
          subjectColumn: output.columns.find((c) => c.role === 'subject-id')?.name ?? null,
        });
      }
      const rule = jurisdiction.retention['preprocessing-output'];
      if (!rule) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `jurisdiction ${jurisdiction.id} has no retention rule for preprocessing-output`,
        );
      }
      const retention = datasetRetention('preprocessing-output', rule, { curation: input.at });
      return {
        inputs,
        lock: retention.lockedUntil ? { mode: retention.objectLock, until: retention.lockedUntil } : null,
      };
    },

    /**
     * Creates the output datasets' records unless they exist (a retry finds them): the job's workflow is their only
     * creator, as an ingestion is of its dataset's.
     */
    async recordPreprocessOutputsActivity(raw: RecordPreprocessOutputsInput): Promise<{ created: string[] }> {
      const input = parseInput(RecordPreprocessOutputsInputSchema, raw, 'recordPreprocessOutputsActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const created: string[] = [];
      const ids = [...new Set(input.document.outputs.map((o) => o.datasetId))];
      for (const datasetId of ids) {
        if (await readDatasetRecord(s3, jurisdiction.buckets.catalog, datasetId)) continue;
        const from = input.document.outputs.find((o) => o.datasetId === datasetId)!.fromDatasetId;
        const source = await readDatasetRecord(s3, jurisdiction.buckets.catalog, from);
        if (!source) throw nonRetryable(ErrorType.DatasetNotFound, `dataset ${from} is no longer in the catalog`);
        await writeDatasetRecord(
          s3,
          jurisdiction.buckets.catalog,
          outputRecord(jurisdiction, source, input.document, input.documentRef, datasetId),
        );
        created.push(datasetId);
      }
      return { created };
    },

    /** A job's run documentation, as written beside its outputs. */
    async readRunDocumentActivity(raw: { jurisdiction: string; jobId: string }): Promise<RunDocument> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      const document = await readRunDocument(s3, jurisdiction.buckets.curated, raw.jobId);
      if (!document) {
        throw nonRetryable(
          ErrorType.DatasetNotFound,
          `no run documentation for job ${raw.jobId} in ${jurisdiction.id} (${jurisdiction.buckets.curated}/${runDocumentKey(raw.jobId)})`,
        );
      }
      return document;
    },
  };
}
