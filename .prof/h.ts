import { hashFile } from '../lib/objects';
import { execFileSync } from 'node:child_process';
(async () => {
  for (let i = 0; i < 3; i++) {
    let t = performance.now();
    await hashFile('/tmp/demo-big/package/data/labs.csv');
    const a = performance.now() - t;
    t = performance.now();
    execFileSync('openssl', ['dgst', '-sha256', '/tmp/demo-big/package/data/labs.csv']);
    console.log(a, performance.now() - t);
  }
})();
