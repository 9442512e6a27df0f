import { createHash, createHmac, randomBytes } from 'node:crypto';
const key = randomBytes(32);
const ids = Array.from({ length: 300_000 }, (_, i) => `EU-STUDY-${String(i).padStart(8, '0')}`);
function bench(name: string, f: (s: string) => string) {
  f('warm');
  const t = performance.now();
  for (const id of ids) f(id);
  console.log(name, Math.round(ids.length / ((performance.now() - t) / 1000)));
}
bench('createHmac', (s) => createHmac('sha256', key).update(s).digest('base64url'));
bench(
  'createHmac+norm',
  (s) => 'v1.' + createHmac('sha256', key).update(s.normalize('NFC').trim(), 'utf8').digest('base64url'),
);
const ipad = Buffer.alloc(64, 0x36),
  opad = Buffer.alloc(64, 0x5c);
for (let i = 0; i < 32; i++) {
  ipad[i]! ^= key[i]!;
  opad[i]! ^= key[i]!;
}
const inner = createHash('sha256').update(ipad),
  outer = createHash('sha256').update(opad);
bench('copy', (s) => outer.copy().update(inner.copy().update(s).digest()).digest('base64url'));
console.log(
  createHmac('sha256', key).update('abc').digest('base64url') ===
    outer.copy().update(inner.copy().update('abc').digest()).digest('base64url'),
);
bench('hash only', (s) => createHash('sha256').update(s).digest('base64url'));
