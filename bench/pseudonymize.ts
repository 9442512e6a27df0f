import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { tokenize, Tokenizer } from '../lib/crypto/pseudonymize';
import { PARALLEL_THRESHOLD, TokenPool } from '../lib/crypto/token-pool';
import { line } from './report';

/** Native HMAC-SHA256 ceiling for 16-byte inputs on one core: `openssl speed -hmac sha256`. */
function opensslHmacPerSecond(): number {
  const out = execFileSync('openssl', ['speed', '-hmac', 'sha256', '-bytes', '16', '-seconds', '2'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const kilobytes = Number(/hmac\(sha256\)\s+([\d.]+)k/.exec(out)?.[1]);
  return (kilobytes * 1000) / 16;
}

export async function pseudonymizationBench(): Promise<void> {
  const key = randomBytes(32);
  const native = opensslHmacPerSecond();
  const distinct = Array.from({ length: 1_000_000 }, (_, i) => `EU-STUDY-${String(i).padStart(8, '0')}`);
  let t = performance.now();
  for (const id of distinct) tokenize(key, 1, id);
  const single = distinct.length / ((performance.now() - t) / 1000);
  const pool = new TokenPool();
  await pool.tokenize(key, 1, distinct.slice(0, PARALLEL_THRESHOLD * 2));
  t = performance.now();
  await pool.tokenize(key, 1, distinct);
  const parallel = distinct.length / ((performance.now() - t) / 1000);
  await pool.close();
  const subjects = distinct.slice(0, 50_000);
  const tokenizer = new Tokenizer(key, 1);
  let state = 7;
  t = performance.now();
  for (let i = 0; i < 10_000_000; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    tokenizer.token(subjects[state % subjects.length]!);
  }
  const repeated = 10_000_000 / ((performance.now() - t) / 1000);
  line('openssl speed -hmac sha256 (16 B) tokens/s/core', native.toFixed(0));
  line(
    'distinct identifiers, one thread tokens/s',
    `${single.toFixed(0)} (ratio ${(single / native).toFixed(2)}, target ≥ 0.12)`,
  );
  const cores = os.availableParallelism();
  line(
    `distinct identifiers, ${cores} threads tokens/s`,
    `${parallel.toFixed(0)} (${(parallel / single).toFixed(2)}× one thread; per core ${(parallel / cores / native).toFixed(2)} of the ceiling)`,
  );
  line('10M rows from 50k subjects rows/s', `${repeated.toFixed(0)} (target ≥ 2000000)`);
}
