import type { ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';

export type StackEvent =
  | { kind: 'step'; message: string }
  | { kind: 'crash'; process: string; code: number | null; signal: string | null; log: string; restarting: boolean }
  | { kind: 'restarted'; process: string; pid: number | undefined }
  | { kind: 'killed'; process: string; graceMs: number };

interface Managed {
  name: string;
  log: string;
  spawnIt: () => ChildProcess;
  child: ChildProcess | undefined;
  restarts: number[];
  ready?: (child: ChildProcess) => Promise<void>;
  /** Stopped for good: its exit is not a crash. */
  retired?: boolean;
}

const MAX_RESTARTS_PER_MINUTE = 5;

/** How long a child may take to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 15_000;

export function tailOfLog(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

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

/**
 * Runs the stack's child processes, each logging to `<logDir>/<name>.log`: a child that exits unexpectedly is
 * reported and restarted, up to a few times a minute; past that the supervisor fails.
 */
export class Supervisor {
  private readonly managed: Managed[] = [];
  private stopping = false;
  private failure: Error | undefined;
  private readonly failedListeners: ((error: Error) => void)[] = [];
  /** Set once the stack is up: before that a crash fails the start instead of being restarted. */
  running = false;

  constructor(
    private readonly logDir: string,
    private readonly emit: (event: StackEvent) => void,
    private readonly onRestarted: () => Promise<void>,
  ) {}

  logOf(name: string): string {
    return path.join(this.logDir, `${name}.log`);
  }

  add(name: string, spawnIt: () => ChildProcess, ready?: (child: ChildProcess) => Promise<void>): void {
    const managed: Managed = {
      name,
      log: this.logOf(name),
      spawnIt,
      child: undefined,
      restarts: [],
      ...(ready ? { ready } : {}),
    };
    this.managed.push(managed);
    this.launch(managed);
  }

  /** Stops children for good (they are not restarted) and forgets them: workers of a release that is no longer current. */
  async retire(names: readonly string[]): Promise<void> {
    const retiring = this.managed.filter((m) => names.includes(m.name));
    for (const m of retiring) m.retired = true;
    await Promise.all(
      retiring.map(async (m) => {
        if (await stopChild(m.child)) this.emit({ kind: 'killed', process: m.name, graceMs: STOP_GRACE_MS });
      }),
    );
    for (const m of retiring) this.managed.splice(this.managed.indexOf(m), 1);
  }

  /** Waits until every child with a readiness check (or those named) reports ready, once after it was added. */
  async ready(names?: readonly string[]): Promise<void> {
    await Promise.all(
      this.managed.filter((m) => m.ready && (!names || names.includes(m.name))).map((m) => m.ready!(m.child!)),
    );
  }

  pidOf(name: string): number | null {
    return this.managed.find((m) => m.name === name)?.child?.pid ?? null;
  }

  children(prefix: string): { name: string; pid: number | null; restarts: number }[] {
    return this.managed
      .filter((m) => m.name.startsWith(prefix))
      .map((m) => ({ name: m.name, pid: m.child?.pid ?? null, restarts: m.restarts.length }));
  }

  private launch(managed: Managed): void {
    const child = managed.spawnIt();
    const out = createWriteStream(managed.log, { flags: 'a' });
    // Both streams write to one log, which ends once the child has closed them both (the first to end must not end it).
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.once('close', () => out.end());
    managed.child = child;
    child.on('error', (error) => out.write(`\n[steward] failed to start: ${error.message}\n`));
    child.once('exit', (code, signal) => {
      if (this.stopping || managed.retired) return;
      const now = Date.now();
      managed.restarts = managed.restarts.filter((t) => now - t < 60_000);
      const restarting = managed.restarts.length < MAX_RESTARTS_PER_MINUTE && this.running;
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
            return this.onRestarted();
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

  /** Stops the children whose names start with each prefix in turn (workers first, then servers). Safe twice. */
  async stop(order: string[]): Promise<void> {
    this.stopping = true;
    const groups = order.map((prefix) => this.managed.filter((m) => m.name.startsWith(prefix)));
    const rest = this.managed.filter((m) => !groups.flat().includes(m));
    for (const group of [...groups, rest]) {
      await Promise.all(
        group.map(async (m) => {
          if (await stopChild(m.child)) this.emit({ kind: 'killed', process: m.name, graceMs: STOP_GRACE_MS });
        }),
      );
    }
  }
}
