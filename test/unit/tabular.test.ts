import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDemoPackage } from '../../cli/demo/generate';
import { loadDeclaredTable } from '../../lib/tabular/load';
import type { PackageMetadata } from '../../schemas/package';
import { tempDir } from '../helpers';

let dir: string;
let packageDir: string;
let metadata: PackageMetadata;
let db: DuckDBInstance;
let conn: DuckDBConnection;
let tables = 0;

beforeAll(async () => {
  dir = await tempDir('steward-tabular-');
  const generated = await generateDemoPackage({
    out: dir,
    jurisdiction: 'eu',
    studyId: 'ST-TAB',
    rows: 120,
    subjects: 12,
    seed: 4,
  });
  packageDir = generated.packageDir;
  metadata = JSON.parse(await readFile(path.join(packageDir, 'steward.json'), 'utf8')) as PackageMetadata;
  db = await DuckDBInstance.create(':memory:');
  conn = await db.connect();
});

afterAll(() => {
  conn.closeSync();
  db.closeSync();
});

/** Loads a demo table's file after `convert`; returns the problems and the loaded rows. */
async function loadConverted(name: string, convert: (text: string) => string) {
  const table = metadata.tables.find((t) => t.name === name)!;
  const file = path.join(dir, `${name}-${tables}.${table.format}`);
  await writeFile(file, convert(await readFile(path.join(packageDir, table.path), 'utf8')));
  const target = `t_${tables++}`;
  const problems = await loadDeclaredTable(conn, file, table, target);
  const rows = problems.length === 0 ? (await conn.runAndReadAll(`SELECT * FROM ${target}`)).getRowObjectsJS() : [];
  return { problems, rows };
}

const CONVERSIONS = {
  'a UTF-8 BOM': (text: string) => `\uFEFF${text}`,
  'CRLF line endings': (text: string) => text.replace(/\n/g, '\r\n'),
  'a BOM and CRLF line endings': (text: string) => `\uFEFF${text.replace(/\n/g, '\r\n')}`,
};

describe('table files written by other tools', () => {
  it.each(Object.entries(CONVERSIONS))('every CSV table with %s loads as the plain file does', async (_, convert) => {
    for (const table of metadata.tables.filter((t) => t.format === 'csv')) {
      const plain = await loadConverted(table.name, (t) => t);
      const converted = await loadConverted(table.name, convert);
      expect(converted.problems, table.path).toEqual([]);
      expect(converted.rows, table.path).toEqual(plain.rows);
      expect(plain.rows.length).toBeGreaterThan(0);
    }
  });

  it.each(Object.entries(CONVERSIONS))('an NDJSON table with %s loads as the plain file does', async (_, convert) => {
    const plain = await loadConverted('adverse_events', (t) => t);
    const converted = await loadConverted('adverse_events', convert);
    expect(converted.problems).toEqual([]);
    expect(converted.rows).toEqual(plain.rows);
    expect(plain.rows.length).toBeGreaterThan(0);
  });
});
