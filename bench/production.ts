import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { replicationStatusQuery, replicationWorkflowId } from '../contracts';
import { loadConfig } from '../lib/runtime/config';
import { inLanes } from '../lib/runtime/lanes';
import { createS3Client } from '../lib/storage/s3';
import { putBytes } from '../lib/storage/objects';
import { deleteVersions, listVersions } from '../lib/storage/versions';
import { getJurisdiction } from '../jurisdictions';
import { writeExpiredDemoDatasets } from '../cli/demo/expired';
import { dropTemporalDatabases, parsePostgresUrl } from '../lib/stack/cluster';
import { ensureTool } from '../lib/stack/tools';
import { ingestOnce, startBenchStack, type BenchStack } from './ingest';
import { line, median } from './report';
import { runSweep } from './sweep';

const POSTGRES = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
const ROWS = Number(process.env.BENCH_PRODUCTION_ROWS ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DATASETS = Number(process.env.BENCH_PRODUCTION_SWEEP_DATASETS ?? 200);
const OBJECTS = Number(process.env.BENCH_PRODUCTION_SWEEP_OBJECTS ?? 5);
const REPLICATED_OBJECTS = Number(process.env.BENCH_REPLICATION_OBJECTS ?? 1000);
const REPLICATED_BYTES = Number(process.env.BENCH_REPLICATION_BYTES ?? 128 * 1024);
/** Where the plain copy puts its objects at the DR site. */
const PLAIN_PREFIX = 'plain-';

/** A sweep of DATASETS expired datasets of OBJECTS objects each, from the signed request to the report; seconds. */
async function timedSweep(bench: BenchStack, name: string): Promise<number> {
  await writeExpiredDemoDatasets(bench.s3, getJurisdiction('eu'), {
    studyId: `BENCH-SWEEP-${name.toUpperCase()}`,
    datasets: DATASETS,
    objectsPerDataset: OBJECTS,
  });
  // Expired data was replicated long before it expired: the sweep starts once the DR site holds every version, and
  // deletes at both sites.
  if (bench.stack.state.profile === 'production') {
    const written = new Date().toISOString();
    const handle = bench.client.workflow.getHandle(replicationWorkflowId('eu'));
    for (const deadline = Date.now() + 600_000; ; await sleep(500)) {
      if (Date.now() > deadline) throw new Error(`${name}: the expired datasets were not replicated in 10 minutes`);
      if (((await handle.query(replicationStatusQuery)).replicatedThrough ?? '') > written) break;
    }
  }
  const started = performance.now();
  const report = await runSweep(bench, `bench-sweep-${name}-${Date.now()}`);
  const seconds = (performance.now() - started) / 1000;
  if (report.totals.datasetsDeleted !== DATASETS || report.totals.certificates !== DATASETS) {
    throw new Error(
      `${name}: the sweep deleted ${report.totals.datasetsDeleted} datasets with ${report.totals.certificates} certificates, expected ${DATASETS}`,
    );
  }
  return seconds;
}

/**
 * Replication to the DR site against a plain copy of the same objects between the two sites (GET, then PUT, eight at
 * a time, from the host), in seconds each. The replication's time is the sum of the passes that copied the objects,
 * from each pass's start (listing every bucket at both sites, reading the manifests) to its end: the idle wait between
 * passes is not counted.
 */
async function timedReplication(bench: BenchStack): Promise<{ replication: number; plain: number; bytes: number }> {
  const config = loadConfig({ dataDir: bench.stack.state.dataDir });
  const primary = createS3Client(config.s3For('eu'));
  const dr = createS3Client(config.drFor('eu')!);
  const bucket = getJurisdiction('eu').buckets.exports;
  const keys = Array.from({ length: REPLICATED_OBJECTS }, (_, i) => `bench-replication/${String(i).padStart(5, '0')}`);
  const body = randomBytes(REPLICATED_BYTES);
  try {
    const handle = bench.client.workflow.getHandle(replicationWorkflowId('eu'));
    const before = await handle.query(replicationStatusQuery);
    await inLanes(keys, 8, async (key) => {
      await putBytes(primary, bucket, key, body, { contentType: 'application/octet-stream' });
    });
    const passes = new Map<string, number>();
    for (const deadline = Date.now() + 600_000; ; await sleep(100)) {
      if (Date.now() > deadline) throw new Error('replication did not copy the bench objects within 10 minutes');
      const status = await handle.query(replicationStatusQuery);
      const last = status.last;
      if (last && last.startedAt > (before.last?.startedAt ?? '')) {
        const copied = last.buckets.find((b) => b.bucket === bucket)?.copied ?? 0;
        if (copied > 0) passes.set(last.startedAt, (Date.parse(last.completedAt) - Date.parse(last.startedAt)) / 1000);
      }
      if (status.totals.copied - before.totals.copied >= keys.length && last?.buckets.every((b) => b.pending === 0)) {
        break;
      }
    }
    const replication = [...passes.values()].reduce((a, b) => a + b, 0);
    const started = performance.now();
    await inLanes(keys, 8, async (key) => {
      const got = await primary.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      await putBytes(dr, bucket, PLAIN_PREFIX + key, bytes, { contentType: 'application/octet-stream' });
    });
    const plain = (performance.now() - started) / 1000;
    return { replication, plain, bytes: keys.length * body.length };
  } finally {
    for (const [client, prefix] of [
      [primary, 'bench-replication/'],
      [dr, `${PLAIN_PREFIX}bench-replication/`],
    ] as const) {
      await deleteVersions(client, bucket, await listVersions(client, bucket, prefix));
    }
    primary.destroy();
    dr.destroy();
  }
}

/**
 * The production profile beside the embedded one, in the same run: ingestion of the same generated package
 * (alternating, medians) and a sweep, on the embedded stack, on the production profile with one worker, and with two
 * workers on the same task queues. Target: production ≥ 0.8× embedded.
 */
export async function productionBench(work: string): Promise<void> {
  const prefix = `stw_bench_${randomBytes(4).toString('hex')}`;
  const prefix2 = `${prefix}_2w`;
  const stacks: [string, BenchStack][] = [];
  try {
    stacks.push(['embedded', await startBenchStack(path.join(work, 'stack-embedded'))]);
    stacks.push([
      'production',
      await startBenchStack(path.join(work, 'stack-production'), {
        production: { postgres: POSTGRES, databasePrefix: prefix },
      }),
    ]);
    stacks.push([
      'production, 2 workers',
      await startBenchStack(path.join(work, 'stack-production-2'), {
        production: { postgres: POSTGRES, databasePrefix: prefix2 },
        workersPerJurisdiction: 2,
      }),
    ]);
    const seconds = new Map<string, number[]>(stacks.map(([name]) => [name, []]));
    for (let run = 0; run < RUNS; run++) {
      for (const [name, bench] of stacks) {
        const ours = await ingestOnce(
          bench,
          path.join(work, `pkg-${name}-${run}`.replaceAll(/[ ,]+/g, '-')),
          ROWS,
          300 + run,
        );
        seconds.get(name)!.push(ours.seconds);
        line(`run ${run + 1}, ${name}: ingestion of ${ROWS} rows`, `${ours.seconds.toFixed(2)} s`);
      }
    }
    const ingest = new Map([...seconds].map(([name, s]) => [name, median(s)]));
    const sweep = new Map<string, number>();
    for (const [name, bench] of stacks) {
      sweep.set(name, await timedSweep(bench, name.replaceAll(/[ ,]+/g, '-')));
      line(
        `${name}: sweep of ${DATASETS} datasets × ${OBJECTS} objects, certified`,
        `${sweep.get(name)!.toFixed(2)} s`,
      );
    }
    /** Throughput of `of` relative to `against`: the inverse ratio of their times. */
    const ratio = (times: Map<string, number>, of: string, against: string) =>
      (times.get(against)! / times.get(of)!).toFixed(2);
    line('ingestion: production / embedded throughput, median (target ≥ 0.8)', ratio(ingest, 'production', 'embedded'));
    line('sweep: production / embedded throughput (target ≥ 0.8)', ratio(sweep, 'production', 'embedded'));
    line(
      'ingestion: 2 workers / 1 worker throughput, production',
      ratio(ingest, 'production, 2 workers', 'production'),
    );
    line('sweep: 2 workers / 1 worker throughput, production', ratio(sweep, 'production, 2 workers', 'production'));
    const replicated = await timedReplication(stacks.find(([name]) => name === 'production')![1]);
    const mib = (replicated.bytes / 1024 / 1024).toFixed(0);
    line(
      `replication of ${REPLICATED_OBJECTS} objects (${mib} MiB) to the DR site, passes`,
      `${replicated.replication.toFixed(2)} s`,
    );
    line(`plain copy of the same objects between the two sites`, `${replicated.plain.toFixed(2)} s`);
    line('replication / plain copy throughput (target ≥ 0.7)', (replicated.plain / replicated.replication).toFixed(2));
  } finally {
    for (const [, bench] of stacks) await bench.close();
    const sqlTool = await ensureTool('temporal-sql-tool');
    for (const p of [prefix, prefix2]) dropTemporalDatabases(sqlTool, parsePostgresUrl(POSTGRES), p);
  }
}
