import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { tokenize } from './pseudonymize';

// The worker body repeats `tokenize` (NFC, trim, HMAC-SHA256, base64url); a unit test holds the two equal.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHmac } = require('node:crypto');
parentPort.on('message', ({ id, key, version, joined }) => {
  const k = Buffer.from(key);
  const prefix = 'v' + version + '.';
  const out = joined.split('\\0').map((v) => prefix + createHmac('sha256', k).update(v.normalize('NFC').trim(), 'utf8').digest('base64url'));
  parentPort.postMessage({ id, joined: out.join('\\0') });
});
`;

/** Below this many values a batch is keyed on the calling thread: handing it to workers would cost more. */
export const PARALLEL_THRESHOLD = 16_384;

/**
 * Tokenizes large batches on all cores with worker threads, started on the first large batch (a worker that only
 * ever sees small packages starts none). Keys are handed to the threads in memory only.
 */
export class TokenPool {
  private workers: Worker[] | undefined;
  private next = 0;
  private readonly pending = new Map<number, (out: string[]) => void>();

  constructor(private readonly size = Math.max(1, os.availableParallelism())) {}

  private threads(): Worker[] {
    this.workers ??= Array.from({ length: this.size }, () => {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      // Batches travel as one NUL-joined string: far cheaper to pass between threads than an array of strings.
      worker.on('message', ({ id, joined }: { id: number; joined: string }) => {
        this.pending.get(id)?.(joined.split('\0'));
        this.pending.delete(id);
      });
      return worker;
    });
    return this.workers;
  }

  async tokenize(key: Buffer, version: number, values: string[]): Promise<string[]> {
    if (values.length < PARALLEL_THRESHOLD || this.size === 1 || values.some((v) => v.includes('\0'))) {
      return values.map((v) => tokenize(key, version, v));
    }
    const workers = this.threads();
    const size = Math.ceil(values.length / workers.length);
    const parts = await Promise.all(
      workers.map(
        (worker, i) =>
          new Promise<string[]>((resolve) => {
            const id = this.next++;
            this.pending.set(id, resolve);
            worker.postMessage({
              id,
              key: new Uint8Array(key),
              version,
              joined: values.slice(i * size, (i + 1) * size).join('\0'),
            });
          }),
      ),
    );
    return parts.flat();
  }

  async close(): Promise<void> {
    await Promise.all((this.workers ?? []).map((w) => w.terminate()));
  }
}
