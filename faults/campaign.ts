/**
 * The fault campaign (`npm run faults`): a production stack for eu, ingestions running while a seeded schedule of
 * faults hits it (kill -9 of each Temporal service, a worker, a storage site; PostgreSQL restarted; the workers' link
 * to the primary site cut for seconds), then checks from storage alone, at both sites: every acknowledged dataset
 * curated exactly once with exact row counts and its outputs' bytes, nothing recorded that was not acknowledged, and
 * the audit trail verifying. Prints the seed, each fault, and "N runs, 0 lost, 0 duplicated" or the first
 * counterexample with the seed that replays it (exit 1).
 *
 *   npm run faults -- [--seed N] [--runs N] [--packages N] [--rows N]
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { GetObjectCommand, HeadObjectCommand, ListBucketsCommand, type S3Client } from '@aws-sdk/client-s3';
import { Faker, en } from '@faker-js/faker';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { parse } from 'csv-parse';
import { generateDemoPackage } from '../cli/demo/generate';
import { datasetIdFor } from '../contracts';
import { getJurisdiction } from '../jurisdictions';
import { importConsent } from '../lib/client/consent-import';
import { readLocalPackage, submitPackage } from '../lib/client/submit';
import { connectClient } from '../lib/client/temporal';
import { FileKeyStore } from '../lib/crypto/keystore';
import { openDemoIdentity } from '../lib/pki/identity';
import { loadConfig } from '../lib/runtime/config';
import { dropTemporalDatabases, parsePostgresUrl } from '../lib/stack/cluster';
import { canIsolateSites, linkTowards, setLink, type LinkEnd } from '../lib/stack/netns';
import { Stack } from '../lib/stack/stack';
import { ensureTool } from '../lib/stack/tools';
import { datasetRecordKey } from '../lib/storage/layout';
import { REPLICA_OF } from '../lib/storage/replication';
import { createS3Client } from '../lib/storage/s3';
import { listVersions } from '../lib/storage/versions';
import { DatasetRecordSchema, type DatasetRecord } from '../schemas/dataset';
import type { IngestPackageResult } from '../schemas/ingest';

const POSTGRES = process.env.FAULTS_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
const JURISDICTION = 'eu';
/** Faults per run, spread over its first seconds; a supervised process is restarted at most five times a minute. */
const FAULTS_PER_RUN = 3;
const FAULT_WINDOW_MS = 20_000;
/** How long a run's ingestions may take, faults and retries included. */
const RUN_TIMEOUT_MS = 10 * 60_000;

type Fault =
  | { at: number; kind: 'kill'; process: string }
  | { at: number; kind: 'postgres' }
  | { at: number; kind: 'cut'; seconds: number };

function describe(f: Fault): string {
  const at = `+${(f.at / 1000).toFixed(1)}s`;
  if (f.kind === 'kill') return `${at} kill -9 ${f.process}`;
  if (f.kind === 'postgres') return `${at} PostgreSQL restarted (immediate shutdown)`;
  return `${at} the workers' link to the primary site cut for ${f.seconds} s`;
}

/** The local PostgreSQL cluster `pg_ctlcluster` restarts, when the campaign's PostgreSQL is one (`15 main`). */
function localCluster(): string[] | undefined {
  const { hostname } = new URL(POSTGRES);
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') return undefined;
  const listed = spawnSync('pg_lsclusters', ['-h'], { encoding: 'utf8' });
  const first = listed.status === 0 ? listed.stdout.trim().split('\n')[0]?.split(/\s+/) : undefined;
  return first && first.length >= 2 ? [first[0]!, first[1]!] : undefined;
}

/** A run's faults, from its seed: which processes and links, and when. */
function schedule(faker: Faker, processes: string[], postgres: boolean, cuts: boolean): Fault[] {
  const kinds = [...processes.map((p) => `kill:${p}`), ...(postgres ? ['postgres'] : []), ...(cuts ? ['cut'] : [])];
  return Array.from({ length: FAULTS_PER_RUN }, () => {
    const at = faker.number.int({ min: 0, max: FAULT_WINDOW_MS });
    const kind = faker.helpers.arrayElement(kinds);
    if (kind === 'postgres') return { at, kind: 'postgres' } as const;
    if (kind === 'cut') return { at, kind: 'cut', seconds: faker.number.int({ min: 3, max: 8 }) } as const;
    return { at, kind: 'kill', process: kind.slice('kill:'.length) } as const;
  }).sort((a, b) => a.at - b.at);
}

/** The eu workers' link to the primary site, where the workers have a namespace of their own. */
function primaryLink(stack: Stack): LinkEnd | undefined {
  const storage = stack.state.jurisdictions[JURISDICTION]?.storage;
  return storage?.workerNetns ? linkTowards(storage.workerNetns, storage.workerEndpoint) : undefined;
}

async function inject(stack: Stack, fault: Fault, cluster: string[] | undefined): Promise<void> {
  if (fault.kind === 'kill') {
    const pid = stack.processes().find((p) => p.name === fault.process)?.pid;
    if (pid) process.kill(pid, 'SIGKILL');
  } else if (fault.kind === 'postgres') {
    const run = spawnSync('pg_ctlcluster', [...cluster!, 'restart', '-m', 'immediate'], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`pg_ctlcluster restart failed: ${run.stderr}`);
  } else {
    const link = primaryLink(stack)!;
    setLink(link, 'down');
    await sleep(fault.seconds * 1000);
    setLink(link, 'up');
  }
}

/** Rows a package file holds: CSV records after the header, or NDJSON lines. */
async function rowsIn(file: string): Promise<number> {
  if (file.endsWith('.ndjson')) {
    return (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '').length;
  }
  let rows = 0;
  for await (const record of createReadStream(file).pipe(parse({ from_line: 2 }))) if (record) rows += 1;
  return rows;
}

async function expectedRows(packageDir: string): Promise<number> {
  const data = path.join(packageDir, 'data');
  let rows = 0;
  for (const file of await readdir(data)) rows += await rowsIn(path.join(data, file));
  return rows;
}

async function bytesOf(s3: S3Client, bucket: string, key: string, versionId?: string | null): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId ?? undefined }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** One line of the campaign's report, on stdout. */
function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface Submitted {
  datasetId: string;
  packageId: string;
  rows: number;
  workflowId: string;
}

/**
 * What storage alone says about one run's packages, at both sites: the first problem found, or none. An acknowledged
 * package has one record (one version of it), with the package's rows, at each site; each output's version holds the
 * bytes its digest names, at the primary and as a replica at the DR site. A package not acknowledged has no record.
 */
async function check(
  sites: { primary: S3Client; dr: S3Client },
  submitted: Submitted[],
  results: Map<string, IngestPackageResult | Error>,
): Promise<{ lost: string[]; duplicated: string[] }> {
  const { buckets } = getJurisdiction(JURISDICTION);
  const lost: string[] = [];
  const duplicated: string[] = [];
  for (const s of submitted) {
    const result = results.get(s.workflowId);
    const acknowledged = result && !(result instanceof Error) && result.outcome === 'curated';
    const datasetId = s.datasetId;
    const key = datasetRecordKey(datasetId);
    for (const [site, s3] of Object.entries(sites)) {
      const versions = (await listVersions(s3, buckets.catalog, key)).filter((v) => v.key === key);
      const live = versions.filter((v) => !v.deleteMarker);
      if (!acknowledged) {
        if (live.length > 0) duplicated.push(`${site}: ${s.packageId} has a record but was not acknowledged`);
        continue;
      }
      if (live.length === 0) {
        lost.push(`${site}: acknowledged ${s.packageId} (${datasetId}) has no record`);
        continue;
      }
      if (live.length > 1) duplicated.push(`${site}: ${datasetId} was recorded ${live.length} times`);
      const record: DatasetRecord = DatasetRecordSchema.parse(
        JSON.parse((await bytesOf(s3, buckets.catalog, key)).toString('utf8')),
      );
      if (record.rows.in !== s.rows || record.rows.curated + record.rows.excluded !== s.rows) {
        lost.push(
          `${site}: ${datasetId} counts ${record.rows.in} rows in (${record.rows.curated} curated, ${record.rows.excluded} excluded); the package has ${s.rows}`,
        );
      }
      for (const out of record.outputs) {
        const outVersions = (await listVersions(s3, out.bucket, out.key)).filter((v) => v.key === out.key);
        if (outVersions.length !== 1) duplicated.push(`${site}: ${out.key} has ${outVersions.length} versions`);
        const stored = outVersions.find((v) => !v.deleteMarker);
        if (!stored) {
          lost.push(`${site}: ${out.key} of ${datasetId} is gone`);
          continue;
        }
        if (site === 'dr') {
          const head = await s3.send(
            new HeadObjectCommand({ Bucket: out.bucket, Key: out.key, VersionId: stored.versionId ?? undefined }),
          );
          if (head.Metadata?.[REPLICA_OF] !== (out.versionId ?? 'null')) {
            lost.push(`dr: ${out.key} is not the replica of version ${out.versionId}`);
          }
        }
        const digest = sha256(await bytesOf(s3, out.bucket, out.key, stored.versionId));
        if (digest !== out.sha256) lost.push(`${site}: ${out.key} reads SHA-256 ${digest}, recorded ${out.sha256}`);
      }
    }
  }
  return { lost, duplicated };
}

/**
 * Each workflow's outcome: its result, or the failure it ended with. A connection lost to a killed frontend is not
 * an outcome: the wait goes on, up to the run's timeout.
 */
async function waitAll(client: Client, workflowIds: string[]): Promise<Map<string, IngestPackageResult | Error>> {
  const results = new Map<string, IngestPackageResult | Error>();
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  await Promise.all(
    workflowIds.map(async (id) => {
      for (;;) {
        try {
          results.set(id, (await client.workflow.getHandle(id).result()) as IngestPackageResult);
          return;
        } catch (error) {
          if (error instanceof WorkflowFailedError) {
            results.set(id, error);
            return;
          }
          if (Date.now() > deadline) {
            results.set(id, new Error(`${id} did not finish within ${RUN_TIMEOUT_MS / 60_000} minutes`));
            return;
          }
          await sleep(1000);
        }
      }
    }),
  );
  return results;
}

/** Waits until both sites answer (a site the supervisor is restarting refuses connections for a moment). */
async function answering(sites: { primary: S3Client; dr: S3Client }): Promise<void> {
  for (const [site, s3] of Object.entries(sites)) {
    for (let deadline = Date.now() + 60_000; ; await sleep(500)) {
      const error = await s3.send(new ListBucketsCommand({})).then(
        () => undefined,
        (e: Error) => e,
      );
      if (!error) break;
      if (Date.now() > deadline) throw new Error(`the ${site} site does not answer after the faults: ${error.message}`);
    }
  }
}

/** The audit trail verifies: `steward audit verify`, as an auditor runs it. */
function auditVerifies(dataDir: string): { ok: boolean; output: string } {
  const run = spawnSync(
    process.execPath,
    [
      path.join(__dirname, '..', 'bin', 'steward'),
      '--data-dir',
      dataDir,
      '--identity',
      path.join(dataDir, 'identities', 'auditor'),
      'audit',
      'verify',
      '--jurisdiction',
      JURISDICTION,
    ],
    { encoding: 'utf8', env: { ...process.env, STEWARD_FROM_SOURCE: '1' }, timeout: 300_000 },
  );
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}`.trim() };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      runs: { type: 'string', default: '3' },
      packages: { type: 'string', default: '3' },
      rows: { type: 'string', default: '3000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    say('npm run faults -- [--seed N] [--runs N (3)] [--packages N per run (3)] [--rows N per package (3000)]');
    return;
  }
  const seed = values.seed !== undefined ? Number(values.seed) : randomInt(1, 2 ** 31);
  const [runs, packages, rows] = [Number(values.runs), Number(values.packages), Number(values.rows)];
  for (const [name, n] of Object.entries({ seed, runs, packages, rows })) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, not ${n}`);
  }
  say(`fault campaign: seed ${seed}, ${runs} runs of ${packages} packages × ${rows} rows`);
  const cluster = localCluster();
  const cuts = canIsolateSites();
  if (!cluster) say('  (PostgreSQL is not a local cluster here: it is not restarted)');
  if (!cuts) say('  (not root with iproute2: no network namespaces, no link cuts)');

  const work = await mkdtemp(path.join(os.tmpdir(), 'steward-faults-'));
  const prefix = `stw_faults_${randomBytes(4).toString('hex')}`;
  const dataDir = path.join(work, 'stack');
  const crashes: string[] = [];
  const stack = await Stack.start({
    dataDir,
    jurisdictions: [JURISDICTION],
    production: { postgres: POSTGRES, databasePrefix: prefix },
    onEvent: (e) => {
      if (e.kind === 'crash' && !e.restarting) crashes.push(`${e.process} exited and was not restarted`);
    },
  });
  const keys = await FileKeyStore.open(path.join(dataDir, 'keys'));
  const client = await connectClient(stack.state.temporal, keys);
  const config = loadConfig({ dataDir });
  const sites = {
    primary: createS3Client(config.s3For(JURISDICTION)),
    dr: createS3Client(config.drFor(JURISDICTION)!),
  };
  const identity = openDemoIdentity(path.join(dataDir, 'identities', 'steward'));
  const ctx = { client, s3: sites.primary, identity };
  let counterexample: string | undefined;
  let acknowledged = 0;
  try {
    const targets = stack
      .processes()
      .map((p) => p.name)
      .filter((n) => /^(temporal-(frontend|history|matching|worker)|worker-|site-)/.test(n));
    for (let run = 1; run <= runs && !counterexample; run++) {
      const faker = new Faker({ locale: [en] });
      faker.seed(seed * 1000 + run);
      const faults = schedule(faker, targets, cluster !== undefined, cuts);
      const submitted: Submitted[] = [];
      for (let p = 0; p < packages; p++) {
        // A study per package: each has its own consent registry.
        const studyId = `FAULTS-${seed}-${run}-${p}`;
        const generated = await generateDemoPackage({
          out: path.join(work, `run-${run}-${p}`),
          jurisdiction: JURISDICTION,
          studyId,
          rows,
          subjects: 40,
          seed: seed + run * 100 + p,
        });
        await importConsent(ctx, generated.consentFile, JURISDICTION, studyId);
        const pkg = await readLocalPackage(generated.packageDir);
        const { handle } = await submitPackage(ctx, pkg);
        submitted.push({
          datasetId: datasetIdFor(JURISDICTION, pkg.packageId),
          packageId: pkg.packageId,
          rows: await expectedRows(generated.packageDir),
          workflowId: handle.workflowId,
        });
      }
      say(`run ${run}: ${packages} packages submitted; faults:`);
      const started = Date.now();
      const injected = faults.map(async (f) => {
        await sleep(Math.max(0, f.at - (Date.now() - started)));
        say(`  ${describe(f)}`);
        await inject(stack, f, cluster);
      });
      await Promise.all(injected);
      const results = await waitAll(
        client,
        submitted.map((s) => s.workflowId),
      );
      const ok = [...results.values()].filter((r) => !(r instanceof Error) && r.outcome === 'curated').length;
      acknowledged += ok;
      const failed = [...results.entries()].filter(([, r]) => r instanceof Error);
      for (const [id, r] of failed) say(`  ${id}: not acknowledged (${(r as Error).message})`);
      // A site killed last may still be starting again: the checks read storage once both sites answer.
      await answering(sites);
      const { lost, duplicated } = await check(sites, submitted, results);
      const audit = auditVerifies(dataDir);
      say(
        `run ${run}: ${ok} of ${packages} acknowledged; ${lost.length} lost, ${duplicated.length} duplicated; ` +
          `audit ${audit.ok ? 'verifies' : 'DOES NOT VERIFY'}`,
      );
      const problem =
        lost[0] ?? duplicated[0] ?? (audit.ok ? undefined : `audit verify: ${audit.output}`) ?? crashes[0];
      if (problem) counterexample = `run ${run}: ${problem}`;
    }
  } finally {
    await client.connection.close();
    sites.primary.destroy();
    sites.dr.destroy();
    await stack.stop();
    dropTemporalDatabases(await ensureTool('temporal-sql-tool'), parsePostgresUrl(POSTGRES), prefix);
    await rm(work, { recursive: true, force: true });
  }
  if (counterexample) {
    say(`COUNTEREXAMPLE (replay with --seed ${seed}): ${counterexample}`);
    process.exitCode = 1;
  } else {
    say(`${runs} runs, 0 lost, 0 duplicated (${acknowledged} datasets acknowledged; seed ${seed})`);
  }
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
