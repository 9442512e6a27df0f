import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import yaml from 'js-yaml';
import { z } from 'zod';
import { SEARCH_ATTRIBUTES } from '../../contracts';
import type { TemporalEndpoint } from '../../schemas/config';
import { connectionOptions } from '../client/temporal';
import { UserError } from '../runtime/errors';
import { TLS_NAMES, type DeploymentPki } from './deploy-pki';
import { freePort } from './ports';
import { temporalSchemaDir, TEMPORAL_SERVER_VERSION } from './tools';

/** Temporal's services, each run as its own process (as each would run on its own hosts). */
export const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type TemporalService = (typeof TEMPORAL_SERVICES)[number];

/** How long Temporal keeps a closed workflow's history in the production profile's namespace. */
export const HISTORY_RETENTION_DAYS = 30;

/** gRPC's status code for ALREADY_EXISTS (a namespace registered by an earlier start). */
const GRPC_ALREADY_EXISTS = 6;

/** History shards: fixed at the cluster's first start, for its whole life. */
const HISTORY_SHARDS = 4;

export const PostgresUrlSchema = z
  .string()
  .refine(
    (value) => /^postgres(ql)?:\/\//.test(value),
    'must be a postgres:// URL, e.g. postgres://temporal@10.0.0.5:5432',
  );

/** Where Temporal's two databases live, parsed from a `postgres://user[:password]@host[:port][?sslmode=…]` URL. */
export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** TLS to PostgreSQL: `sslmode=disable` turns it off (for a server without TLS); anything else asks for it. */
  tls: boolean;
}

export function parsePostgresUrl(value: string): PostgresTarget {
  const parsed = PostgresUrlSchema.safeParse(value);
  if (!parsed.success) throw new UserError(`--postgres: ${parsed.error.issues[0]!.message}`);
  const url = new URL(value);
  if (!url.hostname) throw new UserError('--postgres: the URL names no host');
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username || 'postgres'),
    password: decodeURIComponent(url.password),
    tls: url.searchParams.get('sslmode') !== 'disable',
  };
}

/** The production profile's settings, kept in the data dir so that a later `up` finds the same cluster. */
export const ProductionSettingsSchema = z.object({
  format: z.literal('steward-production/1'),
  postgres: z.string(),
  databasePrefix: z.string().regex(/^[a-z][a-z0-9_]{0,40}$/),
  /** Each service's gRPC and membership ports: kept across restarts (the cluster's metadata records the frontend's). */
  ports: z.record(z.enum(TEMPORAL_SERVICES), z.object({ grpc: z.number().int(), membership: z.number().int() })),
});
export type ProductionSettings = z.infer<typeof ProductionSettingsSchema>;

export function productionSettingsFile(dataDir: string): string {
  return path.join(dataDir, 'production.json');
}

export async function readProductionSettings(dataDir: string): Promise<ProductionSettings | undefined> {
  const file = productionSettingsFile(dataDir);
  if (!existsSync(file)) return undefined;
  const parsed = ProductionSettingsSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.success) throw new UserError(`${file}: invalid\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The settings of this data dir's cluster: those recorded, else new ones (fresh ports), recorded now. */
export async function productionSettings(
  dataDir: string,
  requested: { postgres?: string | undefined; databasePrefix?: string | undefined },
): Promise<ProductionSettings> {
  const recorded = await readProductionSettings(dataDir);
  if (recorded) {
    if (requested.postgres && requested.postgres !== recorded.postgres)
      throw new UserError(
        `${productionSettingsFile(dataDir)} records another PostgreSQL for this data dir's cluster; ` +
          'use another --data-dir for a new cluster',
      );
    return recorded;
  }
  if (!requested.postgres)
    throw new UserError('the production profile needs --postgres postgres://USER[:PASSWORD]@HOST[:PORT] (first start)');
  parsePostgresUrl(requested.postgres);
  const ports = {} as ProductionSettings['ports'];
  for (const service of TEMPORAL_SERVICES) ports[service] = { grpc: await freePort(), membership: await freePort() };
  const settings: ProductionSettings = {
    format: 'steward-production/1',
    postgres: requested.postgres,
    databasePrefix: requested.databasePrefix ?? 'steward',
    ports,
  };
  await mkdir(dataDir, { recursive: true });
  await writeFile(productionSettingsFile(dataDir), JSON.stringify(settings, null, 2), { mode: 0o600 });
  return settings;
}

export function databaseNames(prefix: string): { temporal: string; visibility: string } {
  return { temporal: `${prefix}_temporal`, visibility: `${prefix}_temporal_visibility` };
}

function sqlToolArgs(pg: PostgresTarget, database: string): string[] {
  return [
    '--plugin',
    'postgres12',
    '--endpoint',
    pg.host,
    '--port',
    String(pg.port),
    '--user',
    pg.user,
    '--database',
    database,
    ...(pg.tls ? ['--tls', '--tls-disable-host-verification'] : []),
  ];
}

function runSqlTool(
  sqlTool: string,
  pg: PostgresTarget,
  database: string,
  args: string[],
): { ok: boolean; out: string } {
  const result = spawnSync(sqlTool, [...sqlToolArgs(pg, database), ...args], {
    encoding: 'utf8',
    // The password reaches the tool through its environment, never its command line.
    env: { ...process.env, SQL_PASSWORD: pg.password },
    timeout: 120_000,
  });
  return { ok: result.status === 0, out: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error?.message ?? ''}` };
}

/**
 * Creates Temporal's database and visibility database when absent, then brings both schemas to the versions this
 * server release ships, with `temporal-sql-tool` (idempotent: a later release's `up` upgrades them the same way).
 */
export function prepareTemporalDatabases(
  sqlTool: string,
  pg: PostgresTarget,
  prefix: string,
  step: (message: string) => void,
): void {
  const schemaRoot = path.join(temporalSchemaDir(), 'postgresql', 'v12');
  if (!existsSync(schemaRoot))
    throw new UserError(
      `Temporal's PostgreSQL schemas are missing at ${schemaRoot}: run \`steward tools --production\``,
    );
  const names = databaseNames(prefix);
  for (const [database, schema] of [
    [names.temporal, 'temporal'],
    [names.visibility, 'visibility'],
  ] as const) {
    const created = runSqlTool(sqlTool, pg, database, ['create-database']);
    if (!created.ok && !/already exists/.test(created.out))
      throw new UserError(`cannot create database ${database} on ${pg.host}:${pg.port}: ${lastLines(created.out)}`);
    step(
      `${created.ok ? 'created' : 'found'} database ${database}; bringing its schema to Temporal ${TEMPORAL_SERVER_VERSION}`,
    );
    for (const args of [
      ['setup-schema', '--version', '0.0'],
      ['update-schema', '--schema-dir', path.join(schemaRoot, schema, 'versioned')],
    ]) {
      const result = runSqlTool(sqlTool, pg, database, args);
      if (!result.ok)
        throw new UserError(`temporal-sql-tool ${args[0]} on ${database} failed: ${lastLines(result.out)}`);
    }
  }
}

/** Drops both of a cluster's databases (tests, and `steward down --purge`). */
export function dropTemporalDatabases(sqlTool: string, pg: PostgresTarget, prefix: string): void {
  for (const database of Object.values(databaseNames(prefix))) {
    const result = runSqlTool(sqlTool, pg, database, ['drop-database', '--force']);
    if (!result.ok && !/does not exist/.test(result.out))
      throw new UserError(`cannot drop database ${database}: ${lastLines(result.out)}`);
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' ');
}

/** The Temporal server's configuration: PostgreSQL persistence and SQL visibility, TLS on every connection. */
export function clusterConfig(
  settings: ProductionSettings,
  pki: DeploymentPki,
  dynamicConfigFile: string,
  bind: { frontendIp: string },
): string {
  const pg = parsePostgresUrl(settings.postgres);
  const names = databaseNames(settings.databasePrefix);
  const sql = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${pg.host}:${pg.port}`,
      connectProtocol: 'tcp',
      user: pg.user,
      password: pg.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
      ...(pg.tls ? { tls: { enabled: true, enableHostVerification: false } } : {}),
    },
  });
  const mutual = (pair: { certFile: string; keyFile: string }) => ({
    certFile: pair.certFile,
    keyFile: pair.keyFile,
    clientCaFiles: [pki.caFile],
    requireClientAuth: true,
  });
  const frontendAddress = `127.0.0.1:${settings.ports.frontend.grpc}`;
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: HISTORY_SHARDS,
      datastores: { default: sql(names.temporal, 20), visibility: sql(names.visibility, 4) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      tls: {
        internode: {
          server: mutual(pki.internode),
          client: { serverName: TLS_NAMES.internode, rootCaFiles: [pki.caFile] },
        },
        frontend: {
          server: mutual(pki.frontend),
          client: { serverName: TLS_NAMES.frontend, rootCaFiles: [pki.caFile] },
        },
        systemWorker: {
          certFile: pki.client.certFile,
          keyFile: pki.client.keyFile,
          client: { serverName: TLS_NAMES.frontend, rootCaFiles: [pki.caFile] },
        },
      },
    },
    services: Object.fromEntries(
      TEMPORAL_SERVICES.map((service) => [
        service,
        {
          rpc: {
            grpcPort: settings.ports[service].grpc,
            membershipPort: settings.ports[service].membership,
            ...(service === 'frontend' && bind.frontendIp !== '127.0.0.1'
              ? { bindOnIP: bind.frontendIp }
              : { bindOnLocalHost: true }),
          },
        },
      ]),
    ),
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'steward',
      currentClusterName: 'steward',
      clusterInformation: {
        steward: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: frontendAddress },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    publicClient: { hostPort: frontendAddress },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  return yaml.dump(config, { lineWidth: 200 });
}

/** Temporal's dynamic configuration file format: each key a list of values (here, one with no constraints). */
export function dynamicConfig(values: Record<string, string | number | boolean>): string {
  const all = {
    // Search attributes Steward registers at start are usable at once.
    'system.forceSearchAttributesCacheRefreshOnRead': true,
    'frontend.persistenceMaxQPS': 10_000,
    'history.persistenceMaxQPS': 45_000,
    ...values,
  };
  return yaml.dump(Object.fromEntries(Object.entries(all).map(([key, value]) => [key, [{ value }]])));
}

export function spawnTemporalService(serverBin: string, configFile: string, service: TemporalService): ChildProcess {
  return spawn(serverBin, ['--config-file', configFile, '--allow-no-auth', 'start', '--service', service], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Once the frontend answers over mutual TLS: the `default` namespace (registered on first start, with the profile's
 * history retention) and Steward's search attributes (SQL visibility keeps them per namespace).
 */
export async function ensureNamespace(endpoint: TemporalEndpoint, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ ...connectionOptions(endpoint), connectTimeout: '3s' });
      await connection.workflowService
        .registerNamespace({
          namespace: endpoint.namespace,
          description: 'Steward',
          workflowExecutionRetentionPeriod: msToTs(`${HISTORY_RETENTION_DAYS} days`),
        })
        .catch((error: { code?: number }) => {
          if (error.code !== GRPC_ALREADY_EXISTS) throw error;
        });
      const listed = await connection.operatorService.listSearchAttributes({ namespace: endpoint.namespace });
      const missing = Object.values(SEARCH_ATTRIBUTES).filter((key) => !(key.name in (listed.customAttributes ?? {})));
      if (missing.length > 0) {
        const types = { KEYWORD: 2, DATETIME: 6 } as const;
        await connection.operatorService.addSearchAttributes({
          namespace: endpoint.namespace,
          searchAttributes: Object.fromEntries(missing.map((key) => [key.name, types[key.type]])),
        });
        throw new Error(`search attributes ${missing.map((k) => k.name).join(', ')} registered; checking`);
      }
      return;
    } catch (error) {
      last = error;
      await sleep(500);
    } finally {
      await connection?.close();
    }
  }
  throw new Error(
    `the Temporal cluster did not become ready within ${timeoutMs / 1000}s: ${(last as Error)?.message ?? last}`,
  );
}
