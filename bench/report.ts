/** One line of the benchmark report: a name, then its figure. */
export function line(name: string, value: string): void {
  process.stdout.write(`${name.padEnd(52)} ${value}\n`);
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
