import { XMLParser } from 'fast-xml-parser';
import { execFile } from 'node:child_process';
import { GpuInventorySchema, type GpuInventory } from '../../schemas/preprocess';

export { GpuInfoSchema, GpuInventorySchema, type GpuInfo, type GpuInventory } from '../../schemas/preprocess';

type Node = Record<string, unknown>;

function text(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'object') {
    const inner = (value as Node)['#text'];
    return inner === undefined ? null : text(inner);
  }
  const s = String(value).trim();
  return s === '' || s === 'N/A' ? null : s;
}

/**
 * The first element anywhere under `node` whose name matches, depth first: drivers name the confidential-computing
 * state differently from one release to the next (a `conf_compute` section with a `cc_state`/`cc_mode`, or a
 * top-level mode), so it is looked for by name.
 */
function findByName(node: unknown, pattern: RegExp): string | null {
  if (node === null || typeof node !== 'object') return null;
  for (const [key, value] of Object.entries(node as Node)) {
    if (pattern.test(key)) {
      const found = text(value);
      if (found) return found;
    }
  }
  for (const value of Object.values(node as Node)) {
    if (typeof value === 'object') {
      const found = findByName(value, pattern);
      if (found) return found;
    }
  }
  return null;
}

const CC = /^(cc_mode|cc_state|conf_compute_mode|confidential_compute_mode|cc_status)$/;

/** Parses `nvidia-smi -q -x`: driver and CUDA versions, and per GPU the model, memory and confidential-computing mode. */
export function parseNvidiaSmiXml(xml: string): GpuInventory {
  const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(xml) as Node;
  const log = parsed.nvidia_smi_log as Node | undefined;
  if (!log) throw new Error('not nvidia-smi XML: no <nvidia_smi_log> element');
  const driverVersion = text(log.driver_version);
  if (!driverVersion) throw new Error('nvidia-smi XML without <driver_version>');
  const gpus = ([] as unknown[]).concat(log.gpu ?? []) as Node[];
  const topLevelCc = findByName(Object.fromEntries(Object.entries(log).filter(([k]) => k !== 'gpu')), CC);
  return GpuInventorySchema.parse({
    driverVersion,
    cudaVersion: text(log.cuda_version),
    confidentialCompute: topLevelCc,
    gpus: gpus.map((gpu, index) => ({
      index,
      model: text(gpu.product_name) ?? 'unknown',
      uuid: text(gpu.uuid),
      busId: text(gpu['@id']),
      memoryTotal: text((gpu.fb_memory_usage as Node | undefined)?.total),
      computeCapability: text(gpu.compute_capability) ?? findByName(gpu, /^cuda_compute_capability$/),
      confidentialCompute: findByName(gpu, CC) ?? topLevelCc,
    })),
  });
}

/**
 * This machine's GPUs from `nvidia-smi -q -x`. Throws, saying why, where there is no GPU or no driver: a GPU worker
 * refuses to start then.
 */
export async function gpuInventory(): Promise<GpuInventory> {
  const xml = await new Promise<string>((resolve, reject) => {
    execFile('nvidia-smi', ['-q', '-x'], { timeout: 30_000, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      if (error) {
        const why =
          (error as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'nvidia-smi is not installed'
            : String(stderr || error.message).trim();
        reject(new Error(`no GPU on this machine: ${why}`));
      } else resolve(stdout);
    });
  });
  const inventory = parseNvidiaSmiXml(xml);
  if (inventory.gpus.length === 0) throw new Error('no GPU on this machine: nvidia-smi lists none');
  return inventory;
}

/** The GPUs of a worker about to poll GPU task queue `queue`; refuses, saying why, where there are none. */
export async function gpusToPoll(queue: string): Promise<GpuInventory> {
  try {
    return await gpuInventory();
  } catch (error) {
    throw new Error(`refusing to poll ${queue}: ${(error as Error).message}`);
  }
}

/** What a GPU job's command gets as CUDA_VISIBLE_DEVICES: the worker's own setting, else every GPU it found. */
export function cudaVisibleDevices(gpu: GpuInventory, configured: string | null | undefined): string {
  return configured ?? gpu.gpus.map((g) => g.uuid ?? String(g.index)).join(',');
}
