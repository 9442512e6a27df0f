import { DuckDBInstance } from '../node_modules/@duckdb/node-api';
import { loadDeclaredTable } from '../lib/tabular';
import { demoMetadata } from '../lib/demo';
(async () => {
  const i = await DuckDBInstance.create('/tmp/prof/m4.duckdb', {
    threads: '2',
    memory_limit: '64MB',
    temp_directory: '/tmp/prof/tmp',
    preserve_insertion_order: 'true',
  });
  const c = await i.connect();
  for (const [n, t] of demoMetadata('eu', 'X', 'p').tables.entries()) {
    try {
      console.log(
        t.path,
        await loadDeclaredTable(c, `/tmp/demo-big/package/${t.path}`, t, `src${n}`, { memoryLimitBytes: 64 * 2 ** 20 }),
      );
    } catch (e) {
      console.log(t.path, 'fail', String(e).slice(0, 80));
    }
  }
})();
