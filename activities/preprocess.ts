import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { CancelledFailure, Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import { runDocumentKey } from '../lib/storage/layout';
import { parseInput } from '../contracts/parse';
import { executorFor, ExecutorError } from '../lib/preprocess/executor';
import { pipelineCodeSha256, pipelineDir, pipelineFiles } from '../lib/preprocess/load-pipeline';
import { PipelineError, resolvePipeline } from '../lib/preprocess/pipeline';
import { hashFile, putBytes, putFileOnce } from '../lib/storage/objects';
import { quoteLiteral } from '../lib/tabular/sql';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  PreprocessHeartbeatSchema,
  RunDocumentSchema,
  RunPreprocessInputSchema,
  type ConsentExclusion,
  type PreprocessOutput,
  type RunDocument,
  type RunDocumentRef,
  type RunPreprocessInput,
  type RunPreprocessResult,
} from '../schemas/preprocess';
import { assertOwnBucket, assertOwnJurisdiction } from './guards';
import { countFiles, infrastructure, type WorkerDescription } from './preprocess-infrastructure';
import { guardedStorage, stageInputs } from './preprocess-stage';

export interface PreprocessActivityDeps extends WorkerDescription {
  s3: S3Client;
  jurisdiction: Jurisdiction;
  scratchDir: string;
}

/**
 * Preprocessing on a jurisdiction's preprocess worker. Every object it is asked to read or write is checked against
 * the worker's own buckets first (the second confinement layer); its credentials reach no other (the third).
 */
export function createPreprocessActivities(deps: PreprocessActivityDeps) {
  const { s3, jurisdiction } = deps;
  const storage = guardedStorage(jurisdiction);

  return {
    /** Runs the job: stages its inputs (consent applied), runs the executor, uploads, documents, wipes the scratch. */
    async runPreprocessActivity(raw: RunPreprocessInput): Promise<RunPreprocessResult> {
      const input = parseInput(RunPreprocessInputSchema, raw, 'runPreprocessActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      for (const i of input.inputs) assertOwnBucket(jurisdiction, i.bucket);
      for (const o of input.outputs) assertOwnBucket(jurisdiction, o.bucket);

      const ctx = Context.current();
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
      let consent: ConsentExclusion = { purpose: spec.purpose, asOf: input.asOf, subjects: 0, rows: 0, byReason: {} };
      const outputs: PreprocessOutput[] = [];
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

        const staged = await stageInputs({
          s3,
          jurisdiction,
          storage,
          conn,
          inputs: input.inputs,
          purpose: spec.purpose,
          asOf: input.asOf,
          registryAt: input.job.startedAt,
          workDir,
          inputDir,
          signal: abort.signal,
          onStaged: (rows) => (rowsTotal = rows),
        });
        inputsDone.push(...staged.inputs);
        consent = staged.consent;

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
          cudaVisibleDevices: deps.cudaVisibleDevices,
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
        infrastructure: {
          ...(await infrastructure(deps, ctx.info.taskQueue, spec.executor === 'external' ? spec.image : undefined)),
          baseline: input.baseline ?? null,
        },
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
