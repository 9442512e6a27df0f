import { DuckDBInstance } from '../node_modules/@duckdb/node-api';
(async () => {
  for (const [db, buf] of [
    [':memory:', 8],
    ['/tmp/prof/m.duckdb', 8],
  ] as const) {
    const i = await DuckDBInstance.create(db, {
      threads: '2',
      memory_limit: '64MB',
      temp_directory: '/tmp/prof/tmp',
      preserve_insertion_order: 'true',
    });
    const c = await i.connect();
    const t = performance.now();
    try {
      await c.run(
        `CREATE OR REPLACE TABLE src AS SELECT * FROM read_csv('/tmp/demo-big/package/data/labs.csv', buffer_size=${buf * 1024 * 1024})`,
      );
      await c.run(`COPY (SELECT * FROM src) TO '/tmp/prof/x.parquet' (FORMAT parquet)`);
      console.log(db, buf, 'ok', performance.now() - t);
    } catch (e) {
      console.log(db, buf, 'fail', String(e).slice(0, 100));
    }
    i.closeSync();
  }
})();
