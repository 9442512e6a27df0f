import { randomBytes } from 'node:crypto';
import path from 'node:path';
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

/** A sweep of DATASETS expired datasets of OBJECTS objects each, from the signed request to the report; seconds. */
async function timedSweep(bench: BenchStack, name: string): Promise<number> {
  await writeExpiredDemoDatasets(bench.s3, getJurisdiction('eu'), {
    studyId: `BENCH-SWEEP-${name.toUpperCase()}`,
    datasets: DATASETS,
    objectsPerDataset: OBJECTS,
  });
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
  } finally {
    for (const [, bench] of stacks) await bench.close();
    const sqlTool = await ensureTool('temporal-sql-tool');
    for (const p of [prefix, prefix2]) dropTemporalDatabases(sqlTool, parsePostgresUrl(POSTGRES), p);
  }
}
