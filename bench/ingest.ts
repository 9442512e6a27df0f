import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { DuckDBInstance } from '@duckdb/node-api';
import { generateDemoPackage } from '../cli/demo/generate';
import { importConsent } from '../lib/client/consent-import';
import { readLocalPackage, submitPackage } from '../lib/client/submit';
import { connectClient } from '../lib/client/temporal';
import { FileKeyStore, type KeyStore } from '../lib/crypto/keystore';
import { DEMO_PASSPHRASE_FILE, openIdentity, type Identity } from '../lib/pki/identity';
import { Stack, type StackOptions } from '../lib/stack/stack';
import { createS3Client } from '../lib/storage/s3';

/** DuckDB converting a CSV to Parquet on one thread: the reference for ingestion throughput. */
export async function duckdbReference(csv: string, out: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  const started = performance.now();
  await conn.run(`COPY (SELECT * FROM read_csv('${csv}')) TO '${out}' (FORMAT parquet)`);
  const seconds = (performance.now() - started) / 1000;
  conn.closeSync();
  db.closeSync();
  return seconds;
}

/**
 * A workflow bundle whose `workflows/audit.ts` is `bench/audit-off.ts`: the same workflows, recording no audit event.
 * Only the benchmark builds one; a client cannot turn auditing off.
 */
export const auditOff: StackOptions['webpackConfigHook'] = (config) => {
  const webpack = createRequire(require.resolve('@temporalio/worker'))('webpack') as {
    NormalModuleReplacementPlugin: new (pattern: RegExp, replacement: string) => object;
  };
  return {
    ...config,
    plugins: [
      ...(config.plugins ?? []),
      new webpack.NormalModuleReplacementPlugin(
        /[\\/]workflows[\\/]audit\.ts$/,
        path.join(__dirname, 'audit-off.ts'),
      ) as never,
    ],
  };
};

export interface BenchStack {
  stack: Stack;
  client: Client;
  s3: S3Client;
  identity: Identity;
  keys: KeyStore;
  close(): Promise<void>;
}

export async function startBenchStack(dataDir: string, options: Partial<StackOptions> = {}): Promise<BenchStack> {
  const stack = await Stack.start({ dataDir, jurisdictions: ['eu'], ...options });
  const keys = await FileKeyStore.open(path.join(dataDir, 'keys'));
  const client = await connectClient(stack.state.temporal, keys);
  const s3 = createS3Client(stack.state.s3);
  const stewardDir = path.join(dataDir, 'identities', 'steward');
  const identity = openIdentity(stewardDir, await readFile(path.join(stewardDir, DEMO_PASSPHRASE_FILE), 'utf8'));
  return {
    stack,
    client,
    s3,
    identity,
    keys,
    async close() {
      await client.connection.close();
      s3.destroy();
      await stack.stop();
    },
  };
}

/** Ingests a generated package end to end (upload, checksums, consent, HMAC, Parquet, record); returns rows/s and its CSV. */
export async function ingestOnce(
  bench: BenchStack,
  dir: string,
  rows: number,
  seed: number,
): Promise<{ rowsPerSecond: number; seconds: number; labsCsv: string }> {
  const generated = await generateDemoPackage({
    out: dir,
    jurisdiction: 'eu',
    studyId: 'BENCH-1',
    rows,
    subjects: 20_000,
    seed,
  });
  await importConsent(
    { client: bench.client, s3: bench.s3, identity: bench.identity },
    generated.consentFile,
    'eu',
    'BENCH-1',
  );
  const started = performance.now();
  const pkg = await readLocalPackage(generated.packageDir);
  const { handle } = await submitPackage({ client: bench.client, s3: bench.s3, identity: bench.identity }, pkg);
  const result = await handle.result();
  const seconds = (performance.now() - started) / 1000;
  return {
    rowsPerSecond: result.record.rows.in / seconds,
    seconds,
    labsCsv: path.join(generated.packageDir, 'data', 'labs.csv'),
  };
}
