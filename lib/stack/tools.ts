import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../runtime/errors';

/** The exact module versions Steward builds when a tool is not on PATH (later temporal tags cannot be go-installed). */
export const TOOL_MODULES = {
  temporal: ['github.com/temporalio/cli/cmd/temporal@v1.5.1', 'github.com/temporalio/cli/cmd/temporal@v1.5.0'],
  versitygw: ['github.com/versity/versitygw/cmd/versitygw@v1.7.0', 'github.com/versity/versitygw/cmd/versitygw@v1.6.0'],
} as const;
export type ToolName = keyof typeof TOOL_MODULES;

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
  if (existsSync(cached)) return cached;
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
    const result = spawnSync(go, ['install', module], {
      env: { ...process.env, GOBIN: dir },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    if (result.status === 0 && existsSync(cached)) return cached;
    failures.push(
      `${module}: ${(result.stderr || result.error?.message || '').trim().split('\n').slice(-3).join(' ')}`,
    );
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
