import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { getJurisdiction } from '../jurisdictions';
import type { StackState } from '../schemas/config';
import { ensureJurisdictionBuckets } from './buckets';
import { stackFile } from './config';

import { freePort } from './ports';
import { createS3Client } from './s3';
import { ensureTool } from './tools';

export const SEARCH_ATTRIBUTE_FLAGS = ['Jurisdiction', 'StudyId', 'DatasetId', 'RequestId', 'RequestKind'].flatMap(
  (name) => ['--search-attribute', `${name}=Keyword`],
);

export type StackEvent =
  | { kind: 'step'; message: string }
  | { kind: 'crash'; process: string; code: number | null; signal: string | null; log: string; restarting: boolean }
  | { kind: 'restarted'; process: string; pid: number | undefined }
  | { kind: 'killed'; process: string; graceMs: number };

export interface StackOptions {
  dataDir: string;
  jurisdictions: string[];
  onEvent?: (event: StackEvent) => void;
  /** Extra environment for worker processes (e.g. STEWARD_WORKER_MEMORY_MB). */
  workerEnv?: Record<string, string>;
}

interface Managed {
  name: string;
  log: string;
  spawnIt: () => ChildProcess;
  child: ChildProcess | undefined;
  restarts: number[];
  ready?: (child: ChildProcess) => Promise<void>;
}

const MAX_RESTARTS_PER_MINUTE = 5;

function isWorkerSource(): boolean {
  return __filename.endsWith('.ts');
}

/** The workflows entry file, as source (.ts) when running from source, else compiled (.js). */
export function workflowsPath(): string {
  return path.join(__dirname, '..', 'workflows', isWorkerSource() ? 'index.ts' : 'index.js');
}

function workerEntry(): { command: string; args: string[] } {
  if (isWorkerSource()) {
    return {
      command: process.execPath,
      args: ['--import', require.resolve('tsx'), path.join(__dirname, '..', 'workers', 'main.ts')],
    };
  }
  return { command: process.execPath, args: [path.join(__dirname, '..', 'workers', 'main.js')] };
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

export function tailOfLog(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The embedded stack: Temporal dev server, versitygw, and one ingestion worker per jurisdiction,
 * on free loopback ports, with state under one data directory. Children that crash are reported and restarted.
 */
export class Stack {
  private readonly managed: Managed[] = [];
  private stopping = false;
  private failure: Error | undefined;
  private failedListeners: ((error: Error) => void)[] = [];
  state!: StackState;

  private constructor(private readonly options: StackOptions) {}

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
    await mkdir(path.join(dataDir, 'logs'), { recursive: true });
    await mkdir(path.join(dataDir, 'temporal'), { recursive: true });
    await mkdir(path.join(dataDir, 's3', 'data'), { recursive: true });
    await mkdir(path.join(dataDir, 's3', 'versions'), { recursive: true });
    await mkdir(path.join(dataDir, 's3', 'iam'), { recursive: true });

    const step = (message: string) => this.emit({ kind: 'step', message });
    const temporalBin = await ensureTool('temporal', step);
    const versitygwBin = await ensureTool('versitygw', step);

    const credentialsFile = path.join(dataDir, 's3', 'credentials.json');
    if (!existsSync(credentialsFile)) {
      const generated = {
        accessKeyId: `STW${randomBytes(8).toString('hex').toUpperCase()}`,
        secretAccessKey: randomBytes(30).toString('base64url'),
      };
      await writeFile(credentialsFile, JSON.stringify(generated, null, 2), { mode: 0o600, flag: 'wx' }).catch((e) => {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      });
    }
    const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as {
      accessKeyId: string;
      secretAccessKey: string;
    };

    const [grpcPort, uiPort, httpPort, metricsPort, s3Port] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const temporalAddress = `127.0.0.1:${grpcPort}`;
    const s3Endpoint = `http://127.0.0.1:${s3Port}`;

    step(`starting Temporal dev server on ${temporalAddress}`);
    this.add('temporal', () =>
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
          ...SEARCH_ATTRIBUTE_FLAGS,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );

    step(`starting versitygw on ${s3Endpoint}`);
    this.add('versitygw', () =>
      spawn(
        versitygwBin,
        [
          '--port',
          `127.0.0.1:${s3Port}`,
          '--iam-dir',
          path.join(dataDir, 's3', 'iam'),
          '--health',
          '/health',
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
    const logOf = (name: string) => path.join(dataDir, 'logs', `${name}.log`);
    await retryUntil('versitygw', 30_000, () => s3.send(new ListBucketsCommand({})), logOf('versitygw'));
    await retryUntil(
      'Temporal dev server',
      90_000,
      async () => {
        const connection = await Connection.connect({ address: temporalAddress, connectTimeout: '2s' });
        try {
          await connection.workflowService.getSystemInfo({});
          // The dev server registers search attributes right after it starts serving.
          const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
          if (!attrs.customAttributes || !('RequestKind' in attrs.customAttributes))
            throw new Error('search attributes pending');
        } finally {
          await connection.close();
        }
      },
      logOf('temporal'),
    );

    step('creating jurisdiction buckets');
    for (const jurisdiction of jurisdictions) await ensureJurisdictionBuckets(s3, jurisdiction);
    s3.destroy();

    step('bundling workflow code');
    const bundlePath = path.join(dataDir, 'workflow-bundle.js');
    const { code } = await bundleWorkflowCode({
      workflowsPath: workflowsPath(),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
    });
    await writeFile(bundlePath, code);

    this.state = {
      format: 'steward-stack/1',
      pid: process.pid,
      startedAt: new Date().toISOString(),
      dataDir,
      temporal: { address: temporalAddress, namespace: 'default', uiUrl: `http://127.0.0.1:${uiPort}`, pid: null },
      s3: { ...s3Config, pid: null },
      jurisdictions: Object.fromEntries(jurisdictions.map((j) => [j.id, { buckets: { ...j.buckets } }])),
      workers: [],
    };

    const { command, args } = workerEntry();
    for (const jurisdiction of jurisdictions) {
      step(`starting ${jurisdiction.id} worker`);
      this.add(
        `worker-${jurisdiction.id}`,
        () =>
          spawn(command, [...memoryFlags(this.options.workerEnv), ...args], {
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
            env: {
              ...process.env,
              ...this.options.workerEnv,
              STEWARD_JURISDICTION: jurisdiction.id,
              STEWARD_DATA_DIR: dataDir,
              STEWARD_WORKFLOW_BUNDLE: bundlePath,
              STEWARD_TEMPORAL_ADDRESS: temporalAddress,
              STEWARD_TEMPORAL_NAMESPACE: 'default',
              STEWARD_S3_ENDPOINT: s3Endpoint,
              STEWARD_S3_REGION: 'us-east-1',
              STEWARD_S3_ACCESS_KEY_ID: credentials.accessKeyId,
              STEWARD_S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
            },
          }),
        (child) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`worker-${jurisdiction.id} did not start within 120s`)),
              120_000,
            );
            child.on('message', (message: { type?: string }) => {
              if (message?.type === 'ready') {
                clearTimeout(timer);
                resolve();
              }
            });
            child.once('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`worker-${jurisdiction.id} exited with code ${code} while starting`));
            });
          }),
      );
    }
    await Promise.all(this.managed.filter((m) => m.ready).map((m) => m.ready!(m.child!)));
    await this.writeState();
  }

  private add(name: string, spawnIt: () => ChildProcess, ready?: (child: ChildProcess) => Promise<void>): void {
    const managed: Managed = {
      name,
      log: path.join(this.options.dataDir, 'logs', `${name}.log`),
      spawnIt,
      child: undefined,
      restarts: [],
      ...(ready ? { ready } : {}),
    };
    this.managed.push(managed);
    this.launch(managed);
  }

  private launch(managed: Managed): void {
    const child = managed.spawnIt();
    const out = createWriteStream(managed.log, { flags: 'a' });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    managed.child = child;
    child.on('error', (error) => out.write(`\n[steward] failed to start: ${error.message}\n`));
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      const now = Date.now();
      managed.restarts = managed.restarts.filter((t) => now - t < 60_000);
      const restarting = managed.restarts.length < MAX_RESTARTS_PER_MINUTE && this.state !== undefined;
      this.emit({ kind: 'crash', process: managed.name, code, signal, log: managed.log, restarting });
      if (!restarting) {
        this.fail(new Error(`${managed.name} exited (code ${code}, signal ${signal}); see ${managed.log}`));
        return;
      }
      managed.restarts.push(now);
      setTimeout(() => {
        if (this.stopping) return;
        this.launch(managed);
        const ready = managed.ready ? managed.ready(managed.child!) : Promise.resolve();
        ready
          .then(() => {
            this.emit({ kind: 'restarted', process: managed.name, pid: managed.child?.pid });
            return this.writeState();
          })
          .catch((error: Error) =>
            this.emit({ kind: 'step', message: `restart of ${managed.name} failed: ${error.message}` }),
          );
      }, 500);
    });
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const listener of this.failedListeners) listener(error);
  }

  /** Resolves never; rejects when a child crashes more often than it may be restarted. */
  failed(): Promise<never> {
    return new Promise((_, reject) => {
      if (this.failure) reject(this.failure);
      else this.failedListeners.push(reject);
    });
  }

  private async writeState(): Promise<void> {
    if (!this.state) return;
    const pidOf = (name: string) => this.managed.find((m) => m.name === name)?.child?.pid ?? null;
    this.state.temporal.pid = pidOf('temporal');
    this.state.s3.pid = pidOf('versitygw');
    this.state.workers = this.managed
      .filter((m) => m.name.startsWith('worker-'))
      .map((m) => ({
        jurisdiction: m.name.slice('worker-'.length),
        pid: m.child?.pid ?? null,
        restarts: m.restarts.length,
      }));
    await writeFile(stackFile(this.options.dataDir), JSON.stringify(this.state, null, 2), { mode: 0o600 });
  }

  /** Stops workers first (they finish or hand back their tasks), then the servers. Safe to call twice. */
  async stop(): Promise<void> {
    this.stopping = true;
    const order = [
      ...this.managed.filter((m) => m.name.startsWith('worker-')),
      ...this.managed.filter((m) => !m.name.startsWith('worker-')),
    ];
    for (const group of [
      order.filter((m) => m.name.startsWith('worker-')),
      order.filter((m) => !m.name.startsWith('worker-')),
    ]) {
      await Promise.all(
        group.map(async (m) => {
          if (await stopChild(m.child)) this.emit({ kind: 'killed', process: m.name, graceMs: STOP_GRACE_MS });
        }),
      );
    }
    if (this.state) await rm(stackFile(this.options.dataDir), { force: true });
  }
}

/** How long a child may take to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 15_000;

/** Stops a child with SIGTERM; returns true when it had to be killed instead. */
async function stopChild(child: ChildProcess | undefined): Promise<boolean> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
  return killed;
}

export { isAlive } from './process';
