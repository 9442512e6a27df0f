import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { canonicalizeIdentifier, keyedHmacSha256, tokenize } from './pseudonymize';

// The threads key canonical values with the very HMAC function the calling thread uses, from its source text; a unit
// test holds the results equal to `tokenize`. Values and tokens pass through memory shared with the thread: the values
// as NUL-separated UTF-8, the tokens as fixed-width ASCII; neither is copied between the threads.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
const keyedHmacSha256 = ${keyedHmacSha256.toString()};
const sha256 = (data, encoding) => hash('sha256', data, encoding);
parentPort.on('message', ({ id, key, prefix, bytes, tokens }) => {
  const hmac = keyedHmacSha256(sha256, Buffer.from(key));
  const input = new Uint8Array(bytes);
  const out = Buffer.from(tokens);
  const width = prefix.length + 43;
  for (let start = 0, at = 0; start <= input.length; at += width) {
    let end = input.indexOf(0, start);
    if (end < 0) end = input.length;
    out.write(prefix, at, 'latin1');
    out.write(hmac(input.subarray(start, end)), at + prefix.length, 'latin1');
    start = end + 1;
  }
  parentPort.postMessage({ id });
});
`;

/** The calling thread's share of a large batch, relative to an equal split. */
const HOME_SHARE = 0.9;

/** Pieces each thread's share is sent in. */
const PIECES = 4;

/**
 * Below this many values a batch is keyed on the calling thread: starting threads and handing the batch over would
 * cost more than they save (threads of one process slow each other down, so each runs slower than alone).
 */
export const PARALLEL_THRESHOLD = 50_000;

interface Pending {
  worker: Worker;
  resolve: () => void;
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
      worker.on('message', ({ id }: { id: number }) => {
        this.pending.get(id)?.resolve();
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
    const joined = values.map(canonicalizeIdentifier).join('\0');
    const bytes = Buffer.from(new SharedArrayBuffer(Buffer.byteLength(joined)));
    bytes.write(joined);
    const width = prefix.length + 43;
    const tokens = new SharedArrayBuffer(width * values.length);
    return new Promise<void>((resolve, reject) => {
      const id = this.next++;
      this.pending.set(id, { worker, resolve, reject });
      worker.postMessage({
        id,
        key: new Uint8Array(key),
        prefix,
        bytes: bytes.buffer,
        tokens,
      });
    }).then(() => {
      const text = Buffer.from(tokens).toString('latin1');
      return Array.from({ length: values.length }, (_, i) => text.slice(i * width, (i + 1) * width));
    });
  }

  async tokenize(key: Buffer, version: number, values: string[]): Promise<string[]> {
    const keyHere = (part: string[]): string[] => part.map((v) => tokenize(key, version, v));
    if (values.length < PARALLEL_THRESHOLD || this.cores === 1 || values.some((v) => v.includes('\0'))) {
      return keyHere(values);
    }
    // This thread also packs the other shares and unpacks their tokens, so it keys a little less than an equal share.
    // Each share leaves in pieces: its thread starts on the first while the rest are packed.
    const share = Math.floor((values.length / this.cores) * HOME_SHARE);
    const rest = Math.ceil((values.length - share) / (this.cores - 1));
    const piece = Math.ceil(rest / PIECES);
    const away: Promise<string[]>[] = [];
    this.threads().forEach((worker, i) => {
      const end = Math.min(values.length, share + (i + 1) * rest);
      for (let from = share + i * rest; from < end; from += piece) {
        away.push(this.send(worker, key, `v${version}.`, values.slice(from, Math.min(end, from + piece))));
      }
    });
    const here = keyHere(values.slice(0, share));
    return here.concat(...(await Promise.all(away)));
  }

  async close(): Promise<void> {
    const workers = this.workers ?? [];
    this.workers = undefined;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
