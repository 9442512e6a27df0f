import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
const f = '/tmp/demo-big/package/data/labs.csv';
(async () => {
  for (let i = 0; i < 3; i++) {
    const buf = readFileSync(f);
    let t = performance.now();
    createHash('sha256').update(buf).digest('hex');
    const pure = performance.now() - t;
    t = performance.now();
    const h = createHash('sha256');
    const fh = await open(f, 'r');
    const b = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(b, 0, b.length, null);
      if (!bytesRead) break;
      h.update(b.subarray(0, bytesRead));
    }
    await fh.close();
    h.digest('hex');
    console.log('pure', pure.toFixed(0), 'loop1MB', (performance.now() - t).toFixed(0));
  }
})();
