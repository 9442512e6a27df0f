import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** One line of the benchmark report: a name, then its figure. */
export function line(name: string, value: string): void {
  process.stdout.write(`${name.padEnd(52)} ${value}\n`);
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** CPU seconds (user + system, every thread) a process has used so far, from Linux's /proc; null elsewhere. */
function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Kernel clock ticks per second, for /proc's CPU times. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Starts counting the CPU seconds the named processes use; the returned function tells them (and their share of the
 * machine's cores over the wall time since), or null where /proc is not there to read.
 */
export function cpuMeter(processes: Record<string, number | null>): () => { text: string; total: number } | null {
  const started = performance.now();
  const before = Object.entries(processes).map(([name, pid]) => ({ name, pid, at: pid ? cpuSecondsOf(pid) : null }));
  return () => {
    const seconds = (performance.now() - started) / 1000;
    const used = before.flatMap(({ name, pid, at }) => {
      const now = pid ? cpuSecondsOf(pid) : null;
      return now === null || at === null ? [] : [{ name, cpu: now - at }];
    });
    if (used.length === 0) return null;
    const total = used.reduce((sum, u) => sum + u.cpu, 0);
    const busy = (100 * total) / (seconds * os.availableParallelism());
    return {
      total,
      text: `${used.map((u) => `${u.name} ${u.cpu.toFixed(1)}`).join(', ')}; ${total.toFixed(1)} CPU-s, ${busy.toFixed(0)} % of ${os.availableParallelism()} cores`,
    };
  };
}
