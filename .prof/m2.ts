import { DuckDBInstance } from '../node_modules/@duckdb/node-api';
import { loadDeclaredTable } from '../lib/tabular';
import { demoMetadata } from '../lib/demo';
(async () => {
  const i = await DuckDBInstance.create('/tmp/prof/m2.duckdb', {
    threads: '2',
    memory_limit: '64MB',
    temp_directory: '/tmp/prof/tmp',
    preserve_insertion_order: 'true',
  });
  const c = await i.connect();
  const table = demoMetadata('eu', 'X', 'p').tables[2]!;
  let t = performance.now();
  try {
    console.log(
      await loadDeclaredTable(c, '/tmp/demo-big/package/data/labs.csv', table, 'src', {
        memoryLimitBytes: 64 * 2 ** 20,
      }),
    );
  } catch (e) {
    console.log('load fail', String(e).slice(0, 80));
  }
  console.log('load', performance.now() - t);
  t = performance.now();
  try {
    await c.run(
      `CREATE TABLE m AS SELECT DISTINCT subject_id raw, md5(subject_id) token, NULL::VARCHAR reason FROM src`,
    );
  } catch (e) {
    console.log('map fail', String(e).slice(0, 80));
  }
  console.log('map', performance.now() - t);
  t = performance.now();
  try {
    await c.run(
      `COPY (SELECT s.token subject_id, t.* EXCLUDE (subject_id) FROM src t JOIN m s ON s.raw=t.subject_id WHERE s.reason IS NULL) TO '/tmp/prof/o.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`,
    );
  } catch (e) {
    console.log('copy fail', String(e).slice(0, 80));
  }
  console.log('copy', performance.now() - t);
})();
