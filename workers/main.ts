import os from 'node:os';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { getJurisdiction, siteRoles, type ActiveSite } from '../jurisdictions';
import { pendingApprovedChanges, readChangeRecords, uncontrolledFiles } from '../lib/qualification/change';
import { readCurrentBaseline } from '../lib/qualification/documents';
import { INSTALL_ROOT } from '../lib/runtime/install';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { confineBuckets, ensureJurisdictionBuckets } from '../lib/storage/buckets';
import { loadConfig } from '../lib/runtime/config';
import { FileKeyStore } from '../lib/crypto/keystore';
import { jurisdictionMessageKey } from '../lib/auth/messages';
import { StewardAuthority, TrustAnchor } from '../lib/pki/authority';
import { logger } from '../lib/runtime/logger';
import { isAlive } from '../lib/stack/process';
import { createS3Client } from '../lib/storage/s3';
import { connectClient, connectionOptions, stewardDataConverter } from '../lib/client/temporal';
import type { Client } from '@temporalio/client';
import { curationTaskQueue, ingestTaskQueue, inspectTaskQueue, preprocessTaskQueue } from '../contracts';
import { createPreprocessActivities } from '../activities/preprocess';
import { createStorageInspectorActivities } from '../activities/storage-inspector';
import type { S3Client } from '@aws-sdk/client-s3';
import { COMMAND_PID_FILE } from '../lib/preprocess/executor';
import { gpusToPoll } from '../lib/preprocess/gpu';
import { deploymentName } from '../lib/stack/versions';
import type { GpuInventory } from '../schemas/preprocess';
import { activityInterceptors, createJurisdictionActivities } from './activities';

/** DuckDB's buffer limit: STEWARD_DUCKDB_MEMORY_LIMIT, else a third of STEWARD_WORKER_MEMORY_MB, else 1GB. */
function duckdbMemoryLimit(): string {
  if (process.env.STEWARD_DUCKDB_MEMORY_LIMIT) return process.env.STEWARD_DUCKDB_MEMORY_LIMIT;
  const mb = Number(process.env.STEWARD_WORKER_MEMORY_MB);
  return Number.isFinite(mb) && mb > 0 ? `${Math.max(32, Math.floor(mb / 3))}MB` : '1GB';
}

/** DuckDB threads per package being curated: STEWARD_DUCKDB_THREADS (1 to 4), else 2. */
function duckdbThreads(): number {
  const n = Number(process.env.STEWARD_DUCKDB_THREADS ?? 2);
  return Number.isInteger(n) ? Math.max(1, Math.min(4, n)) : 2;
}

/**
 * Worker Versioning, where the stack asks for it (the production profile): the worker polls as one version of its
 * jurisdiction's Worker Deployment, so a deploy routes new work to the new version only once it is made current.
 * Every workflow type auto-upgrades to the current version; the replay gate is what makes that safe.
 */
function workerDeployment(jurisdiction: string) {
  const buildId = process.env.STEWARD_WORKER_BUILD_ID;
  if (!buildId) return {};
  return {
    workerDeploymentOptions: {
      version: { deploymentName: deploymentName(jurisdiction), buildId },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'AUTO_UPGRADE',
    },
  } as const;
}

/** Shared work older than this (a package whose ingestion gave up) is removed when a worker starts. */
const STALE_WORK_MS = 2 * 24 * 3600_000;

/**
 * Scratch of worker processes that are gone, and shared work nobody resumed for days: neither will be used again.
 * Recent shared work stays, for a retry on this machine to resume.
 */
async function removeStaleScratch(root: string, workDir: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || isAlive(Number(name))) continue;
    // External pipeline commands the dead worker started are stopped before their scratch goes.
    for (const job of await readdir(path.join(root, name, 'preprocess')).catch(() => [] as string[])) {
      const pid = Number(
        await readFile(path.join(root, name, 'preprocess', job, COMMAND_PID_FILE), 'utf8').catch(() => ''),
      );
      if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    await rm(path.join(root, name), { recursive: true, force: true });
  }
  for (const area of ['staged', 'curated']) {
    const dir = path.join(workDir, area);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const modified = (await stat(path.join(dir, name)).catch(() => undefined))?.mtimeMs ?? Date.now();
      if (Date.now() - modified > STALE_WORK_MS) await rm(path.join(dir, name), { recursive: true, force: true });
    }
  }
}

/** Temporal's core logs through Steward's logger. */
function installRuntimeLogger(): void {
  Runtime.install({
    logger: {
      log: (level, message, meta) =>
        logger[level === 'TRACE' ? 'trace' : (level.toLowerCase() as 'info')]({ ...meta }, message),
      trace: (m, meta) => logger.trace(meta ?? {}, m),
      debug: (m, meta) => logger.debug(meta ?? {}, m),
      info: (m, meta) => logger.info(meta ?? {}, m),
      warn: (m, meta) => logger.warn(meta ?? {}, m),
      error: (m, meta) => logger.error(meta ?? {}, m),
    },
  });
}

/**
 * The storage inspector (STEWARD_WORKER_ROLE `inspector`): with the storage administrator's credentials, answers the
 * inspection activity on each named jurisdiction's inspect queue (STEWARD_INSPECT_JURISDICTIONS, comma-separated) and
 * nothing else: no workflows, no other activity.
 */
async function inspectorMain(): Promise<void> {
  const ids = (process.env.STEWARD_INSPECT_JURISDICTIONS ?? '').split(',').filter(Boolean);
  if (ids.length === 0) throw new Error('STEWARD_INSPECT_JURISDICTIONS must name the jurisdictions to inspect');
  const config = loadConfig();
  const keys = await FileKeyStore.open(path.join(config.dataDir, 'keys'), config.masterKey);
  installRuntimeLogger();
  const connection = await NativeConnection.connect(connectionOptions(config.temporal));
  const clients: S3Client[] = [];
  const workers = await Promise.all(
    ids.map(async (id) => {
      const jurisdiction = getJurisdiction(id);
      const s3 = createS3Client(config.s3For(jurisdiction.id));
      clients.push(s3);
      return Worker.create({
        connection,
        namespace: config.temporal.namespace,
        identity: `steward-storage-inspector-${id}@${os.hostname()}:${process.pid}`,
        dataConverter: stewardDataConverter(keys, { worker: true }),
        activities: createStorageInspectorActivities({ s3, jurisdiction }),
        taskQueue: inspectTaskQueue(id),
        maxConcurrentActivityTaskExecutions: 2,
        shutdownGraceTime: '10s',
      });
    }),
  );
  process.on('disconnect', () => workers.forEach((w) => w.shutdown()));
  const running = Promise.all(workers.map((w) => w.run()));
  logger.info({ role: 'inspector', taskQueues: workers.map((w) => w.options.taskQueue) }, 'worker running');
  process.send?.({ type: 'ready' });
  await running;
  await connection.close();
  clients.forEach((c) => c.destroy());
  if (process.connected) process.disconnect();
}

/**
 * Refuses to start on controlled files (the jurisdiction's rules, pipelines, the requirements) whose SHA-256 is not the
 * one the approved baseline in force records, or an approved change being applied wrote: they change through
 * `steward change propose`, not by hand. Before the first baseline there is nothing to hold them to.
 */
async function refuseUncontrolledFiles(s3: S3Client, jurisdiction: Jurisdiction, caPem: string): Promise<void> {
  const current = await readCurrentBaseline(s3, jurisdiction.buckets.evidence, caPem);
  if (!current) return;
  const pending = pendingApprovedChanges(await readChangeRecords(s3, jurisdiction.buckets.catalog));
  const problems = await uncontrolledFiles(current.baseline, INSTALL_ROOT, pending);
  if (problems.length > 0) {
    throw new Error(
      `the ${jurisdiction.id} worker does not load controlled files the approved baseline ${current.baseline.version} does not record: ${problems.join('; ')}. Put them back as they were, or change them through steward change propose`,
    );
  }
}

/** Opens on first use; later calls share the first. */
function once(open: () => Promise<Client>): () => Promise<Client> {
  let opened: Promise<Client> | undefined;
  return () => (opened ??= open());
}

/** Which site the stack set the worker to write to (`STEWARD_S3_ACTIVE_SITE`, after `steward dr failover`). */
function activeSiteOf(value: string | undefined): ActiveSite {
  if (value === undefined || value === '' || value === 'primary') return 'primary';
  if (value === 'dr') return 'dr';
  throw new Error(`STEWARD_S3_ACTIVE_SITE must be primary or dr, not ${value}`);
}

/**
 * A worker for one jurisdiction: polls only that jurisdiction's task queues, with its S3 credentials.
 * STEWARD_WORKER_ROLE `all` (the default): workflows, short activities, curation and CPU preprocessing;
 * `preprocess`: preprocessing only, on CPU, or with STEWARD_GPU=1 on the GPU queue (refusing to start without a GPU);
 * `inspector`: the storage inspector (`inspectorMain`).
 */
async function main(): Promise<void> {
  if (process.env.STEWARD_WORKER_ROLE === 'inspector') return inspectorMain();
  const jurisdictionId = process.env.STEWARD_JURISDICTION;
  if (!jurisdictionId) throw new Error('STEWARD_JURISDICTION must name the jurisdiction this worker serves');
  const jurisdiction = getJurisdiction(jurisdictionId);
  const role = process.env.STEWARD_WORKER_ROLE ?? 'all';
  if (role !== 'all' && role !== 'preprocess')
    throw new Error(`STEWARD_WORKER_ROLE must be all, preprocess or inspector, not ${role}`);
  const wantsGpu = process.env.STEWARD_GPU === '1';
  if (wantsGpu && role !== 'preprocess') throw new Error('STEWARD_GPU=1 needs STEWARD_WORKER_ROLE=preprocess');
  const gpu: GpuInventory | null = wantsGpu ? await gpusToPoll(preprocessTaskQueue(jurisdiction.id, true)) : null;
  const config = loadConfig();
  const keys = await FileKeyStore.open(path.join(config.dataDir, 'keys'), config.masterKey);
  const s3 = createS3Client(config.s3For(jurisdiction.id));
  const drEndpoint = config.drFor(jurisdiction.id);
  const roles = siteRoles(jurisdiction.sites, activeSiteOf(process.env.STEWARD_S3_ACTIVE_SITE));
  const dr = drEndpoint?.endpoint
    ? {
        s3: createS3Client(drEndpoint),
        endpoint: drEndpoint.endpoint,
        names: { active: roles.active.name, standby: roles.standby.name },
      }
    : undefined;
  // Deployments without a bootstrap step (docker-compose) let the worker create its jurisdiction's buckets.
  if (process.env.STEWARD_CREATE_BUCKETS === '1') {
    await ensureJurisdictionBuckets(s3, jurisdiction);
    await confineBuckets(s3, jurisdiction, [config.s3For(jurisdiction.id).accessKeyId]);
  }
  const scratchRoot = process.env.STEWARD_SCRATCH_DIR ?? path.join(config.dataDir, 'scratch', jurisdiction.id);
  const workDir = path.join(scratchRoot, 'work');
  await removeStaleScratch(scratchRoot, workDir);
  const scratchDir = path.join(scratchRoot, String(process.pid));

  installRuntimeLogger();
  const connection = await NativeConnection.connect(connectionOptions(config.temporal));
  const bundle = process.env.STEWARD_WORKFLOW_BUNDLE;
  const identity = `steward-${role === 'all' ? 'worker' : wantsGpu ? 'gpu-worker' : 'preprocess-worker'}-${jurisdiction.id}@${os.hostname()}:${process.pid}`;
  const temporal = once(() => connectClient(config.temporal, keys));
  const preprocessActivities = createPreprocessActivities({
    s3,
    jurisdiction,
    scratchDir,
    workerIdentity: identity,
    gpu,
    cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null,
    versitygwVersion: process.env.STEWARD_VERSITYGW_VERSION ?? null,
    temporal,
  });
  const common = {
    connection,
    namespace: config.temporal.namespace,
    identity,
    dataConverter: stewardDataConverter(keys, { worker: true }),
    interceptors: { activity: activityInterceptors },
    // Heartbeats reach the server at least this often, so a cancellation reaches a long activity within seconds.
    maxHeartbeatThrottleInterval: '2s',
    shutdownGraceTime: '10s',
    ...workerDeployment(jurisdiction.id),
  } as const;
  // One preprocessing job at a time per worker: a job uses a core and its scratch, and several would compete for them.
  const preprocessWorker = () =>
    Worker.create({
      ...common,
      activities: preprocessActivities,
      taskQueue: preprocessTaskQueue(jurisdiction.id, gpu !== null),
      maxConcurrentActivityTaskExecutions: 1,
    });
  // Workflows and short activities; the long, memory-bound ones run two at a time on the curation queue, so a package
  // curating for hours never holds up request checks, audit sealing or catalog writes. Only these sign evidence: a
  // preprocess-only worker (a GPU node, say) starts without the Steward CA.
  const jurisdictionWorkers = async () => {
    const trust = new TrustAnchor(config.pkiDir);
    await refuseUncontrolledFiles(s3, jurisdiction, trust.caPem());
    // The evidence signer of this jurisdiction, issued by the Steward CA on first use.
    const signer = await (await StewardAuthority.open(config.pkiDir, keys)).signer(jurisdiction.id);
    const activities = createJurisdictionActivities({
      s3,
      keys,
      jurisdiction,
      scratchDir,
      workDir,
      duckdbMemoryLimit: duckdbMemoryLimit(),
      duckdbThreads: duckdbThreads(),
      trust,
      signer: async () => signer,
      temporal,
      messageKey: await jurisdictionMessageKey(keys, jurisdiction.id),
      dr,
    });
    return [
      await Worker.create({
        ...common,
        activities,
        taskQueue: ingestTaskQueue(jurisdiction.id),
        ...(bundle
          ? { workflowBundle: { codePath: bundle } }
          : {
              workflowsPath: path.join(
                __dirname,
                '..',
                'workflows',
                __filename.endsWith('.ts') ? 'index.ts' : 'index.js',
              ),
            }),
        maxConcurrentActivityTaskExecutions: 16,
      }),
      await Worker.create({
        ...common,
        activities,
        taskQueue: curationTaskQueue(jurisdiction.id),
        maxConcurrentActivityTaskExecutions: 2,
      }),
    ];
  };
  const workers =
    role === 'preprocess' ? [await preprocessWorker()] : [...(await jurisdictionWorkers()), await preprocessWorker()];
  // Stop with the stack that started us.
  process.on('disconnect', () => workers.forEach((w) => w.shutdown()));
  const running = Promise.all(workers.map((w) => w.run()));
  logger.info(
    {
      jurisdiction: jurisdiction.id,
      role,
      gpu: gpu ? gpu.gpus.map((g) => g.model).join(', ') : null,
      taskQueues: workers.map((w) => w.options.taskQueue),
    },
    'worker running',
  );
  process.send?.({ type: 'ready' });
  await running;
  await connection.close();
  s3.destroy();
  dr?.s3.destroy();
  // The channel to the stack would keep the process alive after its work is done.
  if (process.connected) process.disconnect();
}

main().catch((error: unknown) => {
  logger.error(
    { err: error instanceof Error ? { message: error.message, name: error.name } : String(error) },
    'worker failed',
  );
  process.exit(1);
});
