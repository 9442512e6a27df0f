import { describe, expect, it } from 'vitest';
import { checksumProblems, inspectPackage, type PackageSource } from '../../lib/package/check';
import { packageDigest } from '../../lib/package/rules';
import { sha256, smallMetadata } from '../helpers';

const CSV = 'subject_id,full_name,visit_date,score,note\nA,Ann,2025-01-02,1,\n';

/** A package held in memory: the rules see only paths, sizes and tag-file bytes. */
function source(
  layout: PackageSource['layout'],
  files: Record<string, string>,
  unreadable: Record<string, string> = {},
) {
  return {
    layout,
    stored: new Map(Object.entries(files).map(([p, body]) => [p, Buffer.byteLength(body)])),
    unreadable: new Map(Object.entries(unreadable)),
    read: async (name: string) => (name in files ? Buffer.from(files[name]!) : undefined),
  } satisfies PackageSource;
}

function jsonPackage(manifest: unknown, extra: Record<string, string> = {}) {
  return source('json', { 'manifest.json': JSON.stringify(manifest), 'data/visits.csv': CSV, ...extra });
}

const manifest = {
  format: 'steward-package/1',
  ...smallMetadata(),
  files: [{ path: 'data/visits.csv', sha256: sha256(CSV), bytes: Buffer.byteLength(CSV) }],
};

describe('JSON manifest packages', () => {
  it('pass with the checksums to check, and the digest the submitter computed', async () => {
    const pkg = jsonPackage(manifest);
    const inspected = await inspectPackage(pkg, { jurisdiction: 'eu' });
    expect(inspected.problems).toEqual([]);
    expect(inspected.entries).toEqual(manifest.files);
    expect(inspected.manifestSha256).toBe(
      packageDigest(Buffer.from(JSON.stringify(manifest)), Buffer.alloc(0)).manifestSha256,
    );
  });

  it('read a manifest.json that starts with a UTF-8 byte order mark as the plain one', async () => {
    const pkg = source('json', { 'manifest.json': `\uFEFF${JSON.stringify(manifest)}`, 'data/visits.csv': CSV });
    const inspected = await inspectPackage(pkg, { jurisdiction: 'eu' });
    expect(inspected.problems).toEqual([]);
    expect(inspected.entries).toEqual(manifest.files);
  });

  it('name each broken rule', async () => {
    const broken = {
      ...manifest,
      format: 'steward-package/2',
      files: [
        ...manifest.files,
        { path: 'data/gone.csv', sha256: sha256('x') },
        { path: '../up.csv', sha256: sha256('') },
      ],
    };
    const { problems } = await inspectPackage(jsonPackage(broken, { 'data/stray.csv': 'x' }), { jurisdiction: 'eu' });
    expect(problems).toMatchInlineSnapshot(`
      [
        {
          "field": "format",
          "file": "manifest.json",
          "rule": "Invalid input: expected "steward-package/1"",
        },
        {
          "file": "data/visits.csv",
          "rule": "not listed in manifest.json",
        },
        {
          "file": "data/stray.csv",
          "rule": "not listed in manifest.json",
        },
        {
          "file": "data/visits.csv",
          "rule": "declared in the package metadata but not listed in manifest.json",
        },
      ]
    `);
    const withFormat = { ...broken, format: 'steward-package/1' };
    expect((await inspectPackage(jsonPackage(withFormat), { jurisdiction: 'eu' })).problems).toMatchInlineSnapshot(`
      [
        {
          "file": "data/gone.csv",
          "rule": "listed in manifest.json but missing from the package",
        },
        {
          "file": "../up.csv",
          "rule": "path traversal ("..") is not allowed",
        },
      ]
    `);
  });

  it('refuse a manifest that is not JSON, and metadata for another jurisdiction', async () => {
    const notJson = source('json', { 'manifest.json': '{"format":', 'data/visits.csv': CSV });
    expect((await inspectPackage(notJson)).problems).toEqual([
      { file: 'manifest.json', rule: 'is not valid JSON' },
      { file: 'data/visits.csv', rule: 'not listed in manifest.json' },
    ]);
    const us = { ...manifest, jurisdiction: 'us' };
    expect((await inspectPackage(jsonPackage(us), { jurisdiction: 'eu' })).problems).toEqual([
      { file: 'manifest.json', field: 'jurisdiction', rule: 'package is for "us", not "eu"' },
    ]);
  });

  it('report a manifest changed after submission', async () => {
    const { problems } = await inspectPackage(jsonPackage(manifest), { manifestSha256: sha256('what was submitted') });
    expect(problems).toEqual([{ file: 'manifest.json', rule: 'changed after submission' }]);
  });
});

describe('checksums', () => {
  it('name the file and both digests, or both sizes', () => {
    const entries = [
      { path: 'a.csv', sha256: sha256('a') },
      { path: 'b.csv', sha256: sha256('b'), bytes: 2 },
    ];
    expect(
      checksumProblems(entries, [
        { sha256: sha256('A'), bytes: 1 },
        { sha256: sha256('b'), bytes: 1 },
      ]),
    ).toEqual([
      { file: 'a.csv', rule: `SHA-256 mismatch: manifest says ${sha256('a')}, file has ${sha256('A')}` },
      { file: 'b.csv', rule: 'size mismatch: manifest says 2 bytes, file has 1' },
    ]);
  });
});
