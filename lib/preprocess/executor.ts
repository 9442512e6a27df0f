import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GpuInventory, PipelineSpec } from '../../schemas/preprocess';
import type { PipelineParameters } from '../../schemas/preprocess';
import { runBuiltin, TransformError } from './builtin';
import { cudaVisibleDevices } from './gpu';

/** A pipeline that failed on its data or its command: non-retryable, with a message that says which and why. */
export class ExecutorError extends Error {}

/** The job's scratch as an executor sees it: staged inputs, where outputs go, and what it may know. */
export interface ExecutorJob {
  spec: PipelineSpec;
  /** `{pipeline}` on this machine. */
  pipelineDir: string;
  /** The per-job scratch directory; inputs, outputs and parameters are inside it. */
  workDir: string;
  /** Staged inputs, one Parquet file per input dataset: `<datasetId>.parquet`. */
  inputDir: string;
  /** Outputs, one Parquet file per input, of the same name. */
  outputDir: string;
  parameters: PipelineParameters;
  seed: number;
  gpu: GpuInventory | null;
  cudaVisibleDevices: string | null;
  signal: AbortSignal;
  /** Called as an input is worked on (`fraction` of it done) and once it is done (`fraction` 1). */
  onProgress(done: { file: string; fraction: number }): void;
}

export interface Executor {
  run(job: ExecutorJob): Promise<void>;
}

async function stagedFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.parquet')).sort();
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

/** The CPU reference: the pipeline's steps as DuckDB SQL, one input at a time, single-threaded. */
export const builtinExecutor: Executor = {
  async run(job) {
    if (job.spec.executor !== 'builtin') throw new Error('not a built-in pipeline');
    for (const file of await stagedFiles(job.inputDir)) {
      checkAborted(job.signal);
      try {
        await runBuiltin({
          input: path.join(job.inputDir, file),
          output: path.join(job.outputDir, file),
          steps: job.spec.steps,
          seed: job.seed,
          tempDir: path.join(job.workDir, 'duckdb'),
          signal: job.signal,
          onProgress: (fraction) => job.onProgress({ file, fraction }),
        });
      } catch (error) {
        if (error instanceof TransformError) throw new ExecutorError(`input ${file}: ${error.message}`);
        throw error;
      }
      job.onProgress({ file, fraction: 1 });
    }
  },
};

/** In a job's scratch: the process id of its running command. */
export const COMMAND_PID_FILE = 'command.pid';

/** How much of a failed command's output its failure shows. */
const OUTPUT_TAIL = 2000;

/**
 * A user's command (a script, or `docker run` of an image by digest): argv with `{input}`, `{output}`, `{params}`,
 * `{seed}` and `{pipeline}` replaced. It runs in the job's scratch with a bare environment: PATH, HOME set to the
 * scratch, the seed, and for GPU jobs `CUDA_VISIBLE_DEVICES` and the GPU inventory (`STEWARD_GPU_INVENTORY`, a JSON
 * file). Cancelling the job stops it (SIGTERM, then SIGKILL after 10 s).
 */
export const externalExecutor: Executor = {
  async run(job) {
    if (job.spec.executor !== 'external') throw new Error('not an external pipeline');
    const paramsFile = path.join(job.workDir, 'params.json');
    await writeFile(paramsFile, JSON.stringify(job.parameters, null, 2));
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: job.workDir,
      LANG: 'C.UTF-8',
      STEWARD_SEED: String(job.seed),
      STEWARD_INPUT_DIR: job.inputDir,
      STEWARD_OUTPUT_DIR: job.outputDir,
      STEWARD_PARAMS: paramsFile,
    };
    if (job.gpu) {
      const inventoryFile = path.join(job.workDir, 'gpu.json');
      await writeFile(inventoryFile, JSON.stringify(job.gpu, null, 2));
      env.STEWARD_GPU_INVENTORY = inventoryFile;
      env.CUDA_VISIBLE_DEVICES = cudaVisibleDevices(job.gpu, job.cudaVisibleDevices);
    }
    const replace = (arg: string) =>
      arg
        .replaceAll('{input}', job.inputDir)
        .replaceAll('{output}', job.outputDir)
        .replaceAll('{params}', paramsFile)
        .replaceAll('{seed}', String(job.seed))
        .replaceAll('{pipeline}', job.pipelineDir);
    const [command, ...args] = job.spec.command.map(replace);
    checkAborted(job.signal);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command!, args, { cwd: job.workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      // A worker that dies leaves its command running: the next worker on this machine stops it by this file.
      if (child.pid) writeFileSync(path.join(job.workDir, COMMAND_PID_FILE), String(child.pid));
      let tail = '';
      const keep = (chunk: Buffer) => {
        tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let killer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        child.kill('SIGTERM');
        killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      };
      job.signal.addEventListener('abort', onAbort, { once: true });
      child.on('error', (error) => {
        job.signal.removeEventListener('abort', onAbort);
        reject(new ExecutorError(`the pipeline's command ${command} could not start: ${error.message}`));
      });
      child.on('close', (code, signal) => {
        job.signal.removeEventListener('abort', onAbort);
        if (killer) clearTimeout(killer);
        if (job.signal.aborted)
          return reject(job.signal.reason instanceof Error ? job.signal.reason : new Error('cancelled'));
        if (code === 0) return resolve();
        reject(
          new ExecutorError(
            `the pipeline's command ${command} ${code === null ? `was killed by ${signal}` : `exited with status ${code}`}; its last output:\n${tail.trim()}`,
          ),
        );
      });
    });
    const inputs = await stagedFiles(job.inputDir);
    const outputs = await stagedFiles(job.outputDir);
    const missing = inputs.filter((f) => !outputs.includes(f));
    const extra = outputs.filter((f) => !inputs.includes(f));
    if (missing.length > 0 || extra.length > 0) {
      throw new ExecutorError(
        `the pipeline's command must write one Parquet file per input, named as the input (${inputs.join(', ')})${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not an input: ${extra.join(', ')}` : ''}`,
      );
    }
    for (const file of outputs) job.onProgress({ file, fraction: 1 });
  },
};

export function executorFor(spec: PipelineSpec): Executor {
  return spec.executor === 'builtin' ? builtinExecutor : externalExecutor;
}
