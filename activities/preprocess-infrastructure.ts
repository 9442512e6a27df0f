import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { cudaVisibleDevices } from '../lib/preprocess/gpu';
import type { GpuInventory, Infrastructure } from '../schemas/preprocess';

/** What the run documentation says of the worker a job ran on, as the worker's factory was given it. */
export interface WorkerDescription {
  /** How the worker names itself to Temporal. */
  workerIdentity: string;
  /** The GPUs of a GPU worker (from `nvidia-smi` at start); null on a CPU worker. */
  gpu: GpuInventory | null;
  /** The worker's own CUDA_VISIBLE_DEVICES setting, null when it has none. */
  cudaVisibleDevices: string | null;
  /** The versitygw version of the stack, null when not known. */
  versitygwVersion: string | null;
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

/** The machine and software a job ran on, for its run documentation. */
export async function infrastructure(
  worker: WorkerDescription,
  taskQueue: string,
  image: string | undefined,
): Promise<Infrastructure> {
  return {
    worker: { identity: worker.workerIdentity, hostname: os.hostname(), pid: process.pid, taskQueue },
    node: process.version,
    temporalSdk: packageVersion('@temporalio/worker'),
    temporalServer: await temporalServerVersion(worker.temporal),
    versitygw: worker.versitygwVersion,
    duckdb: packageVersion('@duckdb/node-api'),
    gpu: worker.gpu,
    cudaVisibleDevices: worker.gpu ? cudaVisibleDevices(worker.gpu, worker.cudaVisibleDevices) : null,
    containerImage: image ?? null,
  };
}

/** Files left under a directory (0 once it is gone). */
export async function countFiles(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) n += 1;
  return n;
}
