import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { chromium as playwright } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditTrailWorkflowId, ingestTaskQueue } from '../../contracts';
import type { StackState } from '../../schemas/config';
import {
  databaseNames,
  dropTemporalDatabases,
  parsePostgresUrl,
  readProductionSettings,
  TEMPORAL_SERVICES,
  type ProductionSettings,
} from '../../lib/stack/cluster';
import { TLS_NAMES } from '../../lib/stack/deploy-pki';
import { canIsolateSites, linkTowards, setLink } from '../../lib/stack/netns';
import { loadConfig, readStackState } from '../../lib/runtime/config';
import { getJurisdiction } from '../../jurisdictions';
import { datasetRecordKey } from '../../lib/storage/layout';
import { REPLICATION_PREFIX } from '../../lib/storage/replication';
import { deleteVersions, listVersions } from '../../lib/storage/versions';
import { INSTALL_ROOT } from '../../lib/runtime/install';
import { flushAudit } from '../../lib/client/audit';
import { signedInput } from '../../lib/client/request';
import { openDemoIdentity } from '../../lib/pki/identity';
import { ensureTool } from '../../lib/stack/tools';
import { createS3Client } from '../../lib/storage/s3';
import { connect, type TestClients } from '../harness';
import { recordHistoryFixtures } from '../histories';
import { cleanVerdict, ingestSmallPackage, runSteward, sha256, submitUntilCurating, tempDir } from '../helpers';

const RECORD_HISTORIES = (process.env.STEWARD_RECORD_HISTORIES ?? '').split(',').map((t) => t.trim());

/** This machine's PostgreSQL (trust auth on loopback); another with STEWARD_TEST_POSTGRES_URL. */
const POSTGRES = process.env.STEWARD_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

let dataDir: string;
/** The workflow id of the test's first ingestion. */
let ingestion: string;
/** The build id of this installation, current in eu until the rolling upgrade. */
let installedBuild: string;
let releases: string;
/** A certificate of the sweep test's. */
let sweptCertificate: string;

/** A copy of this installation as another release's checkout (its dependencies linked), changed by `change`. */
async function copyRelease(name: string, change: (root: string) => void): Promise<string> {
  const root = path.join(releases, name);
  mkdirSync(root, { recursive: true });
  const copied = spawnSync('sh', ['-c', `tar -c --exclude=./node_modules --exclude=./.git . | tar -x -C '${root}'`], {
    cwd: INSTALL_ROOT,
  });
  expect(copied.status, copied.stderr?.toString()).toBe(0);
  symlinkSync(path.join(INSTALL_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  change(root);
  return root;
}

function historyFixtureCount(): number {
  return readdirSync(path.join(INSTALL_ROOT, 'test', 'fixtures', 'histories')).filter((f) => f.endsWith('.json'))
    .length;
}
let prefix: string;
let state: StackState;
let settings: ProductionSettings;

function steward(...args: string[]) {
  return runSteward(dataDir, args, { timeoutMs: 600_000 });
}

/** The eu audit trail's sealed events of one action, as the demo auditor queries them. */
function auditEvents(action: string) {
  const audit = steward(
    '--identity',
    path.join(dataDir, 'identities', 'auditor'),
    '--json',
    'audit',
    'query',
    '--jurisdiction',
    'eu',
    '--action',
    action,
  );
  expect(audit.code, audit.stderr).toBe(0);
  return (
    JSON.parse(audit.stdout) as {
      events: { event: { outcome: string; principal: { role: string }; details: Record<string, unknown> } }[];
    }
  ).events.map((e) => e.event);
}

function psql(database: string, sql: string): string {
  const pg = parsePostgresUrl(POSTGRES);
  const result = spawnSync('psql', ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', database, '-Atc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGPASSWORD: pg.password },
  });
  if (result.status !== 0) throw new Error(`psql: ${result.stderr}`);
  return result.stdout.trim();
}

/** The first bytes a server sends back to a client that speaks plain HTTP/2 (what a plain-text gRPC client sends). */
function plainTextReply(
  port: number,
  host = '127.0.0.1',
  request = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00',
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    const chunks: Buffer[] = [];
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? resolve(Buffer.concat(chunks)) : reject(error),
    );
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** A TLS handshake with the deployment CA; resolves with the server certificate's names, or the error. */
function handshake(
  port: number,
  serverName: string,
  client?: { certFile: string; keyFile: string },
  host = '127.0.0.1',
): Promise<{ ok: true; altNames: string; authorized: boolean } | { ok: false; error: string }> {
  const pki = path.join(dataDir, 'deploy-pki');
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      servername: serverName,
      ca: readFileSync(path.join(pki, 'ca.pem')),
      ALPNProtocols: ['h2'],
      ...(client ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      const altNames = socket.getPeerCertificate().subjectaltname ?? '';
      const authorized = socket.authorized;
      // A server that wants a client certificate and got none says so after the handshake: wait for its alert.
      socket.once('data', () => {});
      setTimeout(() => {
        const alive = !socket.destroyed;
        socket.destroy();
        resolve(alive ? { ok: true, altNames, authorized } : { ok: false, error: 'closed by the server' });
      }, 500);
    });
    socket.once('error', (error) => resolve({ ok: false, error: error.message }));
  });
}

beforeAll(async () => {
  dataDir = await tempDir('steward-production-');
  releases = await tempDir('steward-releases-');
  prefix = `stw_test_${randomBytes(4).toString('hex')}`;
  const up = steward(
    'up',
    '--detach',
    '--profile',
    'production',
    '--postgres',
    POSTGRES,
    '--database-prefix',
    prefix,
    '--jurisdictions',
    'eu,us',
    '--workers-per-jurisdiction',
    '2',
  );
  expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
  expect(up.stdout).toContain('Profile    production (Temporal cluster on PostgreSQL, mutual TLS)');
  state = readStackState(dataDir)!;
  settings = (await readProductionSettings(dataDir))!;
}, 900_000);

afterAll(async () => {
  if (dataDir) {
    const down = steward('down');
    expect(down.code, down.stderr).toBe(0);
    dropTemporalDatabases(await ensureTool('temporal-sql-tool'), parsePostgresUrl(POSTGRES), prefix);
    expect(psql('postgres', `select count(*) from pg_database where datname like '${prefix}%'`)).toBe('0');
    await rm(dataDir, { recursive: true, force: true });
    await rm(releases, { recursive: true, force: true });
  }
}, 300_000);

describe('the production profile', () => {
  it("runs Temporal's four services as processes of their own, on PostgreSQL", async () => {
    expect(state.profile).toBe('production');
    const commands: string[] = [];
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes(path.join(dataDir, 'temporal', 'cluster.yaml')))
        commands.push(cmdline.split('\0').join(' '));
    }
    for (const service of TEMPORAL_SERVICES) {
      expect(
        commands.filter((c) => c.endsWith(`--service ${service} `) || c.endsWith(`--service ${service}`)),
      ).toHaveLength(1);
    }
    const names = databaseNames(prefix);
    expect(psql(names.temporal, 'select name from namespaces order by name')).toContain('default');
    expect(psql(names.temporal, 'select max(curr_version) from schema_version')).toMatch(/^1\.\d+$/);
    expect(psql(names.visibility, 'select max(curr_version) from schema_version')).toMatch(/^1\.\d+$/);
  });

  it('speaks only TLS on every Temporal port, and only to clients with a deployment certificate', async () => {
    const pki = path.join(dataDir, 'deploy-pki');
    const client = {
      certFile: path.join(pki, 'steward-client.pem'),
      keyFile: path.join(pki, 'steward-client-key.pem'),
    };
    const internode = {
      certFile: path.join(pki, 'temporal-internode.pem'),
      keyFile: path.join(pki, 'temporal-internode-key.pem'),
    };

    // A plain-text gRPC client gets nothing it can read from the frontend.
    await expect(
      Connection.connect({ address: state.temporal.address, connectTimeout: '3s' }).then(async (c) => {
        try {
          return await c.workflowService.getSystemInfo({});
        } finally {
          await c.close();
        }
      }),
    ).rejects.toThrow();

    // Temporal's worker service serves no gRPC of its own: it is a client of the frontend.
    await expect(plainTextReply(settings.ports.worker.grpc)).rejects.toThrow(/ECONNREFUSED/);
    for (const service of ['history', 'matching', 'frontend'] as const) {
      const { grpc } = settings.ports[service];
      // Plain HTTP/2 is answered with a TLS alert record (0x15) or a closed connection, never an HTTP/2 frame.
      const reply = await plainTextReply(grpc);
      expect(
        reply.length === 0 || reply[0] === 0x15,
        `${service} answered plain text with ${reply.subarray(0, 8).toString('hex')}`,
      ).toBe(true);

      const name = service === 'frontend' ? TLS_NAMES.frontend : TLS_NAMES.internode;
      const pair = service === 'frontend' ? client : internode;
      const accepted = await handshake(grpc, name, pair);
      expect(accepted, service).toMatchObject({ ok: true, authorized: true });
      expect((accepted as { altNames: string }).altNames).toContain(`DNS:${name}`);
      // Without a client certificate the server ends the connection.
      expect(await handshake(grpc, name), service).toMatchObject({ ok: false });
    }
  });

  it('keeps each jurisdiction on its own primary and DR storage sites, which speak only HTTPS', async () => {
    const eu = state.jurisdictions.eu!.storage!;
    const us = state.jurisdictions.us!.storage!;
    const sites = [eu, us, eu.dr!, us.dr!];
    expect(new Set(sites.map((s) => s.site)).size).toBe(4);
    expect(new Set(sites.map((s) => new URL(s.endpoint).host)).size).toBe(4);
    expect(new Set(sites.map((s) => s.pid)).size).toBe(4);
    for (const site of sites) {
      const url = new URL(site.endpoint);
      expect(url.protocol).toBe('https:');
      // An S3 client speaking plain HTTP with valid credentials gets no answer: the site closes the connection.
      const plain = createS3Client({
        ...state.s3,
        ...state.jurisdictions.eu!.account!,
        endpoint: `http://${url.host}`,
      });
      await expect(plain.send(new ListBucketsCommand({}))).rejects.toThrow();
      plain.destroy();
      const reply = await plainTextReply(Number(url.port), url.hostname, `GET / HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
      expect(reply.toString('latin1')).not.toMatch(/^HTTP\/1\.[01] [23]\d\d/);
      // The certificate is checked: without the deployment CA the handshake fails.
      await expect(fetch(`${site.endpoint}/`)).rejects.toThrow();
      const answered = await handshake(
        Number(url.port),
        TLS_NAMES.storage(site.site.replace(/^site-/, '')),
        undefined,
        url.hostname,
      );
      expect(answered).toMatchObject({ ok: true, authorized: true });
      expect((answered as { altNames: string }).altNames).toContain(`IP Address:${url.hostname}`);
    }
  });

  it.skipIf(!canIsolateSites())(
    'keeps the us worker off eu storage, primary and DR, at the network level: its namespace has no route there',
    () => {
      const eu = state.jurisdictions.eu!.storage!;
      const us = state.jurisdictions.us!.storage!;
      const usWorker = state.workers.find((w) => w.jurisdiction === 'us')!;
      const identified = spawnSync('ip', ['netns', 'identify', String(usWorker.pid)], { encoding: 'utf8' });
      expect(identified.stdout.trim()).toBe(us.workerNetns);
      const reach = (target: string) => {
        const url = new URL(target);
        const probe = spawnSync(
          'ip',
          [
            'netns',
            'exec',
            us.workerNetns!,
            process.execPath,
            '-e',
            `const s=require('net').connect(${url.port},'${url.hostname}');s.setTimeout(3000,()=>{console.log('ETIMEDOUT');s.destroy()});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',e=>console.log(e.code))`,
          ],
          { encoding: 'utf8', timeout: 10_000 },
        );
        return probe.stdout.trim();
      };
      expect(reach(us.workerEndpoint)).toBe('connected');
      expect(reach(us.dr!.workerEndpoint)).toBe('connected');
      for (const endpoint of [eu.workerEndpoint, eu.endpoint, eu.dr!.workerEndpoint, eu.dr!.endpoint]) {
        expect(reach(endpoint), endpoint).toBe('ENETUNREACH');
      }
    },
  );

  it('connects to PostgreSQL over TLS where the server offers it', () => {
    const names = databaseNames(prefix);
    const rows = psql(
      'postgres',
      `select a.datname || ':' || s.ssl from pg_stat_ssl s join pg_stat_activity a using (pid) ` +
        `where a.datname in ('${names.temporal}', '${names.visibility}') order by 1`,
    )
      .split('\n')
      .filter(Boolean);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((r) => !r.endsWith(':true'))).toEqual([]);
    expect(new Set(rows.map((r) => r.split(':')[0]))).toEqual(new Set([names.temporal, names.visibility]));
  });

  it('ingests, finds workflows by search attribute in SQL visibility, and keeps their histories in PostgreSQL', async () => {
    const clients: TestClients = await connect(state);
    try {
      const record = await ingestSmallPackage(clients, 'eu', 'ST-PROD', 'clinical-trial', 7);
      expect(record.rows).toMatchObject({ in: 2, curated: 2, excluded: 0 });
      const listed: string[] = [];
      for await (const w of clients.client.workflow.list({ query: `StudyId = "ST-PROD" AND Jurisdiction = "eu"` }))
        listed.push(w.workflowId);
      expect(listed).toContain(record.lineage.workflowId);
      ingestion = record.lineage.workflowId;
      expect(
        Number(
          psql(
            databaseNames(prefix).temporal,
            `select count(*) from executions where workflow_id = '${record.lineage.workflowId}'`,
          ),
        ),
      ).toBe(1);
    } finally {
      await clients.close();
    }
  });

  it('serves the Temporal Web UI over HTTPS, read-only, decoding payloads through the codec server', async () => {
    const ui = new URL(state.temporal.uiUrl);
    expect(ui.protocol).toBe('https:');
    const ca = readFileSync(path.join(dataDir, 'deploy-pki', 'ca.pem'));
    const call = (method: string, route: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string; cookies: string[] }>((resolve, reject) => {
        const request = https.request(
          `${ui.origin}${route}`,
          { method, ca, servername: TLS_NAMES.ui, headers: { 'content-type': 'application/json', ...headers } },
          (response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
            response.on('end', () =>
              resolve({ status: response.statusCode!, body, cookies: response.headers['set-cookie'] ?? [] }),
            );
          },
        );
        request.on('error', reject);
        request.end(method === 'GET' ? undefined : '{}');
      });
    // The UI server reaches the frontend with its client certificate: the ingestion is listed.
    const listed = await call(
      'GET',
      `/api/v1/namespaces/default/workflows?query=${encodeURIComponent(`WorkflowId="${ingestion}"`)}`,
    );
    expect(listed.status, listed.body).toBe(200);
    expect(listed.body).toContain(ingestion);
    const settings = await call('GET', '/api/v1/settings');
    expect((JSON.parse(settings.body) as { Codec: { Endpoint: string } }).Codec.Endpoint).toBe(state.codec!.uiEndpoint);
    // Read-only: a terminate of the (running) eu audit trail sent straight to the UI's API, with the CSRF token a
    // browser would send, is refused before it reaches Temporal; the trail runs on.
    const csrf = /_csrf=([^;]+)/.exec(settings.cookies.join('; '))?.[1];
    expect(csrf).toBeDefined();
    const terminate = await call(
      'POST',
      `/api/v1/namespaces/default/workflows/${encodeURIComponent(auditTrailWorkflowId('eu'))}/terminate`,
      { cookie: `_csrf=${csrf}`, 'x-csrf-token': csrf! },
    );
    expect(terminate.status, terminate.body).toBe(405);
    const clients: TestClients = await connect(state);
    try {
      const trail = await clients.client.workflow.getHandle(auditTrailWorkflowId('eu')).describe();
      expect(trail.status.name).toBe('RUNNING');
    } finally {
      await clients.close();
    }
    // Plain HTTP is refused: Go's TLS server answers it with 400 and serves nothing.
    const reply = await plainTextReply(Number(ui.port), '127.0.0.1', `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(reply.toString('latin1')).not.toMatch(/^HTTP\/1\.[01] [23]\d\d/);

    // In a browser that trusts the deployment CA (here: told to accept its certificates), the input shows decoded.
    const chromium = process.env.STEWARD_CHROMIUM ?? '/usr/bin/chromium';
    if (!existsSync(chromium) && !process.env.CI) return;
    const context = await playwright.launchPersistentContext(await tempDir('steward-chromium-'), {
      executablePath: chromium,
      headless: true,
      ignoreHTTPSErrors: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(`${ui.origin}/namespaces/default/workflows/${encodeURIComponent(ingestion)}`);
      await page.getByText('\\"studyId\\":\\"ST-PROD\\"').first().waitFor({ timeout: 60_000 });
    } finally {
      await context.close();
    }
  });

  it('runs the demo end to end: ingestion in EU and US, a rejected package, an access and an erasure request', () => {
    const demo = steward('demo', 'run', '--rows', '300');
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    expect(demo.stdout).toContain('Rejected as it should be');
    expect(demo.stdout).toMatch(/Access request [0-9a-f-]{36} \(eu\/DEMO-EU-01\): completed/);
    expect(demo.stdout).toMatch(/Erasure request [0-9a-f-]{36} \(eu\/DEMO-EU-01\): completed/);
    expect(demo.stdout).toMatch(/Certificate \S+ verifies/);
  });

  it("spreads a jurisdiction's work over its workers: each eu worker ran activities and workflow tasks", async () => {
    const euPids = state.workers.filter((w) => w.jurisdiction === 'eu').map((w) => w.pid);
    expect(euPids).toHaveLength(2);
    const clients: TestClients = await connect(state);
    const ran = new Map<string, { activities: number; workflowTasks: number }>();
    try {
      for await (const w of clients.client.workflow.list({ query: `TaskQueue = "${ingestTaskQueue('eu')}"` })) {
        const history = await clients.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
        for (const event of history.events ?? []) {
          const activity = event.activityTaskStartedEventAttributes?.identity;
          const task = event.workflowTaskStartedEventAttributes?.identity;
          for (const [identity, kind] of [
            [activity, 'activities'],
            [task, 'workflowTasks'],
          ] as const) {
            if (!identity) continue;
            const counts = ran.get(identity) ?? { activities: 0, workflowTasks: 0 };
            counts[kind]++;
            ran.set(identity, counts);
          }
        }
      }
    } finally {
      await clients.close();
    }
    // Worker identities end in `:<pid>`: the demo's eu workflows ran on both eu worker processes.
    for (const pid of euPids) {
      const identity = [...ran.keys()].find((i) => i.startsWith('steward-worker-eu@') && i.endsWith(`:${pid}`));
      expect(identity, `eu worker ${pid} ran nothing; ran: ${JSON.stringify([...ran])}`).toBeDefined();
      expect(ran.get(identity!)!.activities).toBeGreaterThan(0);
      expect(ran.get(identity!)!.workflowTasks).toBeGreaterThan(0);
    }
    // No us worker ran eu work.
    expect([...ran.keys()].filter((i) => i.includes('-us@'))).toEqual([]);
  });

  it('serves the codec over HTTPS only, with a certificate from the deployment CA', async () => {
    const url = new URL(state.codec!.url);
    expect(url.protocol).toBe('https:');
    const port = Number(url.port);
    const status = await new Promise<number>((resolve, reject) => {
      const request = https.get(
        {
          host: '127.0.0.1',
          port,
          path: '/',
          servername: TLS_NAMES.codec,
          ca: readFileSync(path.join(dataDir, 'deploy-pki', 'ca.pem')),
        },
        (response) => {
          response.resume();
          resolve(response.statusCode!);
        },
      );
      request.on('error', reject);
    });
    // An HTTP answer (no such route) over a verified TLS connection.
    expect(status).toBe(404);
    // Without the deployment CA the certificate is not trusted; plain HTTP gets no HTTP answer.
    await expect(fetch(`https://127.0.0.1:${port}/`)).rejects.toThrow();
    const reply = await plainTextReply(port, '127.0.0.1', `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(reply.toString('latin1')).not.toMatch(/^HTTP\/1\.[01] \d{3}/);
  });

  it('sweeps expired datasets with certificates', () => {
    expect(steward('demo', 'expired', '--jurisdiction', 'eu', '--datasets', '3', '--objects', '2').code).toBe(0);
    // Replicated before they are swept, so that the sweep finds them at both sites.
    const written = new Date().toISOString();
    let through = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && through < written;) {
      const status = JSON.parse(steward('--json', 'dr', 'status', '--jurisdiction', 'eu').stdout) as {
        replicatedThrough: string | null;
      }[];
      through = status[0]!.replicatedThrough ?? '';
      if (through < written) spawnSync('sleep', ['2']);
    }
    expect(through > written, `replicated through ${through}`).toBe(true);
    const swept = steward('retention', 'sweep', '--jurisdiction', 'eu', '--json');
    expect(swept.code, swept.stderr).toBe(0);
    const items = (JSON.parse(swept.stdout) as { items: { outcome: string; certificateId?: string }[] }).items;
    const deleted = items.filter((i) => i.outcome === 'deleted');
    expect(deleted.length).toBeGreaterThanOrEqual(3);
    const verified = steward('cert', 'verify', deleted[0]!.certificateId!);
    expect(verified.code, verified.stdout).toBe(0);
    sweptCertificate = deleted[0]!.certificateId!;
  });

  it('replicates every version to the DR site inside the jurisdiction, deletes at both sites, and reports the lag', async () => {
    const config = loadConfig({ dataDir });
    const sitesOf = (j: string) => ({ primary: createS3Client(config.s3For(j)), dr: createS3Client(config.drFor(j)!) });
    const eu = sitesOf('eu');
    const us = sitesOf('us');
    try {
      // The sweep deleted at both sites, and its certificate names each version at each, all gone now.
      const shown = steward('--json', 'cert', 'show', sweptCertificate);
      expect(shown.code, shown.stderr).toBe(0);
      const objects = (
        JSON.parse(shown.stdout) as {
          sanitized: { objects: { site?: string; bucket: string; key: string; versionId: string | null }[] };
        }
      ).sanitized.objects;
      const at = (site: string) =>
        objects
          .filter((o) => o.site === site)
          .map((o) => `${o.bucket}/${o.key}`)
          .sort();
      expect(at('eu-frankfurt').length).toBeGreaterThan(0);
      expect(at('eu-paris')).toEqual(at('eu-frankfurt'));
      expect(objects.filter((o) => o.site !== 'eu-frankfurt' && o.site !== 'eu-paris')).toEqual([]);
      for (const o of objects) {
        const client = o.site === 'eu-paris' ? eu.dr : eu.primary;
        await expect(
          client.send(new HeadObjectCommand({ Bucket: o.bucket, Key: o.key, VersionId: o.versionId ?? undefined })),
          `${o.site} ${o.bucket}/${o.key}`,
        ).rejects.toThrow();
      }

      // Every bucket's versions at the DR site copy the primary's, once the passes caught up (replicas of versions
      // deleted otherwise than by a certified erasure go after a minute's grace).
      const mirrorDiff = async (sites: typeof eu, j: string) => {
        const diffs: string[] = [];
        for (const bucket of Object.values(getJurisdiction(j).buckets)) {
          const signature = async (client: S3Client) =>
            (await listVersions(client, bucket, ''))
              .filter((v) => !v.key.startsWith(REPLICATION_PREFIX))
              .map((v) => `${bucket}/${v.key} ${v.bytes} ${v.deleteMarker ? 'marker' : 'version'}`)
              .sort();
          const [primary, dr] = [await signature(sites.primary), await signature(sites.dr)];
          if (primary.join('\n') !== dr.join('\n')) {
            diffs.push(...primary.filter((x) => !dr.includes(x)).map((x) => `only at the primary: ${x}`));
            diffs.push(...dr.filter((x) => !primary.includes(x)).map((x) => `only at the DR site: ${x}`));
          }
        }
        return diffs;
      };
      let diffs: string[] = [];
      for (const deadline = Date.now() + 150_000; Date.now() < deadline; await sleep(3000)) {
        diffs = [...(await mirrorDiff(eu, 'eu')), ...(await mirrorDiff(us, 'us'))];
        if (diffs.length === 0) break;
      }
      expect(diffs).toEqual([]);
      // Same bytes: a curated object's SHA-256 at both sites.
      const curated = getJurisdiction('eu').buckets.curated;
      const object = (await listVersions(eu.primary, curated, 'datasets/')).find((v) => !v.deleteMarker)!;
      const digest = async (client: S3Client) =>
        (await client.send(new GetObjectCommand({ Bucket: curated, Key: object.key }))).Body!.transformToByteArray();
      expect(sha256(Buffer.from(await digest(eu.dr)))).toBe(sha256(Buffer.from(await digest(eu.primary))));

      const status = steward('--json', 'dr', 'status', '--max-lag', '600');
      expect(status.code, `${status.stdout}\n${status.stderr}`).toBe(0);
      const rows = JSON.parse(status.stdout) as {
        jurisdiction: string;
        primary: string;
        dr: string;
        lagSeconds: number;
        totals: { copied: number; pruned: number };
        last: { buckets: { pending: number; foreign: number; bucket: string }[] };
      }[];
      expect(rows.map((r) => [r.jurisdiction, r.primary, r.dr])).toEqual([
        ['eu', 'eu-frankfurt', 'eu-paris'],
        ['us', 'us-virginia', 'us-oregon'],
      ]);
      for (const r of rows) {
        expect(r.lagSeconds).toBeLessThan(600);
        expect(r.totals.copied).toBeGreaterThan(0);
        expect(r.last.buckets.every((b) => b.pending === 0)).toBe(true);
      }
      // Replicas of the versions the demo's erasure rewrote away were pruned, and audited.
      expect(rows[0]!.totals.pruned).toBeGreaterThan(0);
      const pruned = auditEvents('replication.pruned');
      expect(pruned.length).toBeGreaterThan(0);
      expect(pruned[0]!.details.site).toBe('eu-paris');

      // Straight to Temporal: a second replication of eu (another workflow id), one on eu's queue naming us, and one
      // handed forged saved state are each refused by the workflow itself; the running one goes on.
      const clients: TestClients = await connect(state);
      try {
        const rogue = async (workflowId: string, input: unknown) => {
          const handle = await clients.client.workflow.start('replicationWorkflow', {
            workflowId,
            taskQueue: ingestTaskQueue('eu'),
            args: [input],
          });
          return handle.result().then(
            () => 'completed',
            (error: Error) => String((error.cause as Error | undefined)?.message ?? error.message),
          );
        };
        expect(await rogue('replication-eu-rogue', { jurisdiction: 'eu' })).toContain(
          'a eu worker replicates only eu, as replication-eu',
        );
        expect(await rogue('replication-us-on-eu', { jurisdiction: 'us' })).toContain('a eu worker replicates only eu');
        expect(await rogue('replication-eu-forged', { state: { passes: 0 } })).toContain('replication state refused');
        const running = await clients.client.workflow.getHandle('replication-eu').describe();
        expect(running.status.name).toBe('RUNNING');
      } finally {
        await clients.close();
      }

      // A replica deleted at the DR site itself is copied again; an object written there that copies nothing is left
      // alone and reported.
      const victim = (await listVersions(eu.dr, curated, 'datasets/')).find((v) => !v.deleteMarker)!;
      expect(await deleteVersions(eu.dr, curated, [victim], { bypassGovernance: true })).toEqual([]);
      const catalog = getJurisdiction('eu').buckets.catalog;
      await eu.dr.send(
        new PutObjectCommand({ Bucket: catalog, Key: 'written-at-the-dr-site.txt', Body: 'not a replica' }),
      );
      let copiedAgain = false;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && !copiedAgain; await sleep(2000)) {
        copiedAgain = (await listVersions(eu.dr, curated, victim.key)).some((v) => !v.deleteMarker);
      }
      expect(copiedAgain).toBe(true);
      const foreign = async () => {
        const json = JSON.parse(steward('--json', 'dr', 'status', '--jurisdiction', 'eu').stdout) as typeof rows;
        return json[0]!.last.buckets.find((b) => b.bucket === catalog)!.foreign;
      };
      let seen = 0;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && seen === 0; await sleep(2000)) {
        seen = await foreign();
      }
      expect(seen).toBe(1);
      expect((await listVersions(eu.dr, catalog, 'written-at-the-dr-site.txt')).length).toBe(1);
      expect(steward('dr', 'status', '--jurisdiction', 'eu').stdout).toContain(
        `${catalog}: 1 versions at eu-paris copy nothing at eu-frankfurt`,
      );
      await deleteVersions(eu.dr, catalog, await listVersions(eu.dr, catalog, 'written-at-the-dr-site.txt'));

      if (canIsolateSites()) {
        // The eu workers' link to the DR site cut: the pass fails and is retried, `dr status` says so (exit 5), and
        // what was stored meanwhile reaches the DR site once the link is back.
        const toDr = linkTowards(
          state.jurisdictions.eu!.storage!.workerNetns!,
          state.jurisdictions.eu!.storage!.dr!.workerEndpoint,
        );
        setLink(toDr, 'down');
        try {
          await eu.primary.send(
            new PutObjectCommand({ Bucket: catalog, Key: 'stored-while-the-dr-link-was-cut.txt', Body: 'kept' }),
          );
          let cut = steward('dr', 'status', '--jurisdiction', 'eu');
          for (const deadline = Date.now() + 90_000; Date.now() < deadline && cut.code !== 5; await sleep(3000)) {
            cut = steward('dr', 'status', '--jurisdiction', 'eu');
          }
          expect(cut.code, cut.stdout).toBe(5);
          expect(cut.stdout).toMatch(/RETRYING \(attempt \d+\): /);
        } finally {
          setLink(toDr, 'up');
        }
        let arrived = false;
        for (const deadline = Date.now() + 90_000; Date.now() < deadline && !arrived; await sleep(2000)) {
          arrived = (await listVersions(eu.dr, catalog, 'stored-while-the-dr-link-was-cut.txt')).length === 1;
        }
        expect(arrived).toBe(true);
        await deleteVersions(
          eu.primary,
          catalog,
          await listVersions(eu.primary, catalog, 'stored-while-the-dr-link-was-cut.txt'),
        );
      }
    } finally {
      for (const client of [eu.primary, eu.dr, us.primary, us.dr]) client.destroy();
    }
  }, 600_000);

  it.skipIf(!canIsolateSites())(
    'fails eu over to its DR site when the primary is lost mid-ingestion, and back: nothing acknowledged lost, nothing curated twice',
    async () => {
      const ops = path.join(dataDir, 'identities', 'ops');
      const dr = (...args: string[]) => steward('--identity', ops, '--json', 'dr', ...args);
      const datasetsOf = (study: string) => {
        const list = steward('--json', 'datasets', 'list', '--jurisdiction', 'eu', '--study', study);
        expect(list.code, list.stderr).toBe(0);
        return JSON.parse(list.stdout) as { datasetId: string; rows: { in: number; curated: number } }[];
      };
      const storage = state.jurisdictions.eu!.storage!;
      // The primary lost as a host is: its links from the workers' namespace and from the host set down.
      const links = [
        linkTowards(storage.workerNetns!, storage.workerEndpoint),
        linkTowards(undefined, storage.endpoint),
      ];
      const setPrimary = (state: 'up' | 'down') => {
        for (const end of links) setLink(end, state);
      };

      // Only ops may move the workers; a request signed by a steward and left for the stack is refused there too.
      const denied = steward('dr', 'failover', '--jurisdiction', 'eu', '--reason', 'not mine to do');
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/may not dr\.failover/);
      const forged = signedInput(openDemoIdentity(path.join(dataDir, 'identities', 'steward')), {
        action: 'dr.failover',
        jurisdiction: 'eu',
        params: { reason: 'forged' },
      });
      mkdirSync(path.join(dataDir, 'deploy', 'requests'), { recursive: true });
      writeFileSync(
        path.join(dataDir, 'deploy', 'requests', 'zz-forged-failover.json'),
        JSON.stringify(forged.request),
      );
      process.kill(state.pid, 'SIGHUP');
      const forgedResult = path.join(dataDir, 'deploy', 'results', 'zz-forged-failover.json');
      await expect.poll(() => existsSync(forgedResult), { timeout: 60_000 }).toBe(true);
      expect(JSON.parse(readFileSync(forgedResult, 'utf8'))).toMatchObject({
        outcome: 'refused',
        reason: expect.stringMatching(/may not dr\.failover/),
      });

      try {
        let clients: TestClients = await connect(state);
        // Acknowledged before the loss: an ingestion completes only once both sites hold its data.
        const acknowledged = await ingestSmallPackage(clients, 'eu', 'ST-FAILOVER', 'clinical-trial', 11);
        const { handle, pkg } = await submitUntilCurating(clients, {
          studyId: 'ST-FAILOVER-MID',
          rows: 4000,
          subjects: 40,
          seed: 13,
        });
        await clients.close();
        setPrimary('down');
        try {
          const failover = dr('failover', '--jurisdiction', 'eu', '--reason', 'eu-frankfurt lost');
          expect(failover.code, `${failover.stdout}\n${failover.stderr}`).toBe(0);
          const switched = JSON.parse(failover.stdout) as { outcome: string; active: string; finalPass: object };
          expect(switched).toMatchObject({ outcome: 'switched', active: 'eu-paris', previous: 'eu-frankfurt' });
          // The primary did not answer: no last pass from it.
          expect(switched.finalPass).toHaveProperty('skipped');
          state = readStackState(dataDir)!;
          expect(state.jurisdictions.eu!.storage!.active).toBe('dr');

          // The ingestion caught mid-way finishes on the DR site: curated once, its record there.
          clients = await connect(state);
          const result = await clients.client.workflow.getHandle(handle.workflowId).result();
          expect(result.outcome).toBe('curated');
          expect(result.record.packageId).toBe(pkg.packageId);
          const mid = datasetsOf('ST-FAILOVER-MID');
          expect(mid.map((d) => d.datasetId)).toEqual([result.datasetId]);
          expect(mid[0]!.rows).toEqual(result.record.rows);
          // What was acknowledged before the loss is all there.
          expect(datasetsOf('ST-FAILOVER').map((d) => d.datasetId)).toEqual([acknowledged.datasetId]);
          // Replication now runs from the DR site to the primary, which does not answer: the pass hangs on the
          // lost site until its heartbeat times out (a minute), then is retried with that failure.
          let behind = steward('dr', 'status', '--jurisdiction', 'eu');
          for (const deadline = Date.now() + 150_000; Date.now() < deadline && behind.code !== 5; await sleep(3000)) {
            behind = steward('dr', 'status', '--jurisdiction', 'eu');
          }
          expect(behind.code, behind.stdout).toBe(5);
          expect(behind.stdout).toContain('eu-paris (Paris, France) → eu-frankfurt (Frankfurt, Germany)');
          // The pass's failure as it happened (decoded: Temporal holds it encrypted).
          expect(behind.stdout).toMatch(/RETRYING \(attempt \d+\): /);
          expect(behind.stdout).not.toContain('Encoded failure');
          await clients.close();
        } finally {
          setPrimary('up');
        }

        // The primary back: the DR site's writes reach it; then the workers go back.
        let caughtUp = steward('dr', 'status', '--jurisdiction', 'eu');
        for (const deadline = Date.now() + 180_000; Date.now() < deadline && caughtUp.code !== 0; await sleep(3000)) {
          caughtUp = steward('dr', 'status', '--jurisdiction', 'eu');
        }
        expect(caughtUp.code, caughtUp.stdout).toBe(0);
        expect(caughtUp.stdout).toContain('FAILED OVER');
        const failback = dr('failback', '--jurisdiction', 'eu', '--reason', 'eu-frankfurt restored');
        expect(failback.code, `${failback.stdout}\n${failback.stderr}`).toBe(0);
        expect(JSON.parse(failback.stdout)).toMatchObject({
          outcome: 'switched',
          active: 'eu-frankfurt',
          previous: 'eu-paris',
          finalPass: { copied: expect.any(Number) },
        });
        state = readStackState(dataDir)!;
        expect(state.jurisdictions.eu!.storage!.active).toBeUndefined();

        const config = loadConfig({ dataDir });
        const primary = createS3Client(config.s3For('eu'));
        const paris = createS3Client(config.drFor('eu')!);
        try {
          // Both datasets' records at both sites, byte for byte; the one curated during the failover once.
          const catalog = getJurisdiction('eu').buckets.catalog;
          for (const d of [...datasetsOf('ST-FAILOVER'), ...datasetsOf('ST-FAILOVER-MID')]) {
            const key = datasetRecordKey(d.datasetId);
            const read = async (client: S3Client) =>
              Buffer.from(
                await (
                  await client.send(new GetObjectCommand({ Bucket: catalog, Key: key }))
                ).Body!.transformToByteArray(),
              );
            expect(sha256(await read(primary)), key).toBe(sha256(await read(paris)));
          }
          expect(datasetsOf('ST-FAILOVER-MID')).toHaveLength(1);

          // Replication runs forward again, and an ingestion is acknowledged only once the DR site holds its record.
          // The status describes the last pass: once it is a forward one, replication runs from the primary again.
          const forwardAgain = (run: ReturnType<typeof steward>) =>
            run.code === 0 && (JSON.parse(run.stdout) as { primary: string }[])[0]?.primary === 'eu-frankfurt';
          let forward = steward('--json', 'dr', 'status', '--jurisdiction', 'eu');
          for (
            const deadline = Date.now() + 120_000;
            Date.now() < deadline && !forwardAgain(forward);
            await sleep(3000)
          ) {
            forward = steward('--json', 'dr', 'status', '--jurisdiction', 'eu');
          }
          expect(forward.code, forward.stdout).toBe(0);
          expect(JSON.parse(forward.stdout)[0]).toMatchObject({ primary: 'eu-frankfurt', dr: 'eu-paris' });
          clients = await connect(state);
          const after = await ingestSmallPackage(clients, 'eu', 'ST-FAILOVER', 'clinical-trial', 17);
          await clients.close();
          const at = await paris.send(
            new HeadObjectCommand({ Bucket: catalog, Key: datasetRecordKey(after.datasetId) }),
          );
          expect(at.Metadata?.['steward-replica-of']).toBeDefined();
        } finally {
          primary.destroy();
          paris.destroy();
        }

        const events = auditEvents('dr.failed-over');
        expect(events.map((e) => [e.outcome, e.principal.role])).toEqual([
          ['denied', 'steward'],
          ['success', 'ops'],
        ]);
        expect(events[1]!.details).toMatchObject({ from: 'eu-frankfurt', to: 'eu-paris', reason: 'eu-frankfurt lost' });
        expect(auditEvents('dr.failed-back').map((e) => [e.outcome, e.principal.role])).toEqual([['success', 'ops']]);
      } finally {
        // Whatever failed above, the suite's later tests need eu back on its primary.
        if (readStackState(dataDir)?.jurisdictions.eu?.storage?.active === 'dr') {
          setPrimary('up');
          dr('failback', '--jurisdiction', 'eu', '--reason', 'test cleanup');
          state = readStackState(dataDir)!;
        }
      }
    },
    900_000,
  );

  it('is qualified with `steward qualify` like the embedded stack: IQ, OQ and PQ', async () => {
    const qa = path.join(dataDir, 'identities', 'qa');
    const baseline = steward('--identity', qa, 'baseline', 'record', '--jurisdiction', 'eu', '--reason', 'production');
    expect(baseline.code, baseline.stderr).toBe(0);
    const run = steward('--identity', qa, '--json', 'qualify', '--jurisdiction', 'eu', '--phase', 'all');
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { verdict: string; signed: boolean };
    expect(result.verdict).toBe(cleanVerdict());
    expect(result.signed).toBe(true);
  });

  it('rolls a new release onto the workers behind the replay gate; a non-deterministic one or an unsigned request is refused', async () => {
    const ops = path.join(dataDir, 'identities', 'ops');
    const status = () => {
      const run = steward('--json', 'workers', 'status', '--jurisdiction', 'eu');
      expect(run.code, run.stderr).toBe(0);
      return (JSON.parse(run.stdout) as { current: string; workers: { pid: number; buildId: string }[] }[])[0]!;
    };
    const deploy = (release: string, reason: string) =>
      steward(
        '--identity',
        ops,
        '--json',
        'workers',
        'deploy',
        '--jurisdiction',
        'eu',
        '--release',
        release,
        '--reason',
        reason,
      );
    const before = status();
    expect(before.current).toMatch(/^[0-9a-f]{16}$/);
    installedBuild = before.current;
    expect(before.workers.map((w) => w.buildId)).toEqual([before.current, before.current]);

    // Release 2: this installation with one changed source file, as a checkout of its own.
    const release = await copyRelease('release-2', (root) => {
      appendFileSync(path.join(root, 'activities', 'index.ts'), '\n// release 2\n');
    });
    let clients: TestClients = await connect(state);
    const { handle } = await submitUntilCurating(clients, { studyId: 'ST-ROLL', rows: 3000, subjects: 40, seed: 9 });
    // The eu audit trail runs all along: the run open now is a workflow started before the deploy.
    const trailRun = (await clients.client.workflow.getHandle(auditTrailWorkflowId('eu')).describe()).runId;
    await clients.close();
    const deployed = deploy(release, 'release 2');
    expect(deployed.code, `${deployed.stdout}\n${deployed.stderr}`).toBe(0);
    const result = (
      JSON.parse(deployed.stdout) as { outcome: string; buildId: string; previous: string; replayed: number }[]
    )[0]!;
    expect(result).toMatchObject({ outcome: 'deployed', previous: before.current });
    expect(result.buildId).not.toBe(before.current);
    // Recorded histories of every workflow type, and the running ones (the ingestion among them).
    expect(result.replayed).toBeGreaterThan(historyFixtureCount());
    state = readStackState(dataDir)!;
    const after = status();
    expect(after.current).toBe(result.buildId);
    expect(after.workers.map((w) => w.buildId)).toEqual([result.buildId, result.buildId]);
    // The old workers are gone; the new ones run the release's own code.
    for (const w of before.workers) expect(existsSync(`/proc/${w.pid}`)).toBe(false);
    for (const w of after.workers) {
      expect(readFileSync(`/proc/${w.pid}/cmdline`, 'utf8')).toContain(path.join(release, 'workers', 'main.ts'));
    }
    // The ingestion started on the old release finishes, curated.
    clients = await connect(state);
    try {
      expect((await clients.client.workflow.getHandle(handle.workflowId).result()).outcome).toBe('curated');
    } finally {
      await clients.close();
    }

    // Release 3 adds a timer before the first activity of an ingestion: recorded ingestions no longer replay.
    const broken = await copyRelease('release-3', (root) => {
      const file = path.join(root, 'workflows', 'ingestPackage.ts');
      const source = readFileSync(file, 'utf8')
        .replace('  setHandler,\n', '  setHandler,\n  sleep,\n')
        .replace(
          "  const auth = await authorize(raw, 'ingest',",
          "  await sleep('1 second');\n  const auth = await authorize(raw, 'ingest',",
        );
      expect(source).toContain("await sleep('1 second')");
      writeFileSync(file, source);
    });
    const refused = deploy(broken, 'release 3');
    expect(refused.code, refused.stdout).toBe(3);
    const verdict = (JSON.parse(refused.stdout) as { outcome: string; failures: string[]; previous: string }[])[0]!;
    expect(verdict.outcome).toBe('refused');
    expect(verdict.previous).toBe(result.buildId);
    expect(verdict.failures.some((f) => f.startsWith('ingestPackageWorkflow') && /Nondeterminism/.test(f))).toBe(true);
    expect(status().current).toBe(result.buildId);
    expect(
      readStackState(dataDir)!
        .workers.filter((w) => w.jurisdiction === 'eu')
        .map((w) => w.pid),
    ).toEqual(after.workers.map((w) => w.pid));

    // A request that skips the CLI's role check (a steward's signature, dropped in the stack's request folder) is
    // verified by the stack and refused.
    const steward_ = path.join(dataDir, 'identities', 'steward');
    const forged = signedInput(openDemoIdentity(steward_), {
      action: 'workers.deploy',
      jurisdiction: 'eu',
      params: { release },
    });
    const requests = path.join(dataDir, 'deploy', 'requests');
    writeFileSync(path.join(requests, 'zz-forged.json'), JSON.stringify(forged.request));
    process.kill(state.pid, 'SIGHUP');
    const resultFile = path.join(dataDir, 'deploy', 'results', 'zz-forged.json');
    await expect.poll(() => existsSync(resultFile), { timeout: 60_000 }).toBe(true);
    expect(JSON.parse(readFileSync(resultFile, 'utf8'))).toMatchObject({
      outcome: 'refused',
      reason: expect.stringMatching(/may not workers\.deploy/),
    });

    // Each outcome is in the eu audit trail, under the identity that signed it.
    clients = await connect(state);
    try {
      await flushAudit(clients.client, 'eu');
      // That run went on, on the new release's workers: it auto-upgraded at its next task.
      const ranOn = (
        (await clients.client.workflow.getHandle(auditTrailWorkflowId('eu'), trailRun).fetchHistory()).events ?? []
      ).flatMap((e) => {
        const identity = e.workflowTaskStartedEventAttributes?.identity;
        return identity ? [identity] : [];
      });
      const newPids = after.workers.map((w) => `:${w.pid}`);
      expect(
        ranOn.some((i) => newPids.some((p) => i.endsWith(p))),
        ranOn.join(', '),
      ).toBe(true);
    } finally {
      await clients.close();
    }
    const events = auditEvents('workers.deployed');
    expect(events.map((e) => [e.outcome, e.principal.role])).toEqual([
      ['success', 'ops'],
      ['denied', 'ops'],
      ['denied', 'steward'],
    ]);
    expect(events[0]!.details).toMatchObject({ buildId: result.buildId, previous: before.current });
  });

  // `STEWARD_RECORD_HISTORIES=replicationWorkflow npm run test:production`: the replication workflow runs only on this
  // profile (it needs a DR site), so its history fixture is recorded here rather than by `npm run fixtures:histories`.
  it.runIf(RECORD_HISTORIES.includes('replicationWorkflow'))(
    "records the replication workflow's history fixture from a run that continued as new",
    async () => {
      const clients: TestClients = await connect(state);
      try {
        const continued = async () => {
          for await (const run of clients.client.workflow.list({
            query: `WorkflowType = 'replicationWorkflow' AND ExecutionStatus = 'ContinuedAsNew'`,
          })) {
            return run;
          }
          return undefined;
        };
        for (const deadline = Date.now() + 400_000; Date.now() < deadline && !(await continued());) await sleep(5000);
        expect(await recordHistoryFixtures(clients.client, clients.keys, ['replicationWorkflow'])).toEqual([]);
      } finally {
        await clients.close();
      }
    },
    500_000,
  );

  it('keeps workflows across a full restart: one started before `down` finishes after `up`', async () => {
    let clients: TestClients = await connect(state);
    const { handle, pkg } = await submitUntilCurating(clients, {
      studyId: 'ST-RESTART',
      rows: 3000,
      subjects: 40,
      seed: 5,
    });
    await clients.close();
    const down = steward('down');
    expect(down.code, down.stderr).toBe(0);
    const up = steward('up', '--detach', '--jurisdictions', 'eu,us');
    expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0);
    state = readStackState(dataDir)!;
    expect(state.profile).toBe('production');
    // The workers run this installation again: `up` replayed the running workflows against it and made it current.
    expect(up.stderr).toContain(`steward-eu: build ${installedBuild} is now current`);
    expect(state.workers.every((w) => w.buildId === installedBuild)).toBe(true);
    clients = await connect(state);
    try {
      const result = await clients.client.workflow.getHandle(handle.workflowId).result();
      expect(result.outcome).toBe('curated');
      expect(result.record.packageId).toBe(pkg.packageId);
      const description = await clients.client.workflow.getHandle(handle.workflowId).describe();
      expect(description.taskQueue).toBe(ingestTaskQueue('eu'));
    } finally {
      await clients.close();
    }
  });
});
