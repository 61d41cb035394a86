// The Postgres advisory lock that makes one instance the sequencer. It lives on a dedicated
// connection held for the process lifetime: the lock goes when that session goes.
import pg from 'pg';

/** Advisory lock key: "vigl" as a 32-bit integer, one log per database. */
const LOCK_KEY = 0x7669676c;

export interface AdvisoryLock {
  tryLock(): Promise<boolean>;
  close(): Promise<void>;
}

/** Opens the dedicated session; `onLost` is called if the session dies while holding the lock. */
export async function openAdvisoryLock(
  databaseUrl: string,
  onLost: (err: Error) => void,
): Promise<AdvisoryLock> {
  const client = new pg.Client({ connectionString: databaseUrl });
  let held = false;
  let closing = false;
  client.on('error', (err) => {
    if (held && !closing) onLost(err);
  });
  await client.connect();
  return {
    async tryLock() {
      const r = await client.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LOCK_KEY]);
      held = r.rows[0]?.ok === true;
      return held;
    },
    async close() {
      closing = true;
      await client.end();
    },
  };
}
