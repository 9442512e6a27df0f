import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../runtime/errors';

/**
 * The Temporal server release the production profile runs: the newest that builds with `go install` on Go 1.26.8 (its
 * later releases ask for a newer Go). Its SQL schemas ship in the same module.
 */
export const TEMPORAL_SERVER_VERSION = 'v1.30.4';

/** The exact module versions Steward builds when a tool is not on PATH (later temporal tags cannot be go-installed). */
export const TOOL_MODULES = {
  temporal: ['github.com/temporalio/cli/cmd/temporal@v1.5.1', 'github.com/temporalio/cli/cmd/temporal@v1.5.0'],
  versitygw: ['github.com/versity/versitygw/cmd/versitygw@v1.7.0', 'github.com/versity/versitygw/cmd/versitygw@v1.6.0'],
  'temporal-server': [`go.temporal.io/server/cmd/server@${TEMPORAL_SERVER_VERSION}`],
  'temporal-sql-tool': [`go.temporal.io/server/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`],
  // The Temporal Web UI server (its UI assets are embedded); later releases ask for Go 1.26.9 or newer.
  'temporal-ui-server': ['github.com/temporalio/ui-server/v2/cmd/server@v2.55.0'],
} as const;
export type ToolName = keyof typeof TOOL_MODULES;

/** The tools the embedded stack needs; `steward tools --production` adds the rest. */
export const EMBEDDED_TOOLS: ToolName[] = ['temporal', 'versitygw'];
export const PRODUCTION_TOOLS: ToolName[] = ['temporal-server', 'temporal-sql-tool', 'temporal-ui-server'];

export function toolCacheDir(env = process.env): string {
  return env.STEWARD_TOOLS_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'steward', 'bin');
}

function onPath(name: string, env = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function findGo(env = process.env): string | undefined {
  return onPath('go', env) ?? ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'].find((p) => existsSync(p));
}

/**
 * Path of a tool: from PATH, else from Steward's tool cache, else built there with `go install`.
 * `onProgress` receives one line per step, for a CLI to show.
 */
export async function ensureTool(name: ToolName, onProgress: (line: string) => void = () => {}): Promise<string> {
  const fromPath = onPath(name);
  if (fromPath) return fromPath;
  const dir = toolCacheDir();
  const cached = path.join(dir, name);
  // The SQL tool is of no use without the schemas it applies, kept beside it when it is built.
  if (existsSync(cached) && (name !== 'temporal-sql-tool' || existsSync(temporalSchemaDir()))) return cached;
  const go = findGo();
  if (!go) {
    throw new UserError(
      `${name} is not on PATH and Go is not installed to build it. Install Go 1.23 or later (https://go.dev/doc/install, ` +
        `or the Debian package golang-go), or put a ${name} binary on PATH, then run again.`,
    );
  }
  await mkdir(dir, { recursive: true });
  const failures: string[] = [];
  for (const module of TOOL_MODULES[name]) {
    onProgress(`building ${module} with ${go} (first run only; takes a few minutes)`);
    // Go names a binary after its package's folder (`server`, `sql`): it is built apart and moved to its tool name.
    const gobin = await mkdtemp(path.join(dir, `.${name}-`));
    try {
      const result = spawnSync(go, ['install', module], {
        env: { ...process.env, GOBIN: gobin },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 64 * 1024 * 1024,
      });
      const built = path.join(gobin, path.basename(module.split('@')[0]!));
      if (result.status === 0 && existsSync(built)) {
        if (name === 'temporal-sql-tool') await keepTemporalSchema(go, module);
        await rename(built, cached);
        return cached;
      }
      failures.push(
        `${module}: ${(result.stderr || result.error?.message || '').trim().split('\n').slice(-3).join(' ')}`,
      );
    } finally {
      await rm(gobin, { recursive: true, force: true });
    }
  }
  throw new UserError(`could not build ${name}:\n${failures.join('\n')}`);
}

/**
 * A Go tool's module and version, from the build information Go embeds in every binary (`mod\t<path>\t<version>`),
 * else from its `--version` output; null when neither says.
 */
export function toolVersion(bin: string): string | null {
  try {
    const match = /\nmod\t([^\t\n]+)\t(v[^\t\n]+)/.exec(readFileSync(bin).toString('latin1'));
    if (match) return `${match[1]} ${match[2]}`;
  } catch {
    // Unreadable binary: ask it.
  }
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const line = `${result.stdout ?? ''}`.split('\n').find((l) => l.trim() !== '');
  return result.status === 0 && line ? line.trim().slice(0, 200) : null;
}

/** Where the Temporal server's SQL schemas are kept, beside the tools (the Go module cache may be cleaned). */
export function temporalSchemaDir(env = process.env): string {
  return path.join(toolCacheDir(env), '..', 'temporal-schema', TEMPORAL_SERVER_VERSION);
}

async function keepTemporalSchema(go: string, module: string): Promise<void> {
  const modCache = spawnSync(go, ['env', 'GOMODCACHE'], { encoding: 'utf8' }).stdout.trim();
  const source = path.join(modCache, `go.temporal.io/server@${module.split('@')[1]}`, 'schema', 'postgresql');
  if (!existsSync(source)) throw new UserError(`the Temporal server module has no PostgreSQL schema at ${source}`);
  await rm(temporalSchemaDir(), { recursive: true, force: true });
  await mkdir(temporalSchemaDir(), { recursive: true });
  await cp(source, path.join(temporalSchemaDir(), 'postgresql'), { recursive: true });
}
