import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateDemoPackage } from '../../cli/demo/generate';
import { Stack } from '../../lib/stack/stack';
import { importConsentCsv, ingestDir, tempDir } from '../helpers';
import { connect, type TestClients } from '../harness';

const WORKER_MEMORY_MB = 192;
let stack: Stack;
let clients: TestClients;
let dataDir: string;

beforeAll(async () => {
  dataDir = await tempDir('steward-memory-');
  stack = await Stack.start({
    dataDir,
    jurisdictions: ['us'],
    workerEnv: { STEWARD_WORKER_MEMORY_MB: String(WORKER_MEMORY_MB) },
  });
  clients = await connect(stack.state);
});
afterAll(async () => {
  await clients?.close();
  await stack?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** Current and peak resident memory of a process, from /proc (Linux). */
async function rss(pid: number): Promise<{ now: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

it('ingests a package larger than the worker memory limit, streaming, with bounded peak memory', async () => {
  const out = await tempDir();
  const generated = await generateDemoPackage({
    out,
    jurisdiction: 'us',
    studyId: 'US-BIG',
    rows: 4_000_000,
    subjects: 5000,
    seed: 31,
  });
  const labs = (await stat(path.join(generated.packageDir, 'data', 'labs.csv'))).size;
  expect(labs).toBeGreaterThan(WORKER_MEMORY_MB * 1024 * 1024);
  await importConsentCsv(clients, await readFile(generated.consentFile, 'utf8'), 'us', 'US-BIG');

  const worker = stack.state.workers.find((w) => w.jurisdiction === 'us')!.pid!;
  // Writing 5 to clear_refs resets the peak (VmHWM) to the current resident size.
  await writeFile(`/proc/${worker}/clear_refs`, '5');
  const before = await rss(worker);

  const result = await ingestDir(clients, generated.packageDir);
  expect(result.outcome).toBe('curated');
  expect(result.record.outputs.find((o) => o.table === 'labs')!.rows.in).toBe(4_000_000);
  const growth = (await rss(worker)).peak - before.now;
  const bound = WORKER_MEMORY_MB * 1.5 * 1024 * 1024;
  expect(bound).toBeLessThan(labs);
  expect(growth).toBeLessThan(bound);
});
