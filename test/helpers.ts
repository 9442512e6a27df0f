import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { INSTALL_ROOT } from '../lib/runtime/install';
import { GetObjectCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { type Client, WorkflowFailedError } from '@temporalio/client';
import type { TestClients } from './harness';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import { ingestProgressQuery } from '../contracts';
import { generateDemoPackage } from '../cli/demo/generate';
import type { SignedWorkflowInput } from '../schemas/request';
import { StackStateSchema } from '../schemas/config';
import type { Action } from '../lib/auth/roles';
import { signedInput } from '../lib/client/request';
import { DEMO_PASSPHRASE_FILE, openIdentity, type Identity } from '../lib/pki/identity';
import type { PackageMetadata } from '../schemas/package';
import type { IngestPackageResult, PackageProblem } from '../schemas/ingest';
import { importConsent } from '../lib/client/consent-import';
import { listObjects, readObjectText } from '../lib/storage/objects';
import { readLocalPackage, submitPackage } from '../lib/client/submit';

export type DemoRole = 'steward' | 'dpo' | 'ops' | 'auditor' | 'qa';

/** A demo identity of the suite's stack (issued by `steward up`, passphrase beside the key). */
export function identity(role: DemoRole | `worker-${string}`, state = stackState()): Identity {
  const dir = path.join(state.dataDir, 'identities', role);
  return openIdentity(dir, readFileSync(path.join(dir, DEMO_PASSPHRASE_FILE), 'utf8'));
}

/** A workflow input signed by a demo identity of the suite's stack. */
export function signedBy(
  role: DemoRole,
  request: { action: Action; jurisdiction: string; params: unknown; requestId?: string; meaning?: string },
  state = stackState(),
): SignedWorkflowInput {
  return signedInput(identity(role, state), request);
}

export function stackState() {
  return inject('stack');
}

export const BIN = path.join(__dirname, '..', 'bin', 'steward');

/** Runs the `steward` command from source against a data dir: its exit code and output. */
export function runSteward(
  dataDir: string,
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
) {
  const result = spawnSync(process.execPath, [BIN, '--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    env: { ...process.env, STEWARD_FROM_SOURCE: '1', ...options.env },
    timeout: options.timeoutMs ?? 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The `steward` command against the suite's stack. */
export function stackSteward(...args: string[]) {
  return runSteward(stackState().dataDir, args);
}

/** What a clean stack is judged: QUALIFIED from a clean checkout, PROVISIONAL from a tree with uncommitted changes. */
export function cleanVerdict(): string {
  const status = spawnSync('git', ['-C', INSTALL_ROOT, 'status', '--porcelain'], { encoding: 'utf8' });
  if (status.status !== 0) return 'QUALIFIED';
  return status.stdout.trim() === '' ? 'QUALIFIED' : 'PROVISIONAL';
}

/** Records and approves the next configuration baseline of a jurisdiction as the demo QA; fails the test if refused. */
export function recordBaseline(jurisdiction: string, reason: string) {
  const qa = path.join(stackState().dataDir, 'identities', 'qa');
  const run = stackSteward('--identity', qa, 'baseline', 'record', '--jurisdiction', jurisdiction, '--reason', reason);
  if (run.code !== 0) throw new Error(`steward baseline record failed (${run.code}): ${run.stderr}`);
  return run;
}

/** The pid of the stack's worker process of `jurisdiction` now (the stack restarts a killed worker under a new pid). */
export async function workerPid(jurisdiction: string): Promise<number | null> {
  const state = StackStateSchema.parse(
    JSON.parse(await readFile(path.join(stackState().dataDir, 'stack.json'), 'utf8')),
  );
  return state.workers.find((w) => w.jurisdiction === jurisdiction)?.pid ?? null;
}

export type { TestClients } from './harness';

export async function tempDir(prefix = 'steward-pkg-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes a BagIt bag from file contents; `tweak` may alter the manifest or bag-info before they are written. */
export async function writeBag(
  dir: string,
  metadata: PackageMetadata,
  files: Record<string, string | Buffer>,
  tweak: { manifestLines?: (lines: string[]) => string[]; oxum?: string } = {},
): Promise<string> {
  await mkdir(path.join(dir, 'data'), { recursive: true });
  let octets = 0;
  const lines: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
    octets += Buffer.byteLength(content);
    lines.push(`${sha256(content)}  ${rel}`);
  }
  const manifest = (tweak.manifestLines ?? ((l) => l))(lines);
  await writeFile(path.join(dir, 'manifest-sha256.txt'), `${manifest.join('\n')}\n`);
  await writeFile(path.join(dir, 'bagit.txt'), 'BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n');
  await writeFile(
    path.join(dir, 'bag-info.txt'),
    `Payload-Oxum: ${tweak.oxum ?? `${octets}.${Object.keys(files).length}`}\n`,
  );
  await writeFile(path.join(dir, 'steward.json'), JSON.stringify(metadata, null, 2));
  return dir;
}

/** Writes a plain-directory package with a JSON manifest. */
export async function writeJsonPackage(
  dir: string,
  metadata: PackageMetadata,
  files: Record<string, string>,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const entries = [];
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
    entries.push({ path: rel, sha256: sha256(content), bytes: Buffer.byteLength(content) });
  }
  await writeFile(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ format: 'steward-package/1', ...metadata, files: entries }, null, 2),
  );
  return dir;
}

/** A small study table: subject, a name (direct identifier), a visit date, a value, a free-text note. */
export function smallMetadata(
  overrides: Partial<PackageMetadata> = {},
  format: 'csv' | 'ndjson' = 'csv',
): PackageMetadata {
  return {
    studyId: 'ST-SMALL',
    protocolId: 'P-1',
    jurisdiction: 'eu',
    dataClass: 'clinical-trial',
    purpose: 'primary-research',
    sourceSystem: 'test-edc',
    tables: [
      {
        path: format === 'csv' ? 'data/visits.csv' : 'data/visits.ndjson',
        name: 'visits',
        format,
        columns: [
          { name: 'subject_id', type: 'string', role: 'subject-id', required: true },
          { name: 'full_name', type: 'string', role: 'direct-identifier', required: false },
          { name: 'visit_date', type: 'date', role: 'date', required: true },
          { name: 'score', type: 'integer', role: 'value', required: false },
          { name: 'note', type: 'string', role: 'free-text', required: false },
        ],
      },
    ],
    ...overrides,
  };
}

export async function ingestDir(
  clients: TestClients,
  dir: string,
): Promise<IngestPackageResult & { started: boolean; workflowId: string }> {
  const pkg = await readLocalPackage(dir);
  const { handle, started } = await submitPackage(
    { client: clients.client, s3: clients.s3, identity: identity('steward', clients.state) },
    pkg,
  );
  return { ...(await handle.result()), started, workflowId: handle.workflowId };
}

const consented = new Set<string>();

/**
 * Ingests a one-table package of the study (two consenting subjects) through the real pipeline; returns its catalog
 * record. The study's consent is imported the first time.
 */
export async function ingestSmallPackage(
  clients: TestClients,
  jurisdiction: string,
  studyId: string,
  dataClass: string,
  seed: number,
  extra: { reidentificationVault?: boolean } = {},
) {
  if (!consented.has(`${jurisdiction}/${studyId}`)) {
    await importConsentCsv(
      clients,
      `subject_id,scopes,status,icf_version,given_on\nR-1,primary-research,given,v1,2024-01-01\nR-2,primary-research,given,v1,2024-01-01\n`,
      jurisdiction,
      studyId,
    );
    consented.add(`${jurisdiction}/${studyId}`);
  }
  const dir = await writeJsonPackage(await tempDir(), smallMetadata({ studyId, jurisdiction, dataClass, ...extra }), {
    'data/visits.csv': `subject_id,full_name,visit_date,score,note\nR-1,Ann Example,2025-01-02,${seed},\nR-2,Bo Example,2025-01-03,${seed + 1},\n`,
  });
  return (await ingestDir(clients, dir)).record;
}

export async function importConsentCsv(clients: TestClients, csv: string, jurisdiction: string, study: string) {
  const dir = await tempDir('steward-consent-');
  const file = path.join(dir, 'consent.csv');
  await writeFile(file, csv);
  return importConsent(
    { client: clients.client, s3: clients.s3, identity: identity('steward', clients.state) },
    file,
    jurisdiction,
    study,
  );
}

/** Runs an ingestion expected to be rejected; returns the failure chain's parts for assertions. */
export async function ingestRejected(clients: TestClients, dir: string) {
  const pkg = await readLocalPackage(dir);
  const { handle } = await submitPackage(
    { client: clients.client, s3: clients.s3, identity: identity('steward', clients.state) },
    pkg,
  );
  const error = await handle.result().then(
    () => {
      throw new Error('expected the package to be rejected');
    },
    (e: unknown) => e,
  );
  if (!(error instanceof WorkflowFailedError)) throw error;
  const activity = error.cause;
  if (!(activity instanceof ActivityFailure)) throw new Error(`expected ActivityFailure, got ${activity?.name}`);
  const app = activity.cause;
  if (!(app instanceof ApplicationFailure)) throw new Error(`expected ApplicationFailure, got ${app?.name}`);
  const problems = (app.details?.[0] as { problems: PackageProblem[] }).problems;
  return { error, activity, app, problems, packageId: pkg.packageId, workflowId: handle.workflowId };
}

/** The workflow's history as the server stores it, in protobuf bytes: what an operator or attacker could read. */
export async function rawHistory(client: Client, workflowId: string): Promise<Buffer> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return Buffer.from(temporal.api.history.v1.History.encode(history).finish());
}

export async function allObjectBytes(s3: S3Client, bucket: string, prefix: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const o of await listObjects(s3, bucket, prefix)) out.push(await readObjectText(s3, bucket, o.key));
  return out;
}

export async function objectVersions(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  const res = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
  return (res.Versions?.length ?? 0) + (res.DeleteMarkers?.length ?? 0);
}

/** Reads a Parquet object with DuckDB, an engine independent of the writer's code path. */
export async function readParquet(s3: S3Client, bucket: string, key: string) {
  const dir = await tempDir('steward-parquet-');
  const file = path.join(dir, 'data.parquet');
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await writeFile(file, Buffer.from(await res.Body!.transformToByteArray()));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const rows = (await conn.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)).getRowObjectsJS();
  const types = Object.fromEntries(
    (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`))
      .getRowObjectsJS()
      .map((r) => [String(r.column_name), String(r.column_type)]),
  );
  conn.closeSync();
  db.closeSync();
  return { rows, types };
}

export function containsAny(haystacks: Buffer[], needles: string[]): string[] {
  return needles.filter((n) => haystacks.some((h) => h.includes(Buffer.from(n, 'utf8'))));
}

/** Rows per table whose subject holds valid consent for the purpose, computed from the generator's own files. */
export async function expectedCurated(packageDir: string, consentFile: string, purpose: string) {
  const today = new Date().toISOString().slice(0, 10);
  const valid = new Set(
    (await readFile(consentFile, 'utf8'))
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','))
      .filter(([, scopes, status, , given, withdrawn]) => {
        const withdrawnNow = status === 'withdrawn' && (!withdrawn || withdrawn <= today);
        return !withdrawnNow && given! <= today && scopes!.split(';').includes(purpose);
      })
      .map(([id]) => id!),
  );
  const count = async (file: string, subjectOf: (line: string) => string) =>
    (await readFile(path.join(packageDir, 'data', file), 'utf8'))
      .trim()
      .split('\n')
      .slice(file.endsWith('.csv') ? 1 : 0)
      .reduce(
        (acc, line) => {
          acc.in += 1;
          if (valid.has(subjectOf(line))) acc.curated += 1;
          return acc;
        },
        { in: 0, curated: 0 },
      );
  const csvSubject = (line: string) => line.split(',')[0]!;
  return {
    subjects: await count('subjects.csv', csvSubject),
    visits: await count('visits.csv', csvSubject),
    labs: await count('labs.csv', csvSubject),
    adverse_events: await count(
      'adverse_events.ndjson',
      (line) => (JSON.parse(line) as { subject_id: string }).subject_id,
    ),
  };
}

/**
 * Generates a large EU package with its consent, submits it, and returns once its workflow is curating: for tests that
 * interrupt curation (kill a worker, cancel).
 */
export async function submitUntilCurating(
  clients: TestClients,
  options: { studyId: string; rows: number; subjects: number; seed: number },
) {
  const generated = await generateDemoPackage({ out: await tempDir(), jurisdiction: 'eu', ...options });
  await importConsentCsv(clients, await readFile(generated.consentFile, 'utf8'), 'eu', options.studyId);
  const pkg = await readLocalPackage(generated.packageDir);
  const { handle } = await submitPackage(
    { client: clients.client, s3: clients.s3, identity: identity('steward', clients.state) },
    pkg,
  );
  const deadline = Date.now() + 120_000;
  while ((await handle.query(ingestProgressQuery)).phase !== 'curating') {
    if (Date.now() > deadline) throw new Error('curation never started');
    await sleep(50);
  }
  return { generated, pkg, handle };
}

/**
 * Exactly the command README gives an auditor: `openssl cms -verify` of a detached CMS signature over `content`,
 * trusting only `ca`. Status 0 when OpenSSL accepts it.
 */
export function opensslCmsVerify(files: { p7s: string; content: string; ca: string }) {
  return spawnSync(
    'openssl',
    [
      'cms',
      '-verify',
      '-binary',
      '-inform',
      'DER',
      '-in',
      files.p7s,
      '-content',
      files.content,
      '-CAfile',
      files.ca,
      '-purpose',
      'any',
      '-out',
      '/dev/null',
    ],
    { encoding: 'utf8' },
  );
}
