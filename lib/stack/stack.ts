import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { Connection, type Client } from '@temporalio/client';
import { bundleWorkflowCode, type BundleOptions } from '@temporalio/worker';
import yaml from 'js-yaml';
import { z } from 'zod';
import {
  driftScheduleId,
  ingestTaskQueue,
  replicationWorkflowId,
  retentionScheduleId,
  searchAttributeFlags,
} from '../../contracts';
import { ensureReplication } from '../client/replication';
import { getJurisdiction, siteRoles, type ActiveSite } from '../../jurisdictions';
import type { StackState, TemporalEndpoint } from '../../schemas/config';
import type { AuditAction } from '../../schemas/audit';
import { replicateBucket } from '../storage/replication';
import { connectClient, FAILURE_CONVERTER_PATH, stewardDataConverter } from '../client/temporal';
import { ensureRetentionSchedule } from '../retention/schedule';
import { grantEvent, issueCodecGrant, newGrantId } from '../codec/grant';
import { appendAudit } from '../client/audit';
import { jurisdictionMessageKey } from '../auth/messages';
import { startEmbeddedCodecServer, writeCodecGrant, type RunningCodecServer } from '../codec/embedded';
import { openDemoIdentity } from '../pki/identity';
import { FileKeyStore, type KeyStore } from '../crypto/keystore';
import { verifyRequest } from '../auth/request';
import { bodyOf } from '../client/request';
import { SignedRequestSchema } from '../../schemas/request';
import { INSTALL_ROOT } from '../runtime/install';
import { StewardAuthority, TrustAnchor } from '../pki/authority';
import { ensureDemoIdentities } from '../pki/identity';
import { stackFile } from '../runtime/config';
import { writeFileAtomic } from '../runtime/files';
import { confineBuckets, ensureJurisdictionBuckets } from '../storage/buckets';
import { ensureDriftSchedule } from '../qualification/drift-schedule';
import { ensureS3Account, jurisdictionAccount, rootCredentials, storedCredentials } from '../storage/accounts';
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
  type ProductionSettings,
} from './cluster';
import { ensureDeploymentPki, TLS_NAMES, type DeploymentPki } from './deploy-pki';
import { canIsolateSites, createNetworks, inNetns, removeNetworks, type JurisdictionNetwork } from './netns';
import { freePort } from './ports';
import { Supervisor, tailOfLog, type StackEvent } from './supervisor';
import { ensureTool, toolVersion } from './tools';
import { recordedHistories, replayHistories, runningHistories, type ReplayReport } from './replay-gate';
import { buildIdOf, currentBuildId, deployFolders, deploymentName, setCurrentBuildId } from './versions';

export type { StackEvent } from './supervisor';
export { tailOfLog } from './supervisor';

export interface StackOptions {
  dataDir: string;
  jurisdictions: string[];
  onEvent?: (event: StackEvent) => void;
  /** Worker processes per jurisdiction, all on the jurisdiction's task queues (default 1). */
  workersPerJurisdiction?: number;
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
  production?: {
    postgres?: string | undefined;
    databasePrefix?: string | undefined;
    /** Each storage site and each jurisdiction's workers in network namespaces of their own (default: when root). */
    isolateSites?: boolean | undefined;
  };
}

/** Where a jurisdiction's buckets live: the embedded versitygw, or the production profile's site of its own. */
interface Site {
  /** The supervised process's name. */
  name: string;
  /** As the host reaches it. */
  endpoint: string;
  /** As the jurisdiction's workers reach it. */
  workerEndpoint: string;
  root: { accessKeyId: string; secretAccessKey: string };
  caFile?: string;
  network?: JurisdictionNetwork;
  /** The site's own network namespace, where it has one. */
  netns?: string | undefined;
}

function siteEndpoint(site: Site, account: { accessKeyId: string; secretAccessKey: string }) {
  return {
    endpoint: site.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    ...account,
    ...(site.caFile ? { caFile: site.caFile } : {}),
  };
}

/** versitygw on the posix backend under `dir` (data, versions, flat-file IAM); HTTPS when given a certificate. */
function spawnVersitygw(
  bin: string,
  dir: string,
  listen: string,
  root: { accessKeyId: string; secretAccessKey: string },
  options: { certificate?: { certFile: string; keyFile: string }; netns?: string | undefined } = {},
): ChildProcess {
  const run = inNetns(options.netns, bin, [
    '--port',
    listen,
    '--iam-dir',
    path.join(dir, 'iam'),
    '--health',
    '/health',
    ...(options.certificate ? ['--cert', options.certificate.certFile, '--key', options.certificate.keyFile] : []),
    // versitygw closes each connection after one request unless told otherwise: every S3 call then pays a new TCP
    // connection on both sides.
    '--keep-alive',
    '--quiet',
    'posix',
    '--versioning-dir',
    path.join(dir, 'versions'),
    path.join(dir, 'data'),
  ]);
  return spawn(run.command, run.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ROOT_ACCESS_KEY_ID: root.accessKeyId, ROOT_SECRET_ACCESS_KEY: root.secretAccessKey },
  });
}

export type StackProfile = 'embedded' | 'production';

function isWorkerSource(): boolean {
  return __filename.endsWith('.ts');
}

/** The workflows entry file, as source (.ts) when running from source, else compiled (.js). */
export function workflowsPath(): string {
  return path.join(__dirname, '..', '..', 'workflows', isWorkerSource() ? 'index.ts' : 'index.js');
}

export function workerEntry(releaseRoot?: string): { command: string; args: string[] } {
  // Another release runs from its own source checkout, with its own dependencies.
  if (releaseRoot && path.resolve(releaseRoot) !== INSTALL_ROOT) {
    return {
      command: process.execPath,
      args: [
        '--import',
        require.resolve('tsx', { paths: [releaseRoot] }),
        path.join(releaseRoot, 'workers', 'main.ts'),
      ],
    };
  }
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
  /** The data dir whose network namespaces this stack created (removed on stop). */
  private networksOf: string | undefined;
  /** Starts a jurisdiction's workers of a release; set once the stack's sites and accounts exist. */
  private startJurisdictionWorkers!: (jurisdiction: string, release: Release) => string[];
  /** The last worker instance number per jurisdiction, and the release each worker runs. */
  private readonly instances = new Map<string, number>();
  private readonly workerBuilds = new Map<string, Release>();
  private deployContext: { keys: KeyStore; temporal: TemporalEndpoint; pkiDir: string } | undefined;
  /** Which site each jurisdiction's workers write to; the primary unless `steward dr failover` moved them. */
  private readonly active = new Map<string, ActiveSite>();
  /** A jurisdiction's two sites as this process reaches them, and its storage account; set once they exist. */
  private sitesOf!: (jurisdiction: string) => {
    primary: Site;
    dr: Site | undefined;
    account: { accessKeyId: string; secretAccessKey: string };
  };
  /** Deploys and failovers run one at a time, in the order they are asked for. */
  private deploying: Promise<void> = Promise.resolve();
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
    // Each site and each jurisdiction's workers in network namespaces of their own (production, root with iproute2).
    const isolate = production ? (this.options.production?.isolateSites ?? canIsolateSites()) : false;
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
    if (production) this.deployContext = { keys, temporal: temporalEndpoint, pkiDir };

    // The codec server first: the Web UI is told where it is when the dev server starts. It answers only once the CA
    // and the UI's grant exist (a few steps below).
    const codecUrl = `${deployPki ? 'https' : 'http'}://127.0.0.1:${codecPort}`;
    const uiScheme = deployPki ? 'https' : 'http';
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
      uiOrigins: [`${uiScheme}://127.0.0.1:${uiPort}`, `${uiScheme}://localhost:${uiPort}`],
      temporal: temporalEndpoint,
      tls: deployPki?.codec,
    });

    if (production) {
      await this.startCluster(production, deployPki!, temporalEndpoint, isolate, step);
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

    const { primary: sites, dr: drSites } = production
      ? await this.startSites(
          versitygwBin,
          deployPki!,
          jurisdictions.map((j) => j.id),
          isolate,
          step,
        )
      : {
          primary: new Map(
            jurisdictions.map((j) => [
              j.id,
              { name: 'versitygw', endpoint: s3Endpoint, workerEndpoint: s3Endpoint, root: credentials } as Site,
            ]),
          ),
          dr: new Map<string, Site>(),
        };
    // Every storage process, each jurisdiction's primary and DR site alike.
    const everySite = [...sites.entries(), ...drSites.entries()];
    if (!production) {
      step(`starting versitygw on ${s3Endpoint}`);
      this.supervisor.add('versitygw', () =>
        spawnVersitygw(versitygwBin, path.join(dataDir, 's3'), `127.0.0.1:${s3Port}`, credentials),
      );
    }
    const siteClients = new Map(
      everySite.map(([, site]) => [site.name, createS3Client(siteEndpoint(site, site.root))]),
    );
    // Once per storage process: the embedded versitygw serves every jurisdiction.
    for (const [name, client] of siteClients) {
      await retryUntil(
        `versitygw (${name})`,
        30_000,
        () => client.send(new ListBucketsCommand({})),
        this.supervisor.logOf(name),
      );
    }
    if (production) {
      await ensureNamespace(temporalEndpoint, 120_000).catch((error: Error) => {
        throw new Error(
          `${error.message}\nlast lines of ${this.supervisor.logOf('temporal-frontend')}:\n${tailOfLog(this.supervisor.logOf('temporal-frontend'))}`,
        );
      });
      await this.startWebUi(deployPki!, temporalEndpoint, uiPort, `${codecUrl}/grant/${uiGrant}`, step);
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
    for (const [id, site] of everySite) {
      const jurisdiction = getJurisdiction(id);
      const s3 = siteClients.get(site.name)!;
      // The DR site holds the same buckets, with the same Object Lock and versioning, for the same account.
      await ensureJurisdictionBuckets(s3, jurisdiction);
      const account = await jurisdictionAccount(dataDir, jurisdiction.id);
      await ensureS3Account(versitygwBin, site.endpoint, site.root, account, site.caFile);
      // Each jurisdiction's buckets answer its own account only: storage itself keeps data in its jurisdiction.
      await confineBuckets(s3, jurisdiction, [account.accessKeyId]);
      accounts.set(jurisdiction.id, account);
    }
    for (const client of siteClients.values()) client.destroy();
    const firstSite = sites.get(jurisdictions[0]!.id)!;
    this.sitesOf = (id) => ({ primary: sites.get(id)!, dr: drSites.get(id), account: accounts.get(id)! });
    if (production) {
      const saved = await readFile(activeSitesFile(dataDir), 'utf8').then(
        (text) => ActiveSitesSchema.parse(JSON.parse(text)),
        () => ({}) as Record<string, ActiveSite>,
      );
      for (const [id, active] of Object.entries(saved)) {
        if (drSites.has(id) && active === 'dr') {
          this.active.set(id, 'dr');
          step(`${id}: failed over to ${getJurisdiction(id).sites.dr.name} (\`steward dr failback\` returns)`);
        }
      }
    }

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
    // In the production profile workers run versions of a Worker Deployment: each release's bundle is kept by build id.
    const release = await bundleRelease(
      dataDir,
      INSTALL_ROOT,
      production !== undefined,
      this.options.webpackConfigHook,
    );

    this.state = {
      format: 'steward-stack/1',
      pid: process.pid,
      startedAt: new Date().toISOString(),
      dataDir,
      profile: production ? 'production' : 'embedded',
      temporal: { ...temporalEndpoint, uiUrl: `${uiScheme}://127.0.0.1:${uiPort}`, pid: null },
      s3: { ...siteEndpoint(firstSite, firstSite.root), pid: null },
      jurisdictions: Object.fromEntries(
        jurisdictions.map((j) => {
          const site = sites.get(j.id)!;
          const dr = drSites.get(j.id);
          return [
            j.id,
            {
              buckets: { ...j.buckets },
              account: accounts.get(j.id)!,
              ...(production
                ? {
                    storage: {
                      site: site.name,
                      endpoint: site.endpoint,
                      workerEndpoint: site.workerEndpoint,
                      caFile: site.caFile!,
                      ...(site.network ? { netns: site.network.siteNetns, workerNetns: site.network.workerNetns } : {}),
                      pid: null,
                      ...(dr
                        ? {
                            dr: {
                              site: dr.name,
                              endpoint: dr.endpoint,
                              workerEndpoint: dr.workerEndpoint,
                              ...(dr.netns ? { netns: dr.netns } : {}),
                              pid: null,
                            },
                          }
                        : {}),
                    },
                  }
                : {}),
            },
          ];
        }),
      ),
      workers: [],
      codec: { url: codecUrl, uiEndpoint: `${codecUrl}/grant/${uiGrant}`, auditJurisdiction },
    };

    /**
     * A worker process with its storage account at a site: it serves one jurisdiction, or (the inspector) reads
     * settings. A jurisdiction's workers run in its workers' network namespace where there is one.
     */
    const startWorker = (
      name: string,
      account: { accessKeyId: string; secretAccessKey: string },
      site: { endpoint: string; caFile?: string | undefined; netns?: string | undefined; temporal?: string },
      env: object,
      releaseRoot = INSTALL_ROOT,
    ) =>
      this.supervisor.add(
        name,
        () => {
          const { command, args } = workerEntry(releaseRoot);
          const run = inNetns(site.netns, command, [...memoryFlags(this.options.workerEnv), ...args]);
          return spawn(run.command, run.args, {
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
            env: {
              ...process.env,
              ...this.options.workerEnv,
              STEWARD_DATA_DIR: dataDir,
              STEWARD_TEMPORAL_ADDRESS: site.temporal ?? temporalAddress,
              STEWARD_TEMPORAL_NAMESPACE: 'default',
              ...(temporalEndpoint.tls
                ? {
                    STEWARD_TEMPORAL_TLS_CERT: temporalEndpoint.tls.certFile,
                    STEWARD_TEMPORAL_TLS_KEY: temporalEndpoint.tls.keyFile,
                    STEWARD_TEMPORAL_TLS_CA: temporalEndpoint.tls.caFile!,
                    STEWARD_TEMPORAL_TLS_SERVER_NAME: temporalEndpoint.tls.serverName!,
                  }
                : {}),
              STEWARD_S3_ENDPOINT: site.endpoint,
              STEWARD_S3_REGION: 'us-east-1',
              STEWARD_S3_ACCESS_KEY_ID: account.accessKeyId,
              STEWARD_S3_SECRET_ACCESS_KEY: account.secretAccessKey,
              ...(site.caFile ? { STEWARD_S3_CA_FILE: site.caFile } : {}),
              ...env,
            },
          });
        },
        (child) => workerReady(child, name),
      );
    /** Starts a jurisdiction's workers of a release: instance numbers go on counting across deploys. */
    this.startJurisdictionWorkers = (jurisdiction: string, workerRelease: Release) => {
      const primary = sites.get(jurisdiction)!;
      const failedOver = this.active.get(jurisdiction) === 'dr';
      // After a failover the workers write to the DR site and replicate to the primary.
      const roles = siteRoles({ primary, dr: drSites.get(jurisdiction) }, failedOver ? 'dr' : 'primary');
      // Only a stack with a DR site fails over: the site written to is the primary otherwise.
      const written = roles.active ?? primary;
      const dr = roles.standby;
      const site = { ...written, caFile: written.caFile ?? primary.caFile, network: primary.network };
      const temporalFromWorkers = site.network ? `${site.network.hostFromWorkers}:${grpcPort}` : undefined;
      const perJurisdiction = this.options.workersPerJurisdiction ?? 1;
      const names: string[] = [];
      // Several workers of a jurisdiction poll the same task queues, as hosts would: Temporal spreads the work.
      for (let n = 1; n <= perJurisdiction; n++) {
        const instance = (this.instances.get(jurisdiction) ?? 0) + 1;
        this.instances.set(jurisdiction, instance);
        const name = workerName(jurisdiction, instance);
        step(
          `starting ${jurisdiction} worker${perJurisdiction > 1 ? ` ${n} of ${perJurisdiction}` : ''}` +
            (workerRelease.buildId ? ` (build ${workerRelease.buildId})` : ''),
        );
        startWorker(
          name,
          accounts.get(jurisdiction)!,
          {
            endpoint: site.workerEndpoint,
            caFile: site.caFile,
            netns: site.network?.workerNetns,
            ...(temporalFromWorkers ? { temporal: temporalFromWorkers } : {}),
          },
          {
            STEWARD_JURISDICTION: jurisdiction,
            ...(dr ? { STEWARD_S3_DR_ENDPOINT: dr.workerEndpoint } : {}),
            ...(failedOver ? { STEWARD_S3_ACTIVE_SITE: 'dr' } : {}),
            STEWARD_WORKFLOW_BUNDLE: workerRelease.bundlePath,
            ...(workerRelease.buildId ? { STEWARD_WORKER_BUILD_ID: workerRelease.buildId } : {}),
            // Recorded in preprocessing run documentation.
            ...(versitygwVersion ? { STEWARD_VERSITYGW_VERSION: versitygwVersion } : {}),
            // Hashed by the installation qualification (IQ).
            STEWARD_TEMPORAL_BIN: temporalBin,
            STEWARD_VERSITYGW_BIN: versitygwBin,
          },
          workerRelease.root,
        );
        this.workerBuilds.set(name, workerRelease);
        names.push(name);
      }
      return names;
    };
    for (const jurisdiction of jurisdictions) this.startJurisdictionWorkers(jurisdiction.id, release);
    // The storage inspector: the only process given storage's administrator credentials besides this one; it reads
    // bucket settings for the installation qualification and does nothing else.
    if (production) {
      // Each site has its own administrator: one inspector per jurisdiction, on the host, with that site's root.
      for (const jurisdiction of jurisdictions) {
        const site = sites.get(jurisdiction.id)!;
        step(`starting the ${jurisdiction.id} storage inspector`);
        // On the host, where the site's host-side address is reached (not in the site's own namespace).
        startWorker(
          `storage-inspector-${jurisdiction.id}`,
          site.root,
          { endpoint: site.endpoint, caFile: site.caFile },
          {
            STEWARD_WORKER_ROLE: 'inspector',
            STEWARD_INSPECT_JURISDICTIONS: jurisdiction.id,
          },
        );
      }
    } else {
      step('starting the storage inspector');
      startWorker('storage-inspector', credentials, firstSite, {
        STEWARD_WORKER_ROLE: 'inspector',
        STEWARD_INSPECT_JURISDICTIONS: jurisdictions.map((j) => j.id).join(','),
      });
    }
    await this.supervisor.ready();

    const client = await connectClient(temporalEndpoint, keys);
    try {
      if (release.buildId) {
        for (const jurisdiction of jurisdictions) {
          await this.makeCurrent(client, jurisdiction.id, release, step, 'steward-stack');
        }
      }
      step('scheduling retention sweeps');
      for (const jurisdiction of jurisdictions) {
        const created = await ensureRetentionSchedule(client, jurisdiction.id);
        step(`${created ? 'created' : 'kept'} schedule ${retentionScheduleId(jurisdiction.id)}`);
        const drift = await ensureDriftSchedule(client, jurisdiction.id);
        step(`${drift ? 'created' : 'kept'} schedule ${driftScheduleId(jurisdiction.id)}`);
        if (drSites.has(jurisdiction.id)) {
          const started = await ensureReplication(client, jurisdiction.id);
          const { primary, dr } = jurisdiction.sites;
          step(
            `${started ? 'started' : 'kept'} replication ${primary.name} → ${dr.name} (${replicationWorkflowId(jurisdiction.id)})`,
          );
        }
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
   * The Temporal Web UI server (production profile): HTTPS with the deployment's certificate, mutual TLS to the
   * frontend, payloads decoded through the codec server under the stack's ops grant. It is read-only: terminating,
   * signalling, resetting or starting workflows from the UI is off, so every change goes through a signed request.
   */
  private async startWebUi(
    pki: DeploymentPki,
    endpoint: TemporalEndpoint,
    port: number,
    codecEndpoint: string,
    step: (message: string) => void,
  ): Promise<void> {
    const bin = await ensureTool('temporal-ui-server', step);
    const root = path.join(this.options.dataDir, 'ui');
    await mkdir(path.join(root, 'config'), { recursive: true });
    await writeFile(path.join(root, 'config', 'base.yaml'), '', { mode: 0o600 });
    await writeFile(path.join(root, 'config', 'production.yaml'), webUiConfig({ pki, endpoint, port, codecEndpoint }), {
      mode: 0o600,
    });
    const url = `https://127.0.0.1:${port}`;
    step(`starting the Temporal Web UI on ${url} (read-only)`);
    this.supervisor.add('temporal-ui', () =>
      spawn(bin, ['--root', root, '--config', 'config', '--env', 'production', 'start'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const ca = await readFile(pki.caFile);
    await retryUntil('Temporal Web UI', 60_000, () => httpsStatus(`${url}/`, ca), this.supervisor.logOf('temporal-ui'));
  }

  /**
   * Temporal's databases brought to this release's schema, the server's configuration written under the data dir, and
   * each of its services started as a supervised process of its own.
   */
  private async startCluster(
    settings: ProductionSettings,
    pki: DeploymentPki,
    endpoint: TemporalEndpoint,
    isolate: boolean,
    step: (message: string) => void,
  ): Promise<void> {
    const { dataDir } = this.options;
    const serverBin = await ensureTool('temporal-server', step);
    const sqlTool = await ensureTool('temporal-sql-tool', step);
    const pg = parsePostgresUrl(settings.postgres);
    step(`preparing Temporal's databases on PostgreSQL ${pg.host}:${pg.port}${pg.tls ? ' (TLS)' : ''}`);
    prepareTemporalDatabases(sqlTool, pg, settings.databasePrefix, step);
    const dir = path.join(dataDir, 'temporal');
    const dynamicConfigFile = path.join(dir, 'dynamicconfig.yaml');
    const configFile = path.join(dir, 'cluster.yaml');
    await writeFile(dynamicConfigFile, dynamicConfig(this.options.temporalDynamicConfig ?? {}), { mode: 0o600 });
    // Workers in their own network namespaces reach the frontend over their link to the host.
    const frontendIp = isolate ? '0.0.0.0' : '127.0.0.1';
    await writeFile(configFile, clusterConfig(settings, pki, dynamicConfigFile, { frontendIp }), {
      mode: 0o600,
    });
    // One after another: each service records the cluster's metadata in the database when it starts, and two doing so
    // at once on a new database collide. A service has done it once it listens for membership.
    for (const service of TEMPORAL_SERVICES) {
      step(`starting Temporal ${service} on 127.0.0.1:${settings.ports[service].grpc} (mutual TLS)`);
      const name = `temporal-${service}`;
      this.supervisor.add(name, () => spawnTemporalService(serverBin, configFile, service));
      await retryUntil(
        `Temporal ${service}`,
        60_000,
        () => tcpOpen(settings.ports[service].membership),
        this.supervisor.logOf(name),
      );
    }
    step(`waiting for the Temporal cluster at ${endpoint.address}`);
  }

  /**
   * The production profile's storage: one versitygw per jurisdiction with its own data directory, root credentials,
   * HTTPS certificate and port; where this process may (root with iproute2), each in a network namespace of its own
   * that only the jurisdiction's workers' namespace is linked to.
   */
  private async startSites(
    versitygwBin: string,
    pki: DeploymentPki,
    jurisdictionIds: string[],
    isolate: boolean,
    step: (message: string) => void,
  ): Promise<{ primary: Map<string, Site>; dr: Map<string, Site> }> {
    const { dataDir } = this.options;
    const networks = isolate ? createNetworks(dataDir, jurisdictionIds) : [];
    if (isolate) this.networksOf = dataDir;
    const sites = { primary: new Map<string, Site>(), dr: new Map<string, Site>() };
    for (const id of jurisdictionIds) {
      const network = networks.find((n) => n.jurisdiction === id);
      for (const role of ['primary', 'dr'] as const) {
        const name = `${id}-${role}`;
        const port = await freePort();
        const dir = path.join(dataDir, 'sites', name);
        for (const sub of ['data', 'versions', 'iam']) await mkdir(path.join(dir, sub), { recursive: true });
        const root = await storedCredentials(
          path.join(dir, 'credentials.json'),
          `STW${id.toUpperCase()}${role === 'dr' ? 'DR' : ''}ROOT`,
        );
        const fromHost = network ? (role === 'dr' ? network.drFromHost : network.siteFromHost) : '127.0.0.1';
        const fromWorkers = network ? (role === 'dr' ? network.drFromWorkers : network.siteFromWorkers) : '127.0.0.1';
        const netns = network ? (role === 'dr' ? network.drNetns : network.siteNetns) : undefined;
        const certificate = await pki.site(name, network ? [fromHost, fromWorkers] : ['127.0.0.1']);
        const site: Site = {
          name: `site-${name}`,
          endpoint: `https://${fromHost}:${port}`,
          workerEndpoint: `https://${fromWorkers}:${port}`,
          root,
          caFile: pki.caFile,
          ...(network ? { network, netns } : {}),
        };
        const label = getJurisdiction(id).sites[role];
        step(
          `starting ${role === 'dr' ? 'disaster-recovery' : 'primary'} storage site ${label.name} (${label.location}) ` +
            `on ${site.endpoint} (HTTPS${netns ? `, network namespace ${netns}` : ''})`,
        );
        this.supervisor.add(site.name, () =>
          spawnVersitygw(versitygwBin, dir, network ? `:${port}` : `127.0.0.1:${port}`, root, { certificate, netns }),
        );
        sites[role].set(id, site);
      }
    }
    return sites;
  }

  /** Resolves never; rejects when a child crashes more often than it may be restarted. */
  failed(): Promise<never> {
    return this.supervisor.failed();
  }

  /** Every process the stack supervises, by name, with its pid now and its restarts in the last minute. */
  processes(): { name: string; pid: number | null; restarts: number }[] {
    return this.supervisor.children('');
  }

  private async writeState(): Promise<void> {
    if (!this.state) return;
    this.state.temporal.pid = this.supervisor.pidOf(this.options.production ? 'temporal-frontend' : 'temporal');
    this.state.s3.pid = this.supervisor.pidOf('versitygw');
    for (const [id, j] of Object.entries(this.state.jurisdictions))
      if (j.storage) {
        j.storage.pid = this.supervisor.pidOf(j.storage.site);
        if (j.storage.dr) j.storage.dr.pid = this.supervisor.pidOf(j.storage.dr.site);
        // Which site the workers write to, for the CLI (`s3For`, `dr status`): `dr` after a failover.
        if (this.active.get(id) === 'dr') j.storage.active = 'dr';
        else delete j.storage.active;
      }
    const inspector = this.supervisor.children('storage-inspector')[0];
    if (inspector) this.state.inspector = { pid: inspector.pid, restarts: inspector.restarts };
    this.state.workers = this.supervisor.children('worker-').map((w) => {
      const buildId = this.workerBuilds.get(w.name)?.buildId;
      return {
        jurisdiction: workerJurisdiction(w.name),
        pid: w.pid,
        restarts: w.restarts,
        ...(buildId ? { buildId } : {}),
      };
    });
    await writeFileAtomic(stackFile(this.options.dataDir), JSON.stringify(this.state, null, 2), 0o600);
  }

  /**
   * Makes a release the jurisdiction's current worker version. When another version was current, workflows running now
   * will move to this one (every type auto-upgrades), so they are replayed against its bundle first, with the recorded
   * histories of every workflow type: a history that does not replay refuses the release.
   */
  private async makeCurrent(
    client: Client,
    jurisdiction: string,
    release: Release,
    step: (message: string) => void,
    identity: string,
  ): Promise<void> {
    const previous = await currentBuildId(client, jurisdiction);
    if (previous === release.buildId) {
      step(`${deploymentName(jurisdiction)}: build ${release.buildId} is current`);
      return;
    }
    if (previous) {
      step(
        `${deploymentName(jurisdiction)}: replaying histories against build ${release.buildId} (current: ${previous})`,
      );
      const report = await replayGate(client, this.deployContext!.keys, jurisdiction, release);
      if (report.failures.length > 0) {
        throw new Error(
          `${replayRefusal(jurisdiction, release.buildId!, report)} (${report.failures.slice(0, 3).join('; ')}). ` +
            `Start the release whose build ${previous} is current, let its workflows finish, or deploy a release ` +
            'that replays them.',
        );
      }
    }
    await setCurrentBuildId(client, jurisdiction, release.buildId!, identity);
    step(`${deploymentName(jurisdiction)}: build ${release.buildId} is now current`);
  }

  /** The names of a jurisdiction's running workers. */
  private workersOf(jurisdiction: string): string[] {
    return this.supervisor
      .children('worker-')
      .filter((c) => workerJurisdiction(c.name) === jurisdiction)
      .map((c) => c.name);
  }

  /** Stops workers for good: they finish the tasks they hold (they shut down gracefully), then are forgotten. */
  private async retireWorkers(names: string[]): Promise<void> {
    await this.supervisor.retire(names);
    for (const name of names) this.workerBuilds.delete(name);
  }

  /**
   * Handles the requests waiting under `<data dir>/deploy/requests` (`steward workers deploy` and `steward dr
   * failover|failback` write them and send this process SIGHUP). Each is a signed request of an ops identity for one
   * jurisdiction; each outcome, allowed or refused, is an audit event in that jurisdiction's trail and a result file
   * beside the request.
   */
  handleDeployRequests(): Promise<void> {
    this.deploying = this.deploying.then(async () => {
      const folders = deployFolders(this.options.dataDir);
      const files = await readdir(folders.requests).catch(() => [] as string[]);
      for (const file of files.filter((f) => f.endsWith('.json')).sort()) {
        const resultFile = path.join(folders.results, file);
        if (existsSync(resultFile)) continue;
        const result = await this.handleRequest(path.join(folders.requests, file)).catch(
          (error: Error): DeployResult => ({
            outcome: 'failed',
            reason: error.message,
          }),
        );
        await mkdir(folders.results, { recursive: true });
        await writeFileAtomic(resultFile, JSON.stringify(result, null, 2), 0o600);
      }
    });
    return this.deploying;
  }

  /**
   * A request the CLI left for this process: parsed, its signature and role verified for the action its body names
   * (one of `STACK_ACTIONS`), with an audit writer for its outcome in the jurisdiction's trail. Refused as a result
   * when it cannot be read or names no jurisdiction this stack serves.
   */
  private async openRequest(requestFile: string): Promise<OpenedRequest | { refused: string }> {
    const context = this.deployContext;
    if (!context) return { refused: 'this needs the production profile' };
    const parsed = SignedRequestSchema.safeParse(JSON.parse(await readFile(requestFile, 'utf8')));
    if (!parsed.success) return { refused: 'the request is not a signed Steward request' };
    const body = bodyOf(parsed.data);
    const claimed = body?.jurisdiction;
    if (!body || !claimed || !this.options.jurisdictions.includes(claimed)) {
      return { refused: `the request names no jurisdiction this stack serves` };
    }
    const action = STACK_ACTIONS.find((a) => a === body.action);
    if (!action) return { refused: `the stack does not take ${body.action} requests` };
    const trust = new TrustAnchor(context.pkiDir);
    const verdict = verifyRequest(
      parsed.data,
      { action, jurisdiction: claimed },
      { caPem: trust.caPem(), revoked: await trust.revoked(), now: new Date() },
    );
    const client = await connectClient(context.temporal, context.keys);
    const audit = async (
      outcome: 'success' | 'failure' | 'denied',
      details: Record<string, string | number | boolean | null | undefined>,
    ) =>
      appendAudit(
        client,
        await jurisdictionMessageKey(context.keys, claimed),
        claimed,
        [
          {
            action: AUDITED_AS[action],
            outcome,
            principal: verdict.ok ? verdict.principal : (verdict.claimed ?? { id: 'unknown', role: 'ops' as const }),
            details: Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined)) as Record<
              string,
              string | number | boolean | null
            >,
          },
        ],
        'steward-stack',
      );
    return { action, claimed, params: body.params, verdict, client, audit, keys: context.keys };
  }

  private async handleRequest(requestFile: string): Promise<DeployResult | SwitchResult> {
    const opened = await this.openRequest(requestFile);
    if ('refused' in opened) return { outcome: 'refused', reason: opened.refused };
    try {
      if (!opened.verdict.ok) {
        await opened.audit('denied', { reason: opened.verdict.reason });
        return { outcome: 'refused', reason: opened.verdict.reason };
      }
      return opened.action === 'workers.deploy'
        ? await this.deploy({ ...opened, signer: opened.verdict.principal.id })
        : await this.switchSite(opened);
    } finally {
      await opened.client.connection.close();
    }
  }

  private async deploy({
    claimed,
    params: rawParams,
    signer,
    client,
    audit,
    keys,
  }: OpenedRequest & { signer: string }): Promise<DeployResult> {
    const step = (message: string) => this.emit({ kind: 'step', message });
    const params = DeployParamsSchema.safeParse(rawParams);
    if (!params.success) {
      await audit('denied', { reason: 'the request names no release' });
      return { outcome: 'refused', reason: 'the request names no release folder' };
    }
    const root = path.resolve(params.data.release);
    const problem = releaseProblem(root);
    if (problem) {
      await audit('denied', { reason: problem });
      return { outcome: 'refused', reason: problem };
    }
    step(`deploy for ${claimed} by ${signer}: bundling ${root}`);
    const release = await bundleRelease(this.options.dataDir, root, true);
    const current = await currentBuildId(client, claimed);
    if (current === release.buildId) {
      await audit('success', {
        buildId: release.buildId,
        previous: current,
        changed: false,
        reason: params.data.reason,
      });
      return { outcome: 'unchanged', buildId: release.buildId!, previous: current, replayed: 0 };
    }
    // The gate runs before any worker of the release starts: a refused release never polls.
    step(`${deploymentName(claimed)}: replaying histories against build ${release.buildId}`);
    const report = await replayGate(client, keys, claimed, release);
    if (report.failures.length > 0) {
      await audit('denied', {
        buildId: release.buildId,
        current,
        replayed: report.replayed,
        failures: report.failures.slice(0, 5).join('; ').slice(0, 1000),
      });
      return {
        outcome: 'refused',
        reason: replayRefusal(claimed, release.buildId!, report),
        buildId: release.buildId!,
        previous: current,
        replayed: report.replayed,
        failures: report.failures,
      };
    }
    const old = this.workersOf(claimed);
    const started = this.startJurisdictionWorkers(claimed, release);
    await this.supervisor.ready(started);
    await setCurrentBuildId(client, claimed, release.buildId!, `steward-stack (${signer})`);
    step(
      `${deploymentName(claimed)}: build ${release.buildId} is now current; stopping ${old.join(', ') || 'no workers'}`,
    );
    // The old version's workers finish the tasks they hold (they shut down gracefully) and stop.
    await this.retireWorkers(old);
    await this.writeState();
    await audit('success', {
      buildId: release.buildId,
      previous: current,
      replayed: report.replayed,
      workers: started.length,
      changed: true,
      reason: params.data.reason,
    });
    return { outcome: 'deployed', buildId: release.buildId!, previous: current, replayed: report.replayed };
  }

  /**
   * `steward dr failover|failback`: moves a jurisdiction's workers to its DR site, or back to the primary. The workers
   * stop (Temporal keeps their work), a last replication pass copies what the site left holds and the other lacks
   * (a failover from a primary that does not answer skips it: what never reached the DR site is held there, see
   * `takeOver`; a failback needs it), then workers start that write to the site switched to and replicate to the other.
   * Kept across restarts; audited either way.
   */
  private async switchSite({ action, claimed, params, audit }: OpenedRequest): Promise<SwitchResult> {
    const step = (message: string) => this.emit({ kind: 'step', message });
    const parsed = SwitchParamsSchema.safeParse(params);
    if (!parsed.success) {
      await audit('denied', { reason: 'the request gives no reason' });
      return { outcome: 'refused', reason: 'the request gives no reason' };
    }
    const reason = parsed.data.reason;
    const jurisdiction = getJurisdiction(claimed);
    const to: ActiveSite = action === 'dr.failover' ? 'dr' : 'primary';
    const from: ActiveSite = this.active.get(claimed) ?? 'primary';
    const target = siteRoles(jurisdiction.sites, to).active.name;
    const { primary, dr, account } = this.sitesOf(claimed);
    if (!dr) {
      await audit('denied', { reason: 'no DR site', target });
      return { outcome: 'refused', reason: `${claimed} has no disaster-recovery site in this stack` };
    }
    if (from === to) {
      await audit('success', { site: target, changed: false, reason });
      return { outcome: 'unchanged', active: target };
    }
    const left = siteRoles(jurisdiction.sites, from).active.name;
    const { active: toSite, standby: fromSite } = siteRoles({ primary, dr }, to);
    const fromS3 = createS3Client(siteEndpoint(fromSite, account));
    const toS3 = createS3Client(siteEndpoint(toSite, account));
    const answers = (s3: typeof toS3) =>
      s3.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(5000) }).then(
        () => undefined,
        (error: Error) => error.message || error.name,
      );
    try {
      const down = await answers(toS3);
      if (down) {
        const why = `${target} does not answer (${down}): the workers stay on ${left}`;
        await audit('failure', { from: left, to: target, reason, refused: why });
        return { outcome: 'refused', reason: why };
      }
      const old = this.workersOf(claimed);
      const release = this.workerBuilds.get(old[0] ?? '');
      if (!release) return { outcome: 'failed', reason: `no ${claimed} workers run: nothing to move` };
      step(`${claimed}: moving the workers from ${left} to ${target}; stopping ${old.join(', ')}`);
      await this.retireWorkers(old);
      let finalPass: { copied: number; held: number } | { skipped: string };
      const unreachable = await answers(fromS3);
      try {
        if (unreachable) throw new Error(`${left} does not answer (${unreachable})`);
        step(`${claimed}: a last replication pass, ${left} → ${target}`);
        let copied = 0;
        let held = 0;
        for (const bucket of Object.values(jurisdiction.buckets)) {
          const pass = await replicateBucket({ primary: fromS3, dr: toS3 }, bucket, jurisdiction.buckets.catalog);
          copied += pass.copied;
          held += pass.held;
        }
        finalPass = { copied, held };
      } catch (error) {
        if (to === 'primary') {
          // A failback leaves nothing behind: without the last pass the workers go back to the DR site.
          await this.supervisor.ready(this.startJurisdictionWorkers(claimed, release));
          await this.writeState();
          const why = `the last pass from ${left} to ${target} failed: ${(error as Error).message}; the workers stay on ${left}`;
          await audit('failure', { from: left, to: target, reason, refused: why });
          return { outcome: 'failed', reason: why };
        }
        finalPass = { skipped: (error as Error).message };
        step(`${claimed}: no last pass (${finalPass.skipped}); what never reached ${target} stays held at ${left}`);
      }
      if (to === 'dr') this.active.set(claimed, 'dr');
      else this.active.delete(claimed);
      await mkdir(path.dirname(activeSitesFile(this.options.dataDir)), { recursive: true });
      await writeFileAtomic(
        activeSitesFile(this.options.dataDir),
        JSON.stringify(Object.fromEntries(this.active), null, 2),
      );
      const started = this.startJurisdictionWorkers(claimed, release);
      await this.supervisor.ready(started);
      await this.writeState();
      step(`${claimed}: the workers write to ${target} and replicate to ${left}`);
      await audit('success', {
        from: left,
        to: target,
        reason,
        workers: started.length,
        ...('copied' in finalPass
          ? { finalCopied: finalPass.copied, held: finalPass.held }
          : { finalPassSkipped: finalPass.skipped.slice(0, 500) }),
      });
      return { outcome: 'switched', active: target, previous: left, finalPass };
    } finally {
      fromS3.destroy();
      toS3.destroy();
    }
  }

  /** Stops workers first (they finish or hand back their tasks), then the servers. Safe to call twice. */
  async stop(): Promise<void> {
    await this.supervisor.stop(['worker-']);
    await this.codec?.close();
    if (this.networksOf) removeNetworks(this.networksOf);
    if (this.state) await rm(stackFile(this.options.dataDir), { force: true });
  }
}

/** A worker's supervised name: `worker-<j>`, then `worker-<j>#2`, `#3`… for more on the same queues. */
function workerName(jurisdiction: string, instance: number): string {
  return instance === 1 ? `worker-${jurisdiction}` : `worker-${jurisdiction}#${instance}`;
}

/** The jurisdiction a worker's supervised name (`workerName`) names. */
function workerJurisdiction(name: string): string {
  return name.slice('worker-'.length).split('#')[0]!;
}

/** Resolves once something listens on the loopback port. */
function tcpOpen(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
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

/** A release of Steward that workers run: its source folder, its workflow bundle, and (versioned) its build id. */
export interface Release {
  root: string;
  bundlePath: string;
  buildId?: string;
}

const SILENT = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/**
 * Bundles a release's workflow code. Versioned (the production profile), the bundle is kept under
 * `<data dir>/bundles/<build id>.js`; else it is `<data dir>/workflow-bundle.js`.
 */
export async function bundleRelease(
  dataDir: string,
  root: string,
  versioned: boolean,
  webpackConfigHook?: BundleOptions['webpackConfigHook'],
): Promise<Release> {
  const own = path.resolve(root) === INSTALL_ROOT;
  const { code } = await bundleWorkflowCode({
    workflowsPath: own ? workflowsPath() : path.join(root, 'workflows', 'index.ts'),
    failureConverterPath: own ? FAILURE_CONVERTER_PATH : path.join(root, 'lib', 'crypto', 'failure-converter.ts'),
    ...(webpackConfigHook ? { webpackConfigHook } : {}),
    logger: SILENT,
  });
  if (!versioned) {
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    await writeFile(bundlePath, code);
    return { root, bundlePath };
  }
  const buildId = await buildIdOf(root, code);
  await mkdir(path.join(dataDir, 'bundles'), { recursive: true });
  const bundlePath = path.join(dataDir, 'bundles', `${buildId}.js`);
  await writeFile(bundlePath, code);
  return { root, bundlePath, buildId };
}

/** Why a folder is not a release workers can run from, or undefined. */
function releaseProblem(root: string): string | undefined {
  for (const needed of [
    'workers/main.ts',
    'workflows/index.ts',
    'node_modules/tsx',
    'node_modules/@temporalio/worker',
  ]) {
    if (!existsSync(path.join(root, needed)))
      return `${root} is not a Steward release checkout with its dependencies installed: ${needed} is missing`;
  }
  return undefined;
}

const DeployParamsSchema = z.object({ release: z.string().min(1), reason: z.string().optional() });
const SwitchParamsSchema = z.object({ reason: z.string().min(1) });

/** The requests the stack takes from the CLI (signed, verified here), and the audit event each outcome is. */
const STACK_ACTIONS = ['workers.deploy', 'dr.failover', 'dr.failback'] as const;
const AUDITED_AS = {
  'workers.deploy': 'workers.deployed',
  'dr.failover': 'dr.failed-over',
  'dr.failback': 'dr.failed-back',
} as const satisfies Record<(typeof STACK_ACTIONS)[number], AuditAction>;

interface OpenedRequest {
  action: (typeof STACK_ACTIONS)[number];
  claimed: string;
  params: unknown;
  verdict: ReturnType<typeof verifyRequest>;
  client: Client;
  audit: (
    outcome: 'success' | 'failure' | 'denied',
    details: Record<string, string | number | boolean | null | undefined>,
  ) => Promise<unknown>;
  keys: KeyStore;
}

/** Where `steward dr failover|failback` last left each jurisdiction's workers: kept across `down` and `up`. */
const ActiveSitesSchema = z.record(z.string(), z.enum(['primary', 'dr']));
function activeSitesFile(dataDir: string): string {
  return path.join(dataDir, 'dr', 'active-sites.json');
}

export type SwitchResult =
  | {
      outcome: 'switched';
      /** The site the workers write to now, and the one they left. */
      active: string;
      previous: string;
      /** The last pass from the site left, made with the workers stopped: what it copied, and why none was made. */
      finalPass: { copied: number; held: number } | { skipped: string };
    }
  | { outcome: 'unchanged'; active: string }
  | { outcome: 'refused' | 'failed'; reason: string };

export type DeployResult =
  | { outcome: 'deployed' | 'unchanged'; buildId: string; previous: string | undefined; replayed: number }
  | {
      outcome: 'refused' | 'failed';
      reason: string;
      buildId?: string;
      previous?: string | undefined;
      replayed?: number;
      failures?: string[];
    };

/** Why the replay gate refused a release: running workflows would fail on it. */
function replayRefusal(jurisdiction: string, buildId: string, report: ReplayReport): string {
  return (
    `build ${buildId} refused for ${jurisdiction}: ${report.failures.length} of ${report.replayed} histories do not ` +
    'replay against it; workflows running now would fail on it'
  );
}

/**
 * The replay gate: the release's recorded histories of every workflow type, and the histories of the jurisdiction's
 * running workflows (encrypted as stored; the client's codec decodes them), replayed against the release's bundle.
 */
async function replayGate(
  client: Client,
  keys: KeyStore,
  jurisdiction: string,
  release: Release,
): Promise<ReplayReport> {
  const recorded = recordedHistories(path.join(release.root, 'test', 'fixtures', 'histories'));
  async function* every() {
    yield* recorded;
    yield* runningHistories(client, `TaskQueue = "${ingestTaskQueue(jurisdiction)}"`);
  }
  return replayHistories({ workflowBundle: { codePath: release.bundlePath } }, every(), stewardDataConverter(keys));
}

/** The Web UI server's configuration (its `production.yaml`). */
function webUiConfig(options: {
  pki: DeploymentPki;
  endpoint: TemporalEndpoint;
  port: number;
  codecEndpoint: string;
}): string {
  const { pki, endpoint, port, codecEndpoint } = options;
  const origins = [`https://127.0.0.1:${port}`, `https://localhost:${port}`];
  return yaml.dump({
    temporalGrpcAddress: endpoint.address,
    host: '127.0.0.1',
    port,
    enableUi: true,
    defaultNamespace: endpoint.namespace,
    showTemporalSystemNamespace: false,
    disableNewsFetch: true,
    notifyOnNewVersion: false,
    distribution: 'server',
    refreshInterval: '1m',
    cors: { allowOrigins: origins, cookieInsecure: false },
    disableWriteActions: true,
    tls: {
      caFile: pki.caFile,
      certFile: pki.client.certFile,
      keyFile: pki.client.keyFile,
      enableHostVerification: true,
      serverName: TLS_NAMES.frontend,
    },
    uiServerTLS: { certFile: pki.ui.certFile, keyFile: pki.ui.keyFile },
    codec: { endpoint: codecEndpoint, passAccessToken: false, includeCredentials: false },
    auth: { enabled: false },
  });
}

/** Resolves with the status of a GET over HTTPS, the server checked against `ca`; rejects on a 5xx. */
function httpsStatus(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { ca, timeout: 5000 }, (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      if (status >= 500) reject(new Error(`HTTP ${status}`));
      else resolve(status);
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}
