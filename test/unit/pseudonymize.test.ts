import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PARALLEL_THRESHOLD, TokenPool } from '../../lib/crypto/token-pool';
import {
  canonicalizeIdentifier,
  dateShiftDays,
  tokenize,
  Tokenizer,
  tokenKeyVersion,
} from '../../lib/crypto/pseudonymize';

const key = Buffer.alloc(32, 7);

describe('tokens', () => {
  it('are deterministic, name their key version, and differ across keys', () => {
    const token = tokenize(key, 1, 'SUBJ-001');
    expect(token).toBe(tokenize(key, 1, 'SUBJ-001'));
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
    expect(tokenKeyVersion(token)).toBe(1);
    expect(tokenize(Buffer.alloc(32, 8), 1, 'SUBJ-001')).not.toBe(token);
    expect(tokenize(key, 2, 'SUBJ-001').slice(3)).toBe(token.slice(3));
    expect(tokenKeyVersion('not-a-token')).toBeUndefined();
  });

  it('canonicalize Unicode form and surrounding spaces before keying', () => {
    const nfc = 'Jos\u00e9';
    const nfd = 'Jose\u0301';
    expect(nfc).not.toBe(nfd);
    expect(canonicalizeIdentifier(` ${nfd}\t`)).toBe(nfc);
    expect(tokenize(key, 1, nfd)).toBe(tokenize(key, 1, ` ${nfc} `));
    expect(tokenize(key, 1, 'jose')).not.toBe(tokenize(key, 1, nfc));
  });

  it('are HMAC-SHA256 (RFC 4231 test case 2 through the token path)', () => {
    const jefe = Buffer.from('Jefe');
    const expected = Buffer.from('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', 'hex').toString(
      'base64url',
    );
    expect(tokenize(jefe, 1, 'what do ya want for nothing?')).toBe(`v1.${expected}`);
    expect(createHmac('sha256', jefe).update('what do ya want for nothing?').digest('base64url')).toBe(expected);
  });

  it('are HMAC-SHA256 for keys longer than a block (RFC 4231 test cases 6 and 7)', () => {
    const long = Buffer.alloc(131, 0xaa);
    const cases = [
      [
        'Test Using Larger Than Block-Size Key - Hash Key First',
        '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
      ],
      [
        'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
        '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
      ],
    ] as const;
    for (const [data, hex] of cases) {
      expect(tokenize(long, 1, data)).toBe(`v1.${Buffer.from(hex, 'hex').toString('base64url')}`);
    }
  });

  it('agree with createHmac for every identifier length and for non-ASCII identifiers', () => {
    for (const value of ['', 'a', 'Zoë Ångström', '患者-0042', 'x'.repeat(341), '€'.repeat(400), 'y'.repeat(5000)]) {
      expect(tokenize(key, 1, value)).toBe(
        `v1.${createHmac('sha256', key).update(canonicalizeIdentifier(value), 'utf8').digest('base64url')}`,
      );
    }
  });

  it('Tokenizer memoizes without changing results', () => {
    const t = new Tokenizer(key, 3);
    expect(t.token('a')).toBe(tokenize(key, 3, 'a'));
    expect(t.token('a')).toBe(t.token('a'));
  });
});

describe('date shifts', () => {
  it('are HMAC-SHA256 of the canonical identifier under a date-shift label, read as a 32-bit number', () => {
    for (const id of ['S-1', ' S-2 ', 'Jose\u0301', 'x'.repeat(600)]) {
      const mac = createHmac('sha256', key)
        .update(`steward-date-shift\0${canonicalizeIdentifier(id)}`, 'utf8')
        .digest();
      const n = mac.readUInt32BE(0) % 730;
      expect(dateShiftDays(key, id, 365)).toBe(n < 365 ? n - 365 : n - 364);
    }
  });

  it('are per subject, deterministic, within the window and never zero', () => {
    const shifts = Array.from({ length: 2000 }, (_, i) => dateShiftDays(key, `S-${i}`, 3));
    expect(new Set(shifts)).toEqual(new Set([-3, -2, -1, 1, 2, 3]));
    expect(dateShiftDays(key, 'S-1', 3)).toBe(dateShiftDays(key, ' S-1 ', 3));
    expect(dateShiftDays(key, 'S-1', 0)).toBe(0);
    const ids = Array.from({ length: 20 }, (_, i) => `S-${i}`);
    expect(ids.map((id) => dateShiftDays(Buffer.alloc(32, 9), id, 365))).not.toEqual(
      ids.map((id) => dateShiftDays(key, id, 365)),
    );
  });
});

describe('token pool', () => {
  it('tokenizes large batches on worker threads exactly as the single-threaded path does', async () => {
    const values = Array.from({ length: PARALLEL_THRESHOLD + 1008 }, (_, i) =>
      i % 1000 === 7 ? '' : i % 3 === 0 ? ` Jose\u0301-${i} ` : i % 3 === 1 ? `S-${i}` : `${'€'.repeat(i % 500)}${i}`,
    );
    for (const cores of [2, 3]) {
      const pool = new TokenPool(cores);
      try {
        expect(await pool.tokenize(key, 4, values)).toEqual(values.map((v) => tokenize(key, 4, v)));
        expect(await pool.tokenize(key, 4, ['x'])).toEqual([tokenize(key, 4, 'x')]);
      } finally {
        await pool.close();
      }
    }
  });
});
