import { DuckDBInstance } from '../node_modules/@duckdb/node-api';
(async () => {
  for (const [threads, rg, pio] of [
    [2, 122880, 'true'],
    [1, 122880, 'true'],
    [2, 30720, 'true'],
    [2, 122880, 'false'],
  ] as const) {
    const i = await DuckDBInstance.create('/tmp/prof/m2.duckdb', {
      threads: String(threads),
      memory_limit: '64MB',
      temp_directory: '/tmp/prof/tmp',
      preserve_insertion_order: pio,
    });
    const c = await i.connect();
    const t = performance.now();
    try {
      await c.run(
        `COPY (SELECT s.token subject_id, t.* EXCLUDE (subject_id) FROM src t JOIN m s ON s.raw=t.subject_id WHERE s.reason IS NULL) TO '/tmp/prof/o.parquet' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${rg})`,
      );
      console.log(threads, rg, pio, 'ok', performance.now() - t);
    } catch (e) {
      console.log(threads, rg, pio, 'fail', String(e).slice(0, 60));
    }
    i.closeSync();
  }
})();
