import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..', '..');
const SOURCE_DIRS = ['activities', 'bench', 'cli', 'contracts', 'lib', 'schemas', 'workers', 'workflows'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

/** Source files outside lib/storage, with their text. */
function outsideStorage(): { file: string; text: string }[] {
  return SOURCE_DIRS.flatMap((d) => sources(path.join(ROOT, d)))
    .map((full) => ({ file: path.relative(ROOT, full), text: readFileSync(full, 'utf8') }))
    .filter(({ file }) => !file.startsWith(`lib${path.sep}storage${path.sep}`));
}

describe('storage layout', () => {
  it('no file outside lib/storage sends a bare PutObjectCommand', () => {
    const offenders = outsideStorage()
      .filter(({ text }) => /new PutObjectCommand\(/.test(text))
      .map(({ file }) => file);
    expect(offenders).toEqual([]);
  });

  it('no file outside lib/storage names a bucket key or prefix inline in an S3 call', () => {
    const offenders = outsideStorage().flatMap(({ file, text }) =>
      [...text.matchAll(/\b(Key|Prefix|StartAfter):\s*['`][^'`]*['`]/g)].map((m) => `${file}: ${m[0]}`),
    );
    expect(offenders).toEqual([]);
  });

  it("no file outside lib/storage spells one of the buckets' top-level prefixes", () => {
    // Every folder the layout defines. Catalog writers' names (`datasets/all`, `vault/ST-1`) and key-store ids are not
    // bucket keys.
    const writerName = /return ['`]datasets\/all['`]/;
    const prefixes =
      /['`](datasets|packages|consent|certificates|retention|erasure|audit\/segments|studies|preprocessed)\//;
    const offenders = outsideStorage().flatMap(({ file, text }) =>
      text
        .split('\n')
        .filter((line) => !/^\s*(\*|\/\/|\/\*\*)/.test(line) && prefixes.test(line) && !writerName.test(line))
        .map((line) => `${file}: ${line.trim()}`),
    );
    expect(offenders).toEqual([]);
  });
});
