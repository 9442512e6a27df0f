import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { canonicalizeIdentifier, keyedHmacSha256, tokenize } from './pseudonymize';

// The threads key canonical values with the very HMAC function the calling thread uses, from its source text; a unit
// test holds the results equal to `tokenize`. A batch arrives as one NUL-joined string and leaves as one buffer of
// fixed-width tokens, moved rather than copied: far cheaper between threads than arrays of strings.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const keyedHmacSha256 = ${keyedHmacSha256.toString()};
const sha256 = (data, encoding) => hash('sha256', data, encoding);
parentPort.on('message', ({ id, key, prefix, joined }) => {
  const hmac = keyedHmacSha256(sha256, Buffer.from(key));
  const values = joined.split('\\0');
  const out = Buffer.allocUnsafe(values.length * (prefix.length + 43));
  let at = 0;
  for (const v of values) {
    at += out.write(prefix, at, 'latin1');
    at += out.write(hmac(v), at, 'latin1');
  }
  parentPort.postMessage({ id, out }, [out.buffer]);
});
`;

/**
 * Below this many values a batch is keyed on the calling thread: starting threads and handing the batch over would
 * cost more than they save (threads of one process share OpenSSL's digest lookups, so each runs slower than alone).
 */
export const PARALLEL_THRESHOLD = 50_000;

interface Pending {
  worker: Worker;
  resolve: (out: Buffer) => void;
  reject: (e: Error) => void;
}

/**
 * Tokenizes large batches on every core: the calling thread keys one share while worker threads key the others. The
 * threads start on the first large batch (a worker that only ever sees small packages starts none). Keys reach the
 * threads in memory only.
 */
export class TokenPool {
  private workers: Worker[] | undefined;
  private next = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly cores = Math.max(1, os.availableParallelism())) {}

  private threads(): Worker[] {
    this.workers ??= Array.from({ length: this.cores - 1 }, () => {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      worker.on('message', ({ id, out }: { id: number; out: Uint8Array }) => {
        this.pending.get(id)?.resolve(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
        this.pending.delete(id);
      });
      // A thread that fails fails its batches (the caller's activity retries) and the next batch starts fresh threads.
      const failed = (error: Error) => {
        if (this.workers?.includes(worker)) {
          const stopping = this.workers;
          this.workers = undefined;
          void Promise.all(stopping.map((w) => w.terminate()));
        }
        for (const [id, batch] of this.pending) {
          if (batch.worker !== worker) continue;
          batch.reject(error);
          this.pending.delete(id);
        }
      };
      worker.on('error', failed);
      worker.on('exit', (code) => failed(new Error(`token thread exited with code ${code}`)));
      return worker;
    });
    return this.workers;
  }

  private send(worker: Worker, key: Buffer, prefix: string, values: string[]): Promise<string[]> {
    return new Promise<Buffer>((resolve, reject) => {
      const id = this.next++;
      this.pending.set(id, { worker, resolve, reject });
      worker.postMessage({
        id,
        key: new Uint8Array(key),
        prefix,
        joined: values.map(canonicalizeIdentifier).join('\0'),
      });
    }).then((out) => {
      const width = prefix.length + 43;
      const text = out.toString('latin1');
      return Array.from({ length: values.length }, (_, i) => text.slice(i * width, (i + 1) * width));
    });
  }

  async tokenize(key: Buffer, version: number, values: string[]): Promise<string[]> {
    const keyHere = (part: string[]): string[] => part.map((v) => tokenize(key, version, v));
    if (values.length < PARALLEL_THRESHOLD || this.cores === 1 || values.some((v) => v.includes('\0'))) {
      return keyHere(values);
    }
    const share = Math.ceil(values.length / this.cores);
    const away = this.threads().map((worker, i) =>
      this.send(worker, key, `v${version}.`, values.slice((i + 1) * share, (i + 2) * share)),
    );
    const here = keyHere(values.slice(0, share));
    return here.concat(...(await Promise.all(away)));
  }

  async close(): Promise<void> {
    const workers = this.workers ?? [];
    this.workers = undefined;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
