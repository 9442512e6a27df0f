import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import {
  ConfigFileSchema,
  StackStateSchema,
  type ConfigFile,
  type S3Endpoint,
  type StackState,
  type TemporalEndpoint,
} from '../../schemas/config';
import { JURISDICTION_IDS } from '../../jurisdictions';
import { EXIT, UserError } from './errors';

export interface StewardConfig {
  dataDir: string;
  temporal: TemporalEndpoint;
  s3For(jurisdiction: string): S3Endpoint;
  /** The jurisdiction's disaster-recovery site (same account), where it has one. */
  drFor(jurisdiction: string): S3Endpoint | undefined;
  /** The identity a command signs with: `--identity`, `STEWARD_IDENTITY`, the config file, else the data dir's demo steward. */
  identityDir: string;
  /** The Steward CA, its CRL and the evidence signers' certificates. */
  pkiDir: string;
  masterKey: string | undefined;
  jurisdictions: string[];
  stack: StackState | undefined;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.STEWARD_DATA_DIR ?? path.join(process.cwd(), '.steward'));
}

export function stackFile(dataDir: string): string {
  return path.join(dataDir, 'stack.json');
}

/** A JSON file a person gave or configured; one that cannot be read or parsed is a UserError naming it. */
export function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UserError(`${file}: cannot be read as JSON (${(error as Error).message})`);
  }
}

function readJson<T>(file: string, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(readJsonFile(file));
  if (!parsed.success) throw new UserError(`${file}: invalid\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function readStackState(dataDir: string): StackState | undefined {
  const file = stackFile(dataDir);
  return existsSync(file) ? readJson(file, StackStateSchema) : undefined;
}

/**
 * One validated configuration from the environment, an optional config file and the embedded stack's state file.
 * Precedence: environment, then config file, then the running embedded stack.
 */
export function loadConfig(options: { dataDir?: string; identity?: string } = {}, env = process.env): StewardConfig {
  const dataDir = options.dataDir ? path.resolve(options.dataDir) : defaultDataDir(env);
  const configPath = env.STEWARD_CONFIG ?? path.join(dataDir, 'config.json');
  const file: ConfigFile = existsSync(configPath) ? readJson(configPath, ConfigFileSchema) : {};
  const stack = readStackState(dataDir);

  const envTls =
    env.STEWARD_TEMPORAL_TLS_CERT && env.STEWARD_TEMPORAL_TLS_KEY
      ? {
          certFile: env.STEWARD_TEMPORAL_TLS_CERT,
          keyFile: env.STEWARD_TEMPORAL_TLS_KEY,
          ...(env.STEWARD_TEMPORAL_TLS_CA ? { caFile: env.STEWARD_TEMPORAL_TLS_CA } : {}),
          ...(env.STEWARD_TEMPORAL_TLS_SERVER_NAME ? { serverName: env.STEWARD_TEMPORAL_TLS_SERVER_NAME } : {}),
        }
      : undefined;
  const temporal: TemporalEndpoint | undefined = env.STEWARD_TEMPORAL_ADDRESS
    ? {
        address: env.STEWARD_TEMPORAL_ADDRESS,
        namespace: env.STEWARD_TEMPORAL_NAMESPACE ?? 'default',
        ...(envTls ? { tls: envTls } : {}),
      }
    : (file.temporal ??
      (stack
        ? {
            address: stack.temporal.address,
            namespace: stack.temporal.namespace,
            ...(stack.temporal.tls ? { tls: stack.temporal.tls } : {}),
          }
        : undefined));

  const envS3: S3Endpoint | undefined =
    env.STEWARD_S3_ENDPOINT && env.STEWARD_S3_ACCESS_KEY_ID && env.STEWARD_S3_SECRET_ACCESS_KEY
      ? {
          endpoint: env.STEWARD_S3_ENDPOINT,
          region: env.STEWARD_S3_REGION ?? 'us-east-1',
          accessKeyId: env.STEWARD_S3_ACCESS_KEY_ID,
          secretAccessKey: env.STEWARD_S3_SECRET_ACCESS_KEY,
          forcePathStyle: true,
          ...(env.STEWARD_S3_CA_FILE ? { caFile: env.STEWARD_S3_CA_FILE } : {}),
        }
      : undefined;

  const notRunning = `no Steward stack is running for data dir ${dataDir}: start one with \`steward up\`, or point STEWARD_TEMPORAL_ADDRESS and STEWARD_S3_* (or STEWARD_CONFIG) at an existing deployment`;
  return {
    dataDir,
    get temporal(): TemporalEndpoint {
      if (!temporal) throw new UserError(notRunning, EXIT.notRunning);
      return temporal;
    },
    s3For(jurisdiction: string): S3Endpoint {
      const account = stack?.jurisdictions[jurisdiction]?.account;
      const site = stack?.jurisdictions[jurisdiction]?.storage;
      const found =
        file.s3ByJurisdiction?.[jurisdiction] ??
        envS3 ??
        file.s3 ??
        (stack && site
          ? {
              ...stack.s3,
              // After `steward dr failover`, the DR site is the one written to.
              endpoint: site.active === 'dr' && site.dr ? site.dr.endpoint : site.endpoint,
              caFile: site.caFile,
              ...(account ?? {}),
            }
          : stack
            ? { ...stack.s3, ...(account ?? {}) }
            : undefined);
      if (!found) throw new UserError(notRunning, EXIT.notRunning);
      return found;
    },
    drFor(jurisdiction: string): S3Endpoint | undefined {
      const site = stack?.jurisdictions[jurisdiction]?.storage;
      const endpoint = env.STEWARD_S3_DR_ENDPOINT ?? (site?.active === 'dr' ? site.endpoint : site?.dr?.endpoint);
      return endpoint ? { ...this.s3For(jurisdiction), endpoint } : undefined;
    },
    identityDir: path.resolve(
      options.identity ?? env.STEWARD_IDENTITY ?? file.identity ?? path.join(dataDir, 'identities', 'steward'),
    ),
    pkiDir: path.resolve(env.STEWARD_PKI_DIR ?? file.pkiDir ?? path.join(dataDir, 'pki')),
    masterKey: env.STEWARD_MASTER_KEY,
    jurisdictions: file.jurisdictions ?? (stack ? Object.keys(stack.jurisdictions) : JURISDICTION_IDS),
    stack,
  };
}
