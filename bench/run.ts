/**
 * `npm run bench`: Steward's throughput against references measured in the same run on the same machine.
 *
 * - Ingestion: a generated 1M-row package, end to end on the real stack (upload, checksums, parse, consent, HMAC,
 *   Parquet, upload), against DuckDB converting the same CSV to Parquet with one thread. Target ratio ≥ 0.33.
 * - Checksum verification: SHA-256 MB/s of Steward's streaming hash against `openssl dgst -sha256`. Target ≥ 0.8.
 * - Pseudonymization: tokens/s for 1M distinct identifiers (one thread, then all cores) against the native HMAC ceiling
 *   of `openssl speed -hmac sha256`, and rows/s for 10M rows drawn from 50k subjects (memoized). Targets ≥ 0.12 of the
 *   ceiling per core and ≥ 2M rows/s.
 *
 * BENCH_ONLY=pseudonymize or BENCH_ONLY=ingest runs one part; BENCH_ROWS and BENCH_RUNS size the ingestion part.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { generateDemoPackage } from '../cli/demo/generate';
import { importConsent } from '../lib/client/consent-import';
import { FileKeyStore } from '../lib/crypto/keystore';
import { hashFile } from '../lib/storage/objects';
import { tokenize, Tokenizer } from '../lib/crypto/pseudonymize';
import { PARALLEL_THRESHOLD, TokenPool } from '../lib/crypto/token-pool';
import { createS3Client } from '../lib/storage/s3';
import { Stack } from '../lib/stack/stack';
import { readLocalPackage, submitPackage } from '../lib/client/submit';
import { connectClient } from '../lib/client/temporal';
import { DEMO_PASSPHRASE_FILE, openIdentity } from '../lib/pki/identity';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

function line(name: string, value: string): void {
  process.stdout.write(`${name.padEnd(44)} ${value}\n`);
}

async function duckdbReference(csv: string, out: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  const started = performance.now();
  await conn.run(`COPY (SELECT * FROM read_csv('${csv}')) TO '${out}' (FORMAT parquet)`);
  const seconds = (performance.now() - started) / 1000;
  conn.closeSync();
  db.closeSync();
  return seconds;
}

/** Native HMAC-SHA256 ceiling for 16-byte inputs on one core: `openssl speed -hmac sha256`. */
function opensslHmacPerSecond(): number {
  const out = execFileSync('openssl', ['speed', '-hmac', 'sha256', '-bytes', '16', '-seconds', '2'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const kilobytes = Number(/hmac\(sha256\)\s+([\d.]+)k/.exec(out)?.[1]);
  return (kilobytes * 1000) / 16;
}

async function pseudonymizationBench(): Promise<void> {
  const key = randomBytes(32);
  const native = opensslHmacPerSecond();
  const distinct = Array.from({ length: 1_000_000 }, (_, i) => `EU-STUDY-${String(i).padStart(8, '0')}`);
  let t = performance.now();
  for (const id of distinct) tokenize(key, 1, id);
  const single = distinct.length / ((performance.now() - t) / 1000);
  const pool = new TokenPool();
  await pool.tokenize(key, 1, distinct.slice(0, PARALLEL_THRESHOLD * 2));
  t = performance.now();
  await pool.tokenize(key, 1, distinct);
  const parallel = distinct.length / ((performance.now() - t) / 1000);
  await pool.close();
  const subjects = distinct.slice(0, 50_000);
  const tokenizer = new Tokenizer(key, 1);
  let state = 7;
  t = performance.now();
  for (let i = 0; i < 10_000_000; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    tokenizer.token(subjects[state % subjects.length]!);
  }
  const repeated = 10_000_000 / ((performance.now() - t) / 1000);
  line('openssl speed -hmac sha256 (16 B) tokens/s/core', native.toFixed(0));
  line(
    'distinct identifiers, one thread tokens/s',
    `${single.toFixed(0)} (ratio ${(single / native).toFixed(2)}, target ≥ 0.12)`,
  );
  const cores = os.availableParallelism();
  line(
    `distinct identifiers, ${cores} threads tokens/s`,
    `${parallel.toFixed(0)} (${(parallel / single).toFixed(2)}× one thread; per core ${(parallel / cores / native).toFixed(2)} of the ceiling)`,
  );
  line('10M rows from 50k subjects rows/s', `${repeated.toFixed(0)} (target ≥ 2000000)`);
}

async function main(): Promise<void> {
  if (process.env.BENCH_ONLY !== 'ingest') await pseudonymizationBench();
  if (process.env.BENCH_ONLY === 'pseudonymize') return;
  const work = await mkdtemp(path.join(os.tmpdir(), 'steward-bench-'));
  const dataDir = path.join(work, 'stack');
  line('rows per package', String(ROWS));
  const stack = await Stack.start({ dataDir, jurisdictions: ['eu'] });
  const keys = await FileKeyStore.open(path.join(dataDir, 'keys'));
  const client = await connectClient({ address: stack.state.temporal.address, namespace: 'default' }, keys);
  const s3 = createS3Client(stack.state.s3);
  const stewardDir = path.join(dataDir, 'identities', 'steward');
  const identity = openIdentity(stewardDir, await readFile(path.join(stewardDir, DEMO_PASSPHRASE_FILE), 'utf8'));
  try {
    // Each ingestion is paired with the reference converting the same CSV right after it, so both sides of a ratio see
    // the machine in the same state; the median pair is reported.
    const pairs: { ours: number; theirs: number; labsCsv: string }[] = [];
    for (let run = 0; run < RUNS; run++) {
      const generated = await generateDemoPackage({
        out: path.join(work, `pkg-${run}`),
        jurisdiction: 'eu',
        studyId: 'BENCH-1',
        rows: ROWS,
        subjects: 20_000,
        seed: 100 + run,
      });
      await importConsent({ client, s3, identity }, generated.consentFile, 'eu', 'BENCH-1');
      const started = performance.now();
      const pkg = await readLocalPackage(generated.packageDir);
      const { handle } = await submitPackage({ client, s3, identity }, pkg);
      const result = await handle.result();
      const seconds = (performance.now() - started) / 1000;
      const labsCsv = path.join(generated.packageDir, 'data', 'labs.csv');
      const reference = await duckdbReference(labsCsv, path.join(work, `ref-${run}.parquet`));
      const pair = { ours: result.record.rows.in / seconds, theirs: ROWS / reference, labsCsv };
      pairs.push(pair);
      line(
        `run ${run + 1}: steward ${seconds.toFixed(2)} s, duckdb ${reference.toFixed(2)} s`,
        `ratio ${(pair.ours / pair.theirs).toFixed(2)}`,
      );
    }
    pairs.sort((a, b) => a.ours / a.theirs - b.ours / b.theirs);
    const median = pairs[Math.floor(pairs.length / 2)]!;
    line('steward ingest (end to end) rows/s', median.ours.toFixed(0));
    line('duckdb read_csv → COPY parquet (1 thread) rows/s', median.theirs.toFixed(0));
    line('ratio, median run (target ≥ 0.33)', (median.ours / median.theirs).toFixed(2));

    const bytes = (await stat(median.labsCsv)).size;
    let node = Infinity;
    let openssl = Infinity;
    for (let run = 0; run < 3; run++) {
      let t = performance.now();
      await hashFile(median.labsCsv);
      node = Math.min(node, (performance.now() - t) / 1000);
      t = performance.now();
      execFileSync('openssl', ['dgst', '-sha256', median.labsCsv]);
      openssl = Math.min(openssl, (performance.now() - t) / 1000);
    }
    const mb = bytes / 2 ** 20;
    line('steward SHA-256 verification MB/s', (mb / node).toFixed(0));
    line('openssl dgst -sha256 MB/s', (mb / openssl).toFixed(0));
    line('ratio (target ≥ 0.8)', (openssl / node).toFixed(2));
  } finally {
    await client.connection.close();
    s3.destroy();
    await stack.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
