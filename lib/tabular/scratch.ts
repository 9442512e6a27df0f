import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** One DuckDB connection (one thread) with a scratch folder of its own, closed and wiped afterwards. */
export async function withScratchDb<T>(
  scratchDir: string,
  name: string,
  work: (conn: DuckDBConnection, dir: string) => Promise<T>,
): Promise<T> {
  const dir = path.join(scratchDir, `${name}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
  const conn = await db.connect();
  try {
    return await work(conn, dir);
  } finally {
    conn.closeSync();
    db.closeSync();
    await rm(dir, { recursive: true, force: true });
  }
}
