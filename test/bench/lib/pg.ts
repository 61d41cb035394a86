// A fresh Postgres database for one benchmark, created from BENCH_DATABASE_URL or TEST_DATABASE_URL
// and dropped afterwards.
import pg from 'pg';

/** The Postgres server URL to create benchmark databases on, or undefined (Postgres rows skipped). */
export function postgresServerUrl(): string | undefined {
  return process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
}

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `vigil_bench_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
