import { DuckDBInstance } from '../node_modules/@duckdb/node-api';
import { loadDeclaredTable } from '/work/main/lib/tabular';
import { demoMetadata } from '/work/main/lib/demo';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
(async () => {
  const t = () => performance.now();
  rmSync('/tmp/prof/db.duckdb', { force: true });
  rmSync('/tmp/prof/db.duckdb.wal', { force: true });
  let s = t();
  const h = createHash('sha256').update(readFileSync('/tmp/demo-big/package/data/labs.csv')).digest('hex');
  console.log('sha', (t() - s).toFixed(0));
  const db = await DuckDBInstance.create(process.argv[2] ?? '/tmp/prof/db.duckdb', {
    threads: '2',
    memory_limit: '1GB',
    preserve_insertion_order: 'true',
  });
  const c = await db.connect();
  const table = demoMetadata('eu', 'X', 'p').tables[2]!;
  s = t();
  const p = await loadDeclaredTable(c, '/tmp/demo-big/package/data/labs.csv', table, 'src');
  console.log('load', (t() - s).toFixed(0), p.length);
  s = t();
  await c.run(
    `CREATE TABLE m AS SELECT DISTINCT subject_id raw, md5(subject_id) token, CASE WHEN hash(subject_id)%5=0 THEN 'x' END reason FROM src`,
  );
  console.log('map', (t() - s).toFixed(0));
  s = t();
  await c.run(
    `COPY (SELECT s.token subject_id, t.visit_no, t.collected_on, t.test_code, t.test_name, t.value, t.unit, t.ref_low, t.ref_high, t.abnormal, t.site_id FROM src t JOIN m s ON s.raw=t.subject_id WHERE s.reason IS NULL ORDER BY t.rowid) TO '/tmp/prof/o1.parquet' (FORMAT parquet, COMPRESSION zstd)`,
  );
  console.log('copy sorted', (t() - s).toFixed(0));
  s = t();
  await c.run(
    `COPY (SELECT s.token subject_id, t.visit_no, t.collected_on, t.test_code, t.test_name, t.value, t.unit, t.ref_low, t.ref_high, t.abnormal, t.site_id FROM src t JOIN m s ON s.raw=t.subject_id WHERE s.reason IS NULL) TO '/tmp/prof/o2.parquet' (FORMAT parquet, COMPRESSION zstd)`,
  );
  console.log('copy unsorted', (t() - s).toFixed(0));
  s = t();
  await c.run(
    `COPY (SELECT s.token subject_id, t.visit_no, t.collected_on, t.test_code, t.test_name, t.value, t.unit, t.ref_low, t.ref_high, t.abnormal, t.site_id FROM src t JOIN m s ON s.raw=t.subject_id WHERE s.reason IS NULL) TO '/tmp/prof/o3.parquet' (FORMAT parquet, COMPRESSION snappy)`,
  );
  console.log('copy snappy', (t() - s).toFixed(0));
  s = t();
  await c.runAndReadAll(`SELECT s.reason, count(*) FROM src t JOIN m s ON s.raw=t.subject_id GROUP BY 1`);
  console.log('count', (t() - s).toFixed(0));
  const db1 = await DuckDBInstance.create(':memory:', { threads: '1' });
  const c1 = await db1.connect();
  s = t();
  await c1.run(
    `COPY (SELECT * FROM read_csv('/tmp/demo-big/package/data/labs.csv')) TO '/tmp/prof/ref.parquet' (FORMAT parquet)`,
  );
  console.log('duckdb ref 1 thread', (t() - s).toFixed(0));
})();
