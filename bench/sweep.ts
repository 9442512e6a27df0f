import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ingestTaskQueue, retentionSweepWorkflowId } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { writeExpiredDemoDatasets } from '../cli/demo/expired';
import { signedInput } from '../lib/client/request';
import { inLanes } from '../lib/runtime/lanes';
import { putBytes } from '../lib/storage/objects';
import { createS3Client } from '../lib/storage/s3';
import type { SweepReport } from '../schemas/retention';
import type { BenchStack } from './ingest';
import { cpuMeter, line } from './report';
import { prepareSweepFloor } from './sweep-floor';

const DATASETS = Number(process.env.BENCH_SWEEP_DATASETS ?? 1000);
const OBJECTS = Number(process.env.BENCH_SWEEP_OBJECTS ?? 10);

/** A signed retention sweep of the EU bucket, run to its report. */
export async function runSweep(bench: BenchStack, requestId: string): Promise<SweepReport> {
  return (await bench.client.workflow.execute('retentionSweepWorkflow', {
    args: [
      signedInput(bench.identity, {
        action: 'retention.sweep',
        jurisdiction: 'eu',
        requestId,
        params: { jurisdiction: 'eu', dryRun: false },
      }),
    ],
    taskQueue: ingestTaskQueue('eu'),
    workflowId: retentionSweepWorkflowId('eu', requestId),
  })) as SweepReport;
}

/**
 * A retention sweep of DATASETS expired datasets of OBJECTS small objects each (under GOVERNANCE retention, as curated
 * objects are), certificates and audit included, from the signed request to the report; against the same number of
 * equal objects in the same bucket deleted by a plain loop of single DeleteObject calls from this process. Beside
 * them the floor: as many datasets again, deleted with the least work any sweep must do (see `sweep-floor.ts`), which
 * bounds what a sweep can reach on this machine.
 */
export async function sweepBench(bench: BenchStack): Promise<void> {
  const eu = getJurisdiction('eu');
  const total = DATASETS * OBJECTS;
  // The EU workers' storage account, as the sweep uses: the buckets' policy grants it the governance bypass, which
  // storage refuses to anyone else (root included).
  const s3 = createS3Client({ ...bench.stack.state.s3, ...bench.stack.state.jurisdictions.eu!.account! });
  process.stderr.write(`writing ${DATASETS} expired datasets of ${OBJECTS} objects…\n`);
  await writeExpiredDemoDatasets(bench.s3, eu, {
    studyId: 'BENCH-SWEEP',
    datasets: DATASETS,
    objectsPerDataset: OBJECTS,
  });

  process.stderr.write(`writing ${total} objects for the reference loop…\n`);
  const until = new Date(Date.now() + 86_400_000);
  const reference: { key: string; versionId: string }[] = [];
  await inLanes(
    Array.from({ length: total }, (_, i) => i),
    8,
    async (i) => {
      const body = randomBytes(256);
      const key = `reference/d-${Math.floor(i / OBJECTS)}/table-${i % OBJECTS}.parquet`;
      const put = await putBytes(s3, eu.buckets.curated, key, body, {
        contentType: 'application/octet-stream',
        lock: { mode: 'GOVERNANCE', until },
      });
      reference.push({ key, versionId: put.versionId! });
    },
  );

  process.stderr.write(`writing ${DATASETS} expired datasets of ${OBJECTS} objects for the floor…\n`);
  const runFloor = await prepareSweepFloor(bench.s3, s3, eu, DATASETS, OBJECTS);

  const processes = {
    bench: process.pid,
    worker: bench.stack.state.workers.find((w) => w.jurisdiction === 'eu')?.pid ?? null,
    storage: bench.stack.state.s3.pid,
    temporal: bench.stack.state.temporal.pid,
  };
  let cpu = cpuMeter(processes);
  let started = performance.now();
  for (const { key, versionId } of reference) {
    await s3.send(
      new DeleteObjectCommand({
        Bucket: eu.buckets.curated,
        Key: key,
        VersionId: versionId,
        BypassGovernanceRetention: true,
      }),
    );
  }
  const loopSeconds = (performance.now() - started) / 1000;
  const loopCpu = cpu();

  cpu = cpuMeter(processes);
  const floor = await runFloor();
  const floorCpu = cpu();

  cpu = cpuMeter(processes);
  started = performance.now();
  const report = await runSweep(bench, `bench-sweep-${Date.now()}`);
  const sweepSeconds = (performance.now() - started) / 1000;
  const sweepCpu = cpu();
  // Each dataset: its objects and its catalog record.
  const versions = DATASETS * (OBJECTS + 1);
  if (
    report.totals.datasetsDeleted !== DATASETS ||
    report.totals.certificates !== DATASETS ||
    report.totals.versionsDeleted !== versions
  ) {
    throw new Error(
      `the sweep deleted ${report.totals.datasetsDeleted} datasets (${report.totals.versionsDeleted} versions) with ${report.totals.certificates} certificates, expected ${DATASETS} (${versions} versions)`,
    );
  }
  if (floor.versions !== versions) {
    throw new Error(`the floor deleted ${floor.versions} versions, expected ${versions}`);
  }
  line(
    'sweep: datasets deleted, certificates issued',
    `${report.totals.datasetsDeleted}, ${report.totals.certificates}`,
  );
  line(
    'sweep: object versions deleted (data and records)',
    `${report.totals.versionsDeleted} in ${sweepSeconds.toFixed(1)} s`,
  );
  line('sweep: curated objects deleted per second', (total / sweepSeconds).toFixed(0));
  line('single DeleteObject loop: objects per second', (total / loopSeconds).toFixed(0));
  line('sweep / single-delete loop (target ≥ 5)', (loopSeconds / sweepSeconds).toFixed(2));
  // The floor: what any sweep must do at the least, bare (see sweep-floor.ts). Even with every core busy all the time it
  // would take its CPU seconds divided by the cores: no sweep on this machine can beat that ratio.
  line(
    'floor: bare listing, deletes, HEADs and signatures',
    `${floor.versions} versions, ${floor.signatures} signatures in ${floor.seconds.toFixed(1)} s`,
  );
  line('floor / single-delete loop', (loopSeconds / floor.seconds).toFixed(2));
  if (floorCpu) {
    const busy = floorCpu.total / os.availableParallelism();
    line(
      'floor with every core busy / loop (bound on any sweep)',
      `${(loopSeconds / busy).toFixed(2)} (${floorCpu.total.toFixed(1)} CPU-s over ${os.availableParallelism()} cores)`,
    );
  }
  line('sweep time / floor time', (sweepSeconds / floor.seconds).toFixed(2));
  // Where the time went: the loop waits on one request at a time; the sweep is bounded by the cores it shares with
  // storage and Temporal, so CPU per object says how much work each does for a deletion.
  if (loopCpu && sweepCpu) {
    line('single DeleteObject loop: CPU seconds', loopCpu.text);
    line('sweep: CPU seconds', sweepCpu.text);
    if (floorCpu) line('floor: CPU seconds', floorCpu.text);
    line(
      'CPU per curated object: sweep vs loop',
      `${((1000 * sweepCpu.total) / total).toFixed(2)} ms vs ${((1000 * loopCpu.total) / total).toFixed(2)} ms`,
    );
  }
  s3.destroy();
}
