// The log server as a real process (`node server/dist/src/main.js`) on the embedded store (a temp
// data directory) or on a fresh Postgres database, with emitters registered through its CLI.
// Rate limits are switched off: the benchmarks measure capacity, not the abuse limits.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDatabase, type BenchDatabase } from './pg.js';
import { trackDir, untrackDir } from './procs.js';
import { runScript, spawnService, type Service } from './service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const serverMain = path.join(root, 'server/dist/src/main.js');
export const vigilMain = path.join(root, 'client-lib/dist/src/cli/main.js');

export interface BenchLog {
  store: 'embedded' | 'postgres';
  dataDir: string;
  service: Service;
  base: string;
  origin: string;
  vkey: string;
  env: Record<string, string | undefined>;
  addEmitters(emitters: { name: string; vkey: string }[]): Promise<void>;
  /** Stops the process (keeps the data) and starts it again, e.g. with --cpu-prof. */
  restart(nodeArgs?: string[]): Promise<void>;
  /** Current tree size from GET /checkpoint. */
  size(): Promise<bigint>;
  /** Stops the process, drops the database and removes the data directory. */
  close(): Promise<void>;
}

export async function startBenchLog(
  store: 'embedded' | 'postgres',
  postgresUrl: string | undefined,
): Promise<BenchLog> {
  const dataDir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-log-')));
  const origin = 'bench.vigil.test/log';
  let db: BenchDatabase | undefined;
  const env: Record<string, string | undefined> = { LOG_LEVEL: 'info', DATABASE_URL: undefined };
  const flags = [
    '--data-dir',
    dataDir,
    '--host',
    '127.0.0.1',
    '--rate-address',
    '0',
    '--rate-emitter',
    '0',
    '--verify-on-start',
    'quick',
  ];
  let service: Service | undefined;
  let port = 0;
  const launch = async (nodeArgs: string[] = []): Promise<Service> => {
    const args =
      store === 'postgres'
        ? ['serve', ...flags, '--port', String(port)]
        : ['start', ...flags, '--port', String(port), '--origin', origin];
    const s = await spawnService(serverMain, args, { env, nodeArgs });
    port = s.port;
    return s;
  };
  try {
    if (store === 'postgres') {
      if (postgresUrl === undefined) throw new Error('no Postgres URL');
      db = await createDatabase(postgresUrl);
      env.DATABASE_URL = db.url;
      await runScript(serverMain, ['migrate', '--data-dir', dataDir], env);
      await runScript(serverMain, ['init', '--origin', origin, '--data-dir', dataDir], env);
    }
    service = await launch();
    const info = (await (await fetch(`${service.base}/v1/log`)).json()) as { origin: string; vkey: string };
    const log: BenchLog = {
      store,
      dataDir,
      service,
      base: service.base,
      origin: info.origin,
      vkey: info.vkey,
      env,
      async addEmitters(emitters) {
        // A few at a time: each is a CLI process (socket to the running server, or Postgres directly).
        for (let i = 0; i < emitters.length; i += 4) {
          await Promise.all(
            emitters
              .slice(i, i + 4)
              .map((e) =>
                runScript(serverMain, ['emitter', 'add', e.name, e.vkey, '--data-dir', dataDir], env),
              ),
          );
        }
      },
      async restart(nodeArgs = []) {
        const code = await log.service.stop();
        if (code !== 0)
          throw new Error(`log exited ${code} on SIGTERM:\n${log.service.output().slice(-3000)}`);
        log.service = await launch(nodeArgs);
        log.base = log.service.base;
      },
      async size() {
        const text = await (await fetch(`${log.base}/checkpoint`)).text();
        const line = text.split('\n')[1];
        if (line === undefined || !/^[0-9]+$/.test(line))
          throw new Error(`bad checkpoint: ${text.slice(0, 200)}`);
        return BigInt(line);
      },
      async close() {
        try {
          const code = await log.service.stop();
          if (code !== 0)
            throw new Error(`log exited ${code} on SIGTERM:\n${log.service.output().slice(-3000)}`);
        } finally {
          await db?.drop();
          await fs.rm(dataDir, { recursive: true, force: true });
          untrackDir(dataDir);
        }
      },
    };
    return log;
  } catch (err) {
    await service?.stop();
    await db?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
    untrackDir(dataDir);
    throw err;
  }
}
