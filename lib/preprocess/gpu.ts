import { XMLParser } from 'fast-xml-parser';
import { z } from 'zod';

/** One GPU as run documentation records it. */
export const GpuInfoSchema = z.object({
  index: z.number().int().nonnegative(),
  model: z.string(),
  uuid: z.string().nullable(),
  busId: z.string().nullable(),
  memoryTotal: z.string().nullable(),
  computeCapability: z.string().nullable(),
  /** Confidential-computing mode as the driver reports it, or null when this driver reports none. */
  confidentialCompute: z.string().nullable(),
});
export type GpuInfo = z.infer<typeof GpuInfoSchema>;

export const GpuInventorySchema = z.object({
  driverVersion: z.string(),
  cudaVersion: z.string().nullable(),
  confidentialCompute: z.string().nullable(),
  gpus: z.array(GpuInfoSchema),
});
export type GpuInventory = z.infer<typeof GpuInventorySchema>;

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
