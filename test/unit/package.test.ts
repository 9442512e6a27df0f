import { describe, expect, it } from 'vitest';
import {
  describeProblem,
  packageDigest,
  parseBagManifest,
  parseOxum,
  parseTagFile,
  summarizeProblems,
  unsafePathReason,
} from '../../lib/package/rules';
import type { PackageProblem } from '../../schemas/ingest';

describe('unsafePathReason', () => {
  it.each([
    ['data/a.csv', undefined],
    ['data/sub/b.ndjson', undefined],
    ['/etc/passwd', 'absolute paths are not allowed'],
    ['C:/x.csv', 'absolute paths are not allowed'],
    ['data/../x.csv', 'path traversal ("..") is not allowed'],
    ['../x.csv', 'path traversal ("..") is not allowed'],
    ['data\\x.csv', 'backslashes are not allowed in paths'],
    ['data//x.csv', 'empty or "." path segments are not allowed'],
    ['data/./x.csv', 'empty or "." path segments are not allowed'],
    ['data/x\n.csv', 'control characters are not allowed in paths'],
  ])('%j → %j', (p, reason) => {
    expect(unsafePathReason(p)).toBe(reason);
  });
});

describe('BagIt parsing', () => {
  it('reads manifest lines, percent-decoding and flagging malformed lines by line number', () => {
    const problems: PackageProblem[] = [];
    const digest = 'A'.repeat(64);
    const entries = parseBagManifest(
      `${digest}  data/a%25b.csv\n\nnot a line\n${'b'.repeat(64)} *data/c.csv\n`,
      'manifest-sha256.txt',
      problems,
    );
    expect(entries).toEqual([
      { sha256: 'a'.repeat(64), path: 'data/a%b.csv' },
      { sha256: 'b'.repeat(64), path: 'data/c.csv' },
    ]);
    expect(problems).toEqual([{ file: 'manifest-sha256.txt', row: 3, rule: 'expected "<sha256 hex> <path>"' }]);
  });

  it('reads a manifest written with a UTF-8 BOM or CRLF line endings as the plain one', () => {
    const text = `${'a'.repeat(64)}  data/visits.csv\n${'b'.repeat(64)}  data/labs.csv\n`;
    const expected = parseBagManifest(text, 'manifest-sha256.txt', []);
    for (const converted of [`\uFEFF${text}`, text.replace(/\n/g, '\r\n'), `\uFEFF${text.replace(/\n/g, '\r\n')}`]) {
      const problems: PackageProblem[] = [];
      expect(parseBagManifest(converted, 'manifest-sha256.txt', problems)).toEqual(expected);
      expect(problems).toEqual([]);
    }
  });

  it('reads tag files with continuation lines, and Payload-Oxum', () => {
    const tags = parseTagFile('\uFEFFSource-Organization: Site\n  North\nPayload-Oxum: 1024.3\n');
    expect(tags.get('Source-Organization')).toBe('Site North');
    expect(parseOxum(tags.get('Payload-Oxum'))).toEqual({ bytes: 1024, files: 3 });
    expect(parseOxum('12')).toBeUndefined();
    expect(parseOxum(undefined)).toBeUndefined();
  });
});

describe('packageDigest', () => {
  it('is stable and changes with either manifest or metadata', () => {
    const a = packageDigest(Buffer.from('m'), Buffer.from('x'));
    expect(packageDigest(Buffer.from('m'), Buffer.from('x'))).toEqual(a);
    expect(packageDigest(Buffer.from('m'), Buffer.from('y')).packageId).not.toBe(a.packageId);
    expect(packageDigest(Buffer.from('mx'), Buffer.from('')).packageId).not.toBe(a.packageId);
    expect(a.packageId).toMatch(/^[0-9a-f]{24}$/);
  });
});

describe('problem messages', () => {
  it('name file, row, field and rule, and count what is not shown', () => {
    const problems = Array.from({ length: 7 }, (_, i) => ({
      file: 'data/x.csv',
      row: i + 1,
      field: 'age',
      rule: 'must be an integer',
    }));
    expect(describeProblem({ file: 'bag-info.txt', rule: 'missing' })).toBe('bag-info.txt: missing');
    expect(summarizeProblems(problems)).toMatchInlineSnapshot(
      `"package rejected: data/x.csv, row 1, field "age": must be an integer; data/x.csv, row 2, field "age": must be an integer; data/x.csv, row 3, field "age": must be an integer; data/x.csv, row 4, field "age": must be an integer; data/x.csv, row 5, field "age": must be an integer; and 2 more"`,
    );
  });
});
