import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '../lib/stack/process';
import { deployFolders } from '../lib/stack/versions';
import { readStackState } from '../lib/runtime/config';
import { writeFileAtomic } from '../lib/runtime/files';
import { EXIT, UserError } from '../lib/runtime/errors';
import type { StackState } from '../schemas/config';
import type { SignedRequest } from '../schemas/request';
import type { CommandContext } from './context';

/** The running production stack of the data dir, or a clear error: what `workers deploy` and `dr failover` ask. */
export function runningProductionStack(ctx: CommandContext, needs: string): StackState {
  const state = readStackState(ctx.config.dataDir);
  if (!state || !isAlive(state.pid)) {
    throw new UserError(
      `no Steward stack is running for ${ctx.config.dataDir}; start it with \`steward up\``,
      EXIT.notRunning,
    );
  }
  if (state.profile !== 'production') throw new UserError(needs, EXIT.usage);
  return state;
}

/**
 * Hands a signed request to the stack process, which verifies it itself (it holds what the CLI does not: the sites'
 * processes and the workers): a file under the data dir's request folder, then SIGHUP. Waits for the stack's result
 * file of the same name, as long as `waitMs` and while the stack runs.
 */
export async function askStack<T>(
  dataDir: string,
  state: StackState,
  request: SignedRequest,
  requestId: string,
  waitMs: number,
): Promise<T> {
  const folders = deployFolders(dataDir);
  await mkdir(folders.requests, { recursive: true, mode: 0o700 });
  const file = `${new Date().toISOString().replace(/[:.]/g, '')}-${requestId}.json`;
  await writeFileAtomic(path.join(folders.requests, file), JSON.stringify(request), 0o600);
  process.kill(state.pid, 'SIGHUP');
  const resultFile = path.join(folders.results, file);
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (existsSync(resultFile)) return JSON.parse(await readFile(resultFile, 'utf8')) as T;
    const now = readStackState(dataDir);
    if (!now || !isAlive(now.pid)) throw new UserError('the stack stopped before it answered', EXIT.notRunning);
    await sleep(500);
  }
  throw new UserError(`the stack did not answer within ${waitMs / 60_000} minutes; see its log`);
}
