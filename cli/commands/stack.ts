import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { getJurisdiction, JURISDICTION_IDS } from '../../jurisdictions';
import type { StackState } from '../../schemas/config';
import { defaultDataDir, readStackState } from '../../lib/runtime/config';
import { UserError } from '../../lib/runtime/errors';
import { logger } from '../../lib/runtime/logger';
import { createS3Client } from '../../lib/storage/s3';
import { isAlive, Stack, tailOfLog, type StackEvent, type StackProfile } from '../../lib/stack/stack';
import { connectionOptions } from '../../lib/client/temporal';
import { productionSettingsFile } from '../../lib/stack/cluster';
import { EMBEDDED_TOOLS, ensureTool, PRODUCTION_TOOLS } from '../../lib/stack/tools';
import type { GlobalOptions } from '../context';
import { note, printJson, say } from '../output';

function dataDirOf(options: GlobalOptions): string {
  return options.dataDir ? path.resolve(options.dataDir) : defaultDataDir();
}

function parseJurisdictions(value: string): string[] {
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const id of ids) getJurisdiction(id);
  return ids;
}

export function describeStack(state: StackState): string {
  const production = state.profile === 'production';
  const lines = [
    `Profile    ${state.profile}${production ? ' (Temporal cluster on PostgreSQL, mutual TLS)' : ' (Temporal dev server)'}`,
    `Temporal   ${state.temporal.address} (namespace ${state.temporal.namespace}${state.temporal.tls ? `, mutual TLS as ${state.temporal.tls.serverName ?? 'its address'}` : ''})`,
    `Web UI     ${state.temporal.uiUrl || 'none in this profile'}`,
    ...(state.codec
      ? [
          `Codec      ${state.codec.url} (the Web UI decodes as the demo ops identity; grants of ${state.codec.auditJurisdiction}, accesses audited in every jurisdiction's trail)`,
        ]
      : []),
    ...(state.profile === 'production'
      ? Object.entries(state.jurisdictions).map(
          ([id, j]) =>
            `S3 ${id.toUpperCase().padEnd(7)} ${j.storage?.endpoint ?? '?'} (site ${j.storage?.site ?? '?'}, HTTPS${j.storage?.netns ? `, network namespace ${j.storage.netns}; workers in ${j.storage.workerNetns}, reaching it at ${j.storage.workerEndpoint}` : ''})` +
            (j.storage?.dr
              ? `\nDR ${id.toUpperCase().padEnd(7)} ${j.storage.dr.endpoint} (site ${j.storage.dr.site}, replicated from the primary${j.storage.dr.netns ? `, network namespace ${j.storage.dr.netns}` : ''})`
              : ''),
        )
      : [`S3         ${state.s3.endpoint} (versitygw, access key ${state.s3.accessKeyId})`]),
    `Data dir   ${state.dataDir}`,
    ...Object.entries(state.jurisdictions).map(
      ([id, j]) => `${id.toUpperCase().padEnd(10)} ${Object.values(j.buckets).join(', ')}`,
    ),
  ];
  return lines.join('\n');
}

export function reportStackEvent(event: StackEvent): void {
  if (event.kind === 'step') note(`… ${event.message}`);
  else if (event.kind === 'crash') {
    logger.error(
      { process: event.process, code: event.code, signal: event.signal, log: event.log },
      `${event.process} exited unexpectedly${event.restarting ? '; restarting' : ''}`,
    );
    process.stderr.write(
      `\n${event.process} exited (code ${event.code}, signal ${event.signal}); last lines of ${event.log}:\n${tailOfLog(event.log, 8)}\n`,
    );
  } else if (event.kind === 'killed') {
    logger.warn(
      { process: event.process, graceMs: event.graceMs },
      `${event.process} did not stop within ${event.graceMs / 1000} s of SIGTERM and was killed`,
    );
  } else logger.warn({ process: event.process, pid: event.pid }, `${event.process} restarted`);
}

/** What `up` was asked for: the profile, and the production profile's PostgreSQL on first start. */
export interface UpOptions {
  profile: StackProfile;
  workersPerJurisdiction?: number | undefined;
  postgres?: string | undefined;
  databasePrefix?: string | undefined;
}

function upArgs(options: UpOptions): string[] {
  return [
    '--profile',
    options.profile,
    ...(options.postgres ? ['--postgres', options.postgres] : []),
    ...(options.databasePrefix ? ['--database-prefix', options.databasePrefix] : []),
    ...(options.workersPerJurisdiction ? ['--workers-per-jurisdiction', String(options.workersPerJurisdiction)] : []),
  ];
}

export async function startForeground(
  dataDir: string,
  jurisdictions: string[],
  up: UpOptions = { profile: 'embedded' },
): Promise<Stack> {
  const running = readStackState(dataDir);
  if (running && isAlive(running.pid)) {
    throw new UserError(
      `a Steward stack is already running for ${dataDir} (pid ${running.pid}); see \`steward status\`, or stop it with \`steward down\``,
    );
  }
  await mkdir(dataDir, { recursive: true });
  return Stack.start({
    dataDir,
    jurisdictions,
    onEvent: reportStackEvent,
    ...(up.workersPerJurisdiction ? { workersPerJurisdiction: up.workersPerJurisdiction } : {}),
    ...(up.profile === 'production'
      ? { production: { postgres: up.postgres, databasePrefix: up.databasePrefix } }
      : {}),
  });
}

export async function waitForShutdown(stack: Stack): Promise<void> {
  // `steward workers deploy` leaves a signed request under the data dir and sends SIGHUP.
  const deploy = () => {
    stack.handleDeployRequests().catch((error: Error) => logger.error({ err: error.message }, 'deploy failed'));
  };
  process.on('SIGHUP', deploy);
  await new Promise<void>((resolve, reject) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    stack.failed().catch(reject);
  }).finally(async () => {
    note('stopping the stack…');
    await stack.stop();
  });
}

/** Prints the step lines (`… …`) the background stack writes to its log, as it writes them. */
function stepRelay(log: string): () => void {
  let offset = existsSync(log) ? statSync(log).size : 0;
  return () => {
    const size = existsSync(log) ? statSync(log).size : 0;
    if (size <= offset) return;
    const fd = openSync(log, 'r');
    const chunk = Buffer.alloc(size - offset);
    readSync(fd, chunk, 0, chunk.length, offset);
    closeSync(fd);
    const text = chunk.toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    offset += Buffer.byteLength(text.slice(0, complete));
    for (const line of text.slice(0, complete).split('\n')) if (line.startsWith('… ')) note(line);
  };
}

async function upDetached(dataDir: string, jurisdictions: string[], json: boolean, up: UpOptions): Promise<void> {
  const running = readStackState(dataDir);
  if (running && isAlive(running.pid))
    throw new UserError(`a Steward stack is already running for ${dataDir} (pid ${running.pid})`);
  await mkdir(path.join(dataDir, 'logs'), { recursive: true });
  const log = path.join(dataDir, 'logs', 'supervisor.log');
  const relay = stepRelay(log);
  const fd = openSync(log, 'a');
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      process.argv[1]!,
      'up',
      '--data-dir',
      dataDir,
      '--jurisdictions',
      jurisdictions.join(','),
      ...upArgs(up),
    ],
    {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: process.env,
    },
  );
  closeSync(fd);
  child.unref();
  note(`starting the stack in the background (log: ${log})…`);
  const deadline = Date.now() + 15 * 60_000;
  while (Date.now() < deadline) {
    relay();
    if (child.exitCode !== null || !isAlive(child.pid)) {
      throw new UserError(`the stack failed to start; last lines of ${log}:\n${tailOfLog(log)}`);
    }
    const state = readStackState(dataDir);
    if (state && state.pid === child.pid) {
      relay();
      if (json) printJson(state);
      else say(`Steward stack running (pid ${state.pid})\n${describeStack(state)}`);
      return;
    }
    await sleep(500);
  }
  throw new UserError(`the stack did not start within 15 minutes; see ${log}`);
}

async function probe(state: StackState) {
  // Every storage site answers: the embedded versitygw, or each jurisdiction's own (with its account).
  const endpoints = Object.values(state.jurisdictions).flatMap((j) =>
    j.storage && j.account
      ? [{ ...state.s3, endpoint: j.storage.endpoint, caFile: j.storage.caFile, ...j.account }]
      : [],
  );
  let s3Ok = true;
  for (const endpoint of endpoints.length > 0 ? endpoints : [state.s3]) {
    const s3 = createS3Client(endpoint);
    s3Ok &&= await s3.send(new ListBucketsCommand({})).then(
      () => true,
      () => false,
    );
    s3.destroy();
  }
  const temporalOk = await Connection.connect({ ...connectionOptions(state.temporal), connectTimeout: '2s' }).then(
    async (c) => {
      try {
        await c.workflowService.getSystemInfo({});
        return true;
      } finally {
        await c.close();
      }
    },
    () => false,
  );
  return { s3Ok, temporalOk };
}

export function registerStackCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('tools')
    .description(
      'find or build (with Go) the Temporal CLI and versitygw the embedded stack runs (with --production, also the ' +
        'Temporal server and temporal-sql-tool); prints their paths',
    )
    .option('--production', "also the production profile's Temporal server and temporal-sql-tool")
    .action(async (options: { production?: boolean }) => {
      const paths: Record<string, string> = {};
      for (const tool of [...EMBEDDED_TOOLS, ...(options.production ? PRODUCTION_TOOLS : [])])
        paths[tool] = await ensureTool(tool, note);
      if (globals().json) printJson(paths);
      else
        say(
          Object.entries(paths)
            .map(([tool, file]) => `${tool.padEnd(18)} ${file}`)
            .join('\n'),
        );
    });

  program
    .command('up')
    .description(
      'start the stack: Temporal (dev server, or with --profile production a cluster on PostgreSQL with mutual TLS), ' +
        'versitygw and one worker per jurisdiction',
    )
    .option('--detach', 'start in the background and return once everything is healthy')
    .addOption(
      new Option(
        '--profile <profile>',
        'embedded: Temporal dev server on SQLite; production: Temporal cluster on PostgreSQL ' +
          '(default: the profile the data dir was started with, else embedded)',
      ).choices(['embedded', 'production']),
    )
    .option(
      '--postgres <url>',
      'production profile, first start: PostgreSQL for Temporal, postgres://USER[:PASSWORD]@HOST[:PORT] ' +
        '(add ?sslmode=disable for a server without TLS; default $STEWARD_POSTGRES_URL)',
    )
    .option(
      '--database-prefix <name>',
      "production profile, first start: prefix of Temporal's two databases",
      'steward',
    )
    .option(
      '--workers-per-jurisdiction <n>',
      'worker processes per jurisdiction, all on its task queues (Temporal spreads the work)',
      (value: string) => {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 16)
          throw new InvalidArgumentError('must be a whole number from 1 to 16');
        return n;
      },
      1,
    )
    .option(
      '--jurisdictions <ids>',
      `jurisdictions to serve, comma-separated (${JURISDICTION_IDS.join(', ')})`,
      JURISDICTION_IDS.join(','),
    )
    .action(
      async (options: {
        detach?: boolean;
        jurisdictions: string;
        profile?: StackProfile;
        postgres?: string;
        databasePrefix: string;
        workersPerJurisdiction: number;
      }) => {
        const dataDir = dataDirOf(globals());
        const jurisdictions = parseJurisdictions(options.jurisdictions);
        const up: UpOptions = {
          profile: options.profile ?? (existsSync(productionSettingsFile(dataDir)) ? 'production' : 'embedded'),
          postgres: options.postgres ?? process.env.STEWARD_POSTGRES_URL,
          databasePrefix: options.databasePrefix,
          workersPerJurisdiction: options.workersPerJurisdiction,
        };
        if (options.detach) return upDetached(dataDir, jurisdictions, globals().json ?? false, up);
        const stack = await startForeground(dataDir, jurisdictions, up);
        if (globals().json) printJson(stack.state);
        else say(`Steward stack running (pid ${process.pid}); Ctrl-C stops it\n${describeStack(stack.state)}`);
        await waitForShutdown(stack);
      },
    );

  program
    .command('down')
    .description('stop the embedded stack started with `steward up`')
    .action(async () => {
      const dataDir = dataDirOf(globals());
      const state = readStackState(dataDir);
      if (!state || !isAlive(state.pid)) {
        say(`no Steward stack is running for ${dataDir}`);
        return;
      }
      process.kill(state.pid, 'SIGTERM');
      const deadline = Date.now() + 60_000;
      while (isAlive(state.pid) && Date.now() < deadline) await sleep(250);
      if (isAlive(state.pid)) {
        for (const pid of [
          state.pid,
          state.temporal.pid,
          state.s3.pid,
          ...Object.values(state.jurisdictions).map((j) => j.storage?.pid),
          ...state.workers.map((w) => w.pid),
        ]) {
          if (pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
        }
      }
      say(`Steward stack stopped (${dataDir})`);
    });

  program
    .command('status')
    .description('show where the embedded stack listens, its credentials and buckets, and whether each part is healthy')
    .action(async () => {
      const dataDir = dataDirOf(globals());
      const state = readStackState(dataDir);
      if (!state || !isAlive(state.pid)) {
        if (globals().json) printJson({ running: false, dataDir });
        else say(`no Steward stack is running for ${dataDir}; start one with \`steward up\``);
        process.exitCode = 4;
        return;
      }
      const health = await probe(state);
      const workers = state.workers.map((w) => ({ ...w, alive: isAlive(w.pid) }));
      const inspectorAlive = state.inspector ? isAlive(state.inspector.pid) : true;
      const healthy = health.s3Ok && health.temporalOk && workers.every((w) => w.alive) && inspectorAlive;
      if (globals().json) {
        printJson({
          running: true,
          healthy,
          ...state,
          workers,
          health: { temporal: health.temporalOk, s3: health.s3Ok },
        });
      } else {
        say(
          `Steward stack ${healthy ? 'healthy' : 'DEGRADED'} (pid ${state.pid}, since ${state.startedAt})\n${describeStack(state)}`,
        );
        say(`Temporal ${health.temporalOk ? 'ok' : 'NOT ANSWERING'}, S3 ${health.s3Ok ? 'ok' : 'NOT ANSWERING'}`);
        for (const w of workers)
          say(
            `worker ${w.jurisdiction}: ${w.alive ? `pid ${w.pid}` : 'NOT RUNNING'}${w.restarts ? `, ${w.restarts} restarts` : ''}`,
          );
        if (state.inspector) {
          say(
            `storage inspector: ${inspectorAlive ? `pid ${state.inspector.pid}` : 'NOT RUNNING'}${state.inspector.restarts ? `, ${state.inspector.restarts} restarts` : ''}`,
          );
        }
      }
      if (!healthy) process.exitCode = 5;
      if (!existsSync(dataDir)) process.exitCode = 4;
    });
}
