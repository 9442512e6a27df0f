import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { bundleWorkflowCode, type BundleOptions } from '@temporalio/worker';
import { driftScheduleId, retentionScheduleId, searchAttributeFlags } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import type { StackState, TemporalEndpoint } from '../../schemas/config';
import { connectClient, FAILURE_CONVERTER_PATH } from '../client/temporal';
import { ensureRetentionSchedule } from '../retention/schedule';
import { grantEvent, issueCodecGrant, newGrantId } from '../codec/grant';
import { appendAudit } from '../client/audit';
import { jurisdictionMessageKey } from '../auth/messages';
import { startEmbeddedCodecServer, writeCodecGrant, type RunningCodecServer } from '../codec/embedded';
import { openDemoIdentity } from '../pki/identity';
import { FileKeyStore } from '../crypto/keystore';
import { StewardAuthority } from '../pki/authority';
import { ensureDemoIdentities } from '../pki/identity';
import { stackFile } from '../runtime/config';
import { confineBuckets, ensureJurisdictionBuckets } from '../storage/buckets';
import { ensureDriftSchedule } from '../qualification/drift-schedule';
import { ensureS3Account, jurisdictionAccount, rootCredentials } from '../storage/accounts';
import { createS3Client } from '../storage/s3';
import {
  clusterConfig,
  dynamicConfig,
  ensureNamespace,
  parsePostgresUrl,
  prepareTemporalDatabases,
  productionSettings,
  spawnTemporalService,
  TEMPORAL_SERVICES,
} from './cluster';
import { ensureDeploymentPki, TLS_NAMES } from './deploy-pki';
import { freePort } from './ports';
import { Supervisor, tailOfLog, type StackEvent } from './supervisor';
import { ensureTool, toolVersion } from './tools';

export type { StackEvent } from './supervisor';
export { tailOfLog } from './supervisor';

export interface StackOptions {
  dataDir: string;
  jurisdictions: string[];
  onEvent?: (event: StackEvent) => void;
  /** Extra environment for worker processes (e.g. STEWARD_WORKER_MEMORY_MB). */
  workerEnv?: Record<string, string>;
  /** Changes the workflow bundle's Webpack configuration (the benchmark swaps a module this way). */
  webpackConfigHook?: BundleOptions['webpackConfigHook'];
  /** Temporal dynamic configuration values (JSON), e.g. a lower history length at which to suggest continue-as-new. */
  temporalDynamicConfig?: Record<string, string | number | boolean>;
  /**
   * The production profile: a Temporal cluster (frontend, history, matching and worker as separate processes) on
   * PostgreSQL with SQL visibility, mutual TLS on every Temporal connection. `postgres` is needed on first start only;
   * the data dir records it.
   */
  production?: { postgres?: string | undefined; databasePrefix?: string | undefined };
}

export type StackProfile = 'embedded' | 'production';

function isWorkerSource(): boolean {
  return __filename.endsWith('.ts');
}

/** The workflows entry file, as source (.ts) when running from source, else compiled (.js). */
export function workflowsPath(): string {
  return path.join(__dirname, '..', '..', 'workflows', isWorkerSource() ? 'index.ts' : 'index.js');
}

export function workerEntry(): { command: string; args: string[] } {
  if (isWorkerSource()) {
    return {
      command: process.execPath,
      args: ['--import', require.resolve('tsx'), path.join(__dirname, '..', '..', 'workers', 'main.ts')],
    };
  }
  return { command: process.execPath, args: [path.join(__dirname, '..', '..', 'workers', 'main.js')] };
}

/** STEWARD_WORKER_MEMORY_MB caps a worker's JS heap; DuckDB's share is set by the worker from the same figure. */
function memoryFlags(workerEnv: Record<string, string> | undefined): string[] {
  const mb = Number(workerEnv?.STEWARD_WORKER_MEMORY_MB ?? process.env.STEWARD_WORKER_MEMORY_MB);
  return Number.isFinite(mb) && mb > 0 ? [`--max-old-space-size=${Math.max(64, Math.floor(mb / 2))}`] : [];
}

async function retryUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T>, log: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await fn();
    } catch (error) {
      last = error;
      await sleep(250);
    }
  }
  throw new Error(
    `${what} did not become healthy within ${timeoutMs / 1000}s: ${(last as Error)?.message ?? last}\nlast lines of ${log}:\n${tailOfLog(log)}`,
  );
}

/**
 * The embedded stack: Temporal dev server, versitygw, and one worker per jurisdiction, on free loopback ports, with
 * state under one data directory. Children that crash are reported and restarted.
 */
export class Stack {
  private readonly supervisor: Supervisor;
  private codec: RunningCodecServer | undefined;
  state!: StackState;

  private constructor(private readonly options: StackOptions) {
    this.supervisor = new Supervisor(
      path.join(options.dataDir, 'logs'),
      (event) => this.emit(event),
      () => this.writeState(),
    );
  }

  static async start(options: StackOptions): Promise<Stack> {
    const stack = new Stack(options);
    try {
      await stack.boot();
    } catch (error) {
      await stack.stop();
      throw error;
    }
    return stack;
  }

  private emit(event: StackEvent): void {
    this.options.onEvent?.(event);
  }

  private async boot(): Promise<void> {
    const { dataDir } = this.options;
    const jurisdictions = this.options.jurisdictions.map(getJurisdiction);
    for (const dir of ['logs', 'temporal', 's3/data', 's3/versions', 's3/iam']) {
      await mkdir(path.join(dataDir, dir), { recursive: true });
    }
    const step = (message: string) => this.emit({ kind: 'step', message });
    const production = this.options.production ? await productionSettings(dataDir, this.options.production) : undefined;
    const temporalBin = await ensureTool(production ? 'temporal-server' : 'temporal', step);
    const versitygwBin = await ensureTool('versitygw', step);
    const versitygwVersion = toolVersion(versitygwBin);
    const credentials = await rootCredentials(dataDir);
    const [devGrpcPort, uiPort, httpPort, metricsPort, s3Port, codecPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const grpcPort = production ? production.ports.frontend.grpc : devGrpcPort;
    const temporalAddress = `127.0.0.1:${grpcPort}`;
    const deployPki = production ? await ensureDeploymentPki(path.join(dataDir, 'deploy-pki')) : undefined;
    const temporalEndpoint: TemporalEndpoint = {
      address: temporalAddress,
      namespace: 'default',
      ...(deployPki
        ? {
            tls: {
              serverName: TLS_NAMES.frontend,
              caFile: deployPki.caFile,
              certFile: deployPki.client.certFile,
              keyFile: deployPki.client.keyFile,
            },
          }
        : {}),
    };
    const s3Endpoint = `http://127.0.0.1:${s3Port}`;
    const keys = await FileKeyStore.open(path.join(dataDir, 'keys'), process.env.STEWARD_MASTER_KEY);
    const pkiDir = process.env.STEWARD_PKI_DIR ?? path.join(dataDir, 'pki');

    // The codec server first: the Web UI is told where it is when the dev server starts. It answers only once the CA
    // and the UI's grant exist (a few steps below).
    const codecUrl = `http://127.0.0.1:${codecPort}`;
    const uiGrant = newGrantId();
    const auditJurisdiction = jurisdictions[0]!.id;
    step(`starting the codec server on ${codecUrl}`);
    this.codec = await startEmbeddedCodecServer({
      dataDir,
      keys,
      pkiDir,
      port: codecPort,
      jurisdiction: auditJurisdiction,
      auditJurisdictions: jurisdictions.map((j) => j.id),
      uiOrigins: [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
      temporal: temporalEndpoint,
    });

    if (production) {
      await this.startCluster(production, temporalEndpoint, step);
    } else {
      step(`starting Temporal dev server on ${temporalAddress}`);
      this.supervisor.add('temporal', () =>
        spawn(
          temporalBin,
          [
            'server',
            'start-dev',
            '--ip',
            '127.0.0.1',
            '--port',
            String(grpcPort),
            '--ui-port',
            String(uiPort),
            '--http-port',
            String(httpPort),
            '--metrics-port',
            String(metricsPort),
            '--db-filename',
            path.join(dataDir, 'temporal', 'temporal.db'),
            '--log-level',
            'warn',
            '--ui-codec-endpoint',
            `${codecUrl}/grant/${uiGrant}`,
            ...searchAttributeFlags(),
            ...Object.entries(this.options.temporalDynamicConfig ?? {}).flatMap(([key, value]) => [
              '--dynamic-config-value',
              `${key}=${JSON.stringify(value)}`,
            ]),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
    }

    step(`starting versitygw on ${s3Endpoint}`);
    this.supervisor.add('versitygw', () =>
      spawn(
        versitygwBin,
        [
          '--port',
          `127.0.0.1:${s3Port}`,
          '--iam-dir',
          path.join(dataDir, 's3', 'iam'),
          '--health',
          '/health',
          // versitygw closes each connection after one request unless told otherwise: every S3 call then pays a new
          // TCP connection on both sides.
          '--keep-alive',
          '--quiet',
          'posix',
          '--versioning-dir',
          path.join(dataDir, 's3', 'versions'),
          path.join(dataDir, 's3', 'data'),
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            ROOT_ACCESS_KEY_ID: credentials.accessKeyId,
            ROOT_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          },
        },
      ),
    );

    const s3Config = { endpoint: s3Endpoint, region: 'us-east-1', forcePathStyle: true, ...credentials };
    const s3 = createS3Client(s3Config);
    await retryUntil(
      'versitygw',
      30_000,
      () => s3.send(new ListBucketsCommand({})),
      this.supervisor.logOf('versitygw'),
    );
    if (production) {
      await ensureNamespace(temporalEndpoint, 120_000).catch((error: Error) => {
        throw new Error(
          `${error.message}\nlast lines of ${this.supervisor.logOf('temporal-frontend')}:\n${tailOfLog(this.supervisor.logOf('temporal-frontend'))}`,
        );
      });
    } else {
      await retryUntil(
        'Temporal dev server',
        90_000,
        () => temporalReady(temporalAddress),
        this.supervisor.logOf('temporal'),
      );
    }

    step('creating jurisdiction buckets and storage accounts');
    const accounts = new Map<string, { accessKeyId: string; secretAccessKey: string }>();
    for (const jurisdiction of jurisdictions) {
      await ensureJurisdictionBuckets(s3, jurisdiction);
      const account = await jurisdictionAccount(dataDir, jurisdiction.id);
      await ensureS3Account(versitygwBin, s3Endpoint, credentials, account);
      // Each jurisdiction's buckets answer its own account only: storage itself keeps data in its jurisdiction.
      await confineBuckets(s3, jurisdiction, [account.accessKeyId]);
      accounts.set(jurisdiction.id, account);
    }
    s3.destroy();

    step('preparing the Steward CA, evidence signers and demo identities');
    const authority = await StewardAuthority.open(pkiDir, keys);
    for (const jurisdiction of jurisdictions) await authority.signer(jurisdiction.id);
    await ensureDemoIdentities(
      authority,
      path.join(dataDir, 'identities'),
      jurisdictions.map((j) => j.id),
    );
    // The Web UI decodes as the demo ops identity, through a grant valid while this stack runs (a week at most).
    const demoOps = openDemoIdentity(path.join(dataDir, 'identities', 'ops'));
    const grant = issueCodecGrant(demoOps, { jurisdiction: auditJurisdiction, hours: 7 * 24, grantId: uiGrant });
    await writeCodecGrant(path.join(dataDir, 'codec', 'grants'), grant);

    step('bundling workflow code');
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    const { code } = await bundleWorkflowCode({
      workflowsPath: workflowsPath(),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      ...(this.options.webpackConfigHook ? { webpackConfigHook: this.options.webpackConfigHook } : {}),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    });
    await writeFile(bundlePath, code);

    this.state = {
      format: 'steward-stack/1',
      pid: process.pid,
      startedAt: new Date().toISOString(),
      dataDir,
      profile: production ? 'production' : 'embedded',
      temporal: { ...temporalEndpoint, uiUrl: production ? '' : `http://127.0.0.1:${uiPort}`, pid: null },
      s3: { ...s3Config, pid: null },
      jurisdictions: Object.fromEntries(
        jurisdictions.map((j) => [j.id, { buckets: { ...j.buckets }, account: accounts.get(j.id)! }]),
      ),
      workers: [],
      codec: { url: codecUrl, uiEndpoint: `${codecUrl}/grant/${uiGrant}`, auditJurisdiction },
    };

    const { command, args } = workerEntry();
    /** A worker process with its storage account: it serves one jurisdiction, or (the inspector) reads settings. */
    const startWorker = (name: string, account: { accessKeyId: string; secretAccessKey: string }, env: object) =>
      this.supervisor.add(
        name,
        () =>
          spawn(command, [...memoryFlags(this.options.workerEnv), ...args], {
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
            env: {
              ...process.env,
              ...this.options.workerEnv,
              STEWARD_DATA_DIR: dataDir,
              STEWARD_TEMPORAL_ADDRESS: temporalAddress,
              STEWARD_TEMPORAL_NAMESPACE: 'default',
              ...(temporalEndpoint.tls
                ? {
                    STEWARD_TEMPORAL_TLS_CERT: temporalEndpoint.tls.certFile,
                    STEWARD_TEMPORAL_TLS_KEY: temporalEndpoint.tls.keyFile,
                    STEWARD_TEMPORAL_TLS_CA: temporalEndpoint.tls.caFile!,
                    STEWARD_TEMPORAL_TLS_SERVER_NAME: temporalEndpoint.tls.serverName!,
                  }
                : {}),
              STEWARD_S3_ENDPOINT: s3Endpoint,
              STEWARD_S3_REGION: 'us-east-1',
              STEWARD_S3_ACCESS_KEY_ID: account.accessKeyId,
              STEWARD_S3_SECRET_ACCESS_KEY: account.secretAccessKey,
              ...env,
            },
          }),
        (child) => workerReady(child, name),
      );
    for (const jurisdiction of jurisdictions) {
      step(`starting ${jurisdiction.id} worker`);
      startWorker(`worker-${jurisdiction.id}`, accounts.get(jurisdiction.id)!, {
        STEWARD_JURISDICTION: jurisdiction.id,
        STEWARD_WORKFLOW_BUNDLE: bundlePath,
        // Recorded in preprocessing run documentation.
        ...(versitygwVersion ? { STEWARD_VERSITYGW_VERSION: versitygwVersion } : {}),
        // Hashed by the installation qualification (IQ).
        STEWARD_TEMPORAL_BIN: temporalBin,
        STEWARD_VERSITYGW_BIN: versitygwBin,
      });
    }
    // The storage inspector: the only process given storage's administrator credentials besides this one; it reads
    // bucket settings for the installation qualification and does nothing else.
    step('starting the storage inspector');
    startWorker('storage-inspector', credentials, {
      STEWARD_WORKER_ROLE: 'inspector',
      STEWARD_INSPECT_JURISDICTIONS: jurisdictions.map((j) => j.id).join(','),
    });
    await this.supervisor.ready();

    step('scheduling retention sweeps');
    const client = await connectClient(temporalEndpoint, keys);
    try {
      for (const jurisdiction of jurisdictions) {
        const created = await ensureRetentionSchedule(client, jurisdiction.id);
        step(`${created ? 'created' : 'kept'} schedule ${retentionScheduleId(jurisdiction.id)}`);
        const drift = await ensureDriftSchedule(client, jurisdiction.id);
        step(`${drift ? 'created' : 'kept'} schedule ${driftScheduleId(jurisdiction.id)}`);
      }
      await appendAudit(
        client,
        await jurisdictionMessageKey(keys, auditJurisdiction),
        auditJurisdiction,
        [grantEvent(grant, { id: demoOps.info.name, role: 'ops', serial: demoOps.info.serial })],
        'steward-stack',
      );
    } finally {
      await client.connection.close();
    }
    this.supervisor.running = true;
    await this.writeState();
  }

  /**
   * Temporal's databases brought to this release's schema, the server's configuration written under the data dir, and
   * each of its services started as a supervised process of its own.
   */
  private async startCluster(
    settings: Awaited<ReturnType<typeof productionSettings>>,
    endpoint: TemporalEndpoint,
    step: (message: string) => void,
  ): Promise<void> {
    const { dataDir } = this.options;
    const serverBin = await ensureTool('temporal-server', step);
    const sqlTool = await ensureTool('temporal-sql-tool', step);
    const pg = parsePostgresUrl(settings.postgres);
    step(`preparing Temporal's databases on PostgreSQL ${pg.host}:${pg.port}${pg.tls ? ' (TLS)' : ''}`);
    prepareTemporalDatabases(sqlTool, pg, settings.databasePrefix, step);
    const pki = await ensureDeploymentPki(path.join(dataDir, 'deploy-pki'));
    const dir = path.join(dataDir, 'temporal');
    const dynamicConfigFile = path.join(dir, 'dynamicconfig.yaml');
    const configFile = path.join(dir, 'cluster.yaml');
    await writeFile(dynamicConfigFile, dynamicConfig(this.options.temporalDynamicConfig ?? {}), { mode: 0o600 });
    await writeFile(configFile, clusterConfig(settings, pki, dynamicConfigFile, { frontendIp: '127.0.0.1' }), {
      mode: 0o600,
    });
    for (const service of TEMPORAL_SERVICES) {
      step(`starting Temporal ${service} on 127.0.0.1:${settings.ports[service].grpc} (mutual TLS)`);
      this.supervisor.add(`temporal-${service}`, () => spawnTemporalService(serverBin, configFile, service));
    }
    step(`waiting for the Temporal cluster at ${endpoint.address}`);
  }

  /** Resolves never; rejects when a child crashes more often than it may be restarted. */
  failed(): Promise<never> {
    return this.supervisor.failed();
  }

  private async writeState(): Promise<void> {
    if (!this.state) return;
    this.state.temporal.pid = this.supervisor.pidOf(this.options.production ? 'temporal-frontend' : 'temporal');
    this.state.s3.pid = this.supervisor.pidOf('versitygw');
    const inspector = this.supervisor.children('storage-inspector')[0];
    if (inspector) this.state.inspector = { pid: inspector.pid, restarts: inspector.restarts };
    this.state.workers = this.supervisor.children('worker-').map((w) => ({
      jurisdiction: w.name.slice('worker-'.length),
      pid: w.pid,
      restarts: w.restarts,
    }));
    await writeFile(stackFile(this.options.dataDir), JSON.stringify(this.state, null, 2), { mode: 0o600 });
  }

  /** Stops workers first (they finish or hand back their tasks), then the servers. Safe to call twice. */
  async stop(): Promise<void> {
    await this.supervisor.stop(['worker-']);
    await this.codec?.close();
    if (this.state) await rm(stackFile(this.options.dataDir), { force: true });
  }
}

/** The dev server answers, and has registered Steward's search attributes (it does so right after it starts serving). */
async function temporalReady(address: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    await connection.workflowService.getSystemInfo({});
    const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    if (!attrs.customAttributes || !('RequestKind' in attrs.customAttributes))
      throw new Error('search attributes pending');
  } finally {
    await connection.close();
  }
}

/** A worker process says `ready` over IPC once it polls its task queue. */
function workerReady(child: ChildProcess, name: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 120s`)), 120_000);
    child.on('message', (message: { type?: string }) => {
      if (message?.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} while starting`));
    });
  });
}

export { isAlive } from './process';
