#!/usr/bin/env node
// vigil-server: the only place that reads process.env and calls process.exit.
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import closeWithGrace from 'close-with-grace';
import { checkDataDirMode, checkKeyFileMode } from '@vigil/client/node';
import { loadConfig, ConfigError, type Config } from './config.js';
import { sql } from 'kysely';
import pg from 'pg';
import {
  migrateToLatest,
  migrationsFolder,
  openDatabase,
  pendingMigrations,
  type OpenDatabase,
} from '@vigil/store';
import type { Database } from './db/schema.js';
import { getLog } from './db/repository.js';
import { buildApp } from './app.js';
import { createKeyFile, initLog, readKeyFile } from './tlog/signer.js';
import { loadOperatorKey } from './tlog/registry.js';
import { openAdvisoryLock, type AdvisoryLock } from './tlog/leader.js';
import { ADMIN_CHANNEL, runAdminCommand, type AdminCommand, type AdminOptions } from './admin.js';
import { exportLog, importLog } from './transfer/log.js';
import { TransferError } from '@vigil/store';

const USAGE = `usage: vigil-server <command> [flags]
  start                      embedded quick start: initialise an empty data dir, then serve
  init --origin <origin>     create the log (new key in --key-file unless it exists)
  migrate                    apply pending migrations
  serve                      serve the log (refuses with pending migrations or a wrong key)
  emitter add <name> <vkey> | emitter list | emitter revoke <name>
  witness add <name> <vkey> [--url <prefix>] | witness list | witness remove <name>
  quorum <k>
  reader add <name>          print a new reader token (only now) | reader list | reader revoke <name>
  erase (--sealed <hex>... | --session <id> | --stream <id>) --reason <text> [--by <name>] [--vacuum-full]
  retention set <duration>|off (30m, 12h, 180d) | retention show
  hold add (--session <id> | --stream <id> | --emitter <name>) --reason <text> | hold list | hold release <id>
  export <dir>               write the whole log to a new directory (manifest + JSON Lines)
  import <dir>               load an export into an empty, migrated store (verifies every root)
flags: --data-dir --host --port --database-url --tls-cert --tls-key --log-level --key-file
       --operator-key-file --origin
       --batch-size --queue-size --max-body-bytes --rate-emitter --rate-address --witness-interval
       --lock-retry --verify-on-start --retention-interval --url`;

/** Flags that take every following word up to the next flag (`--sealed <hex>...`). */
const LIST_FLAGS = new Set(['sealed']);
/** Flags without a value (`--vacuum-full`): present means "true". */
const SWITCH_FLAGS = new Set(['vacuum-full']);

function parseArgs(argv: string[]): {
  words: string[];
  flags: Record<string, string>;
  lists: Record<string, string[]>;
} {
  const words: string[] = [];
  const flags: Record<string, string> = {};
  const lists: Record<string, string[]> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      words.unshift('help');
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (SWITCH_FLAGS.has(name)) {
        if (eq > 0) throw new ConfigError(`flag --${name} takes no value`);
        flags[name] = 'true';
      } else if (LIST_FLAGS.has(name)) {
        const list = (lists[name] ??= []);
        if (eq > 0) list.push(a.slice(eq + 1));
        while (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) list.push(argv[++i]!);
        if (list.length === 0) throw new ConfigError(`flag ${a} needs a value`);
      } else if (eq > 0) flags[name] = a.slice(eq + 1);
      else {
        const v = argv[i + 1];
        if (v === undefined) throw new ConfigError(`flag ${a} needs a value`);
        flags[name] = v;
        i++;
      }
    } else words.push(a);
  }
  return { words, flags, lists };
}

const DEFAULT_ORIGIN = 'vigil.local/log';

/**
 * Opens the store. 'own' (serve): this process starts the embedded PostgreSQL and stops it on
 * shutdown. 'attach' (CLI commands): a running service's PostgreSQL is used through its socket in the
 * data directory; when the service is down, the command starts it for its own duration.
 */
async function openStore(config: Config, mode: 'own' | 'attach'): Promise<OpenDatabase<Database>> {
  return openDatabase<Database>({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, mode });
}

async function refusePending(store: OpenDatabase<Database>): Promise<void> {
  const pending = await pendingMigrations(store.db, migrationsFolder('log'));
  if (pending.length > 0)
    throw new Error(`${pending.length} pending migrations (${pending.join(', ')}): run vigil-server migrate`);
}

async function cmdMigrate(config: Config): Promise<void> {
  const store = await openStore(config, 'attach');
  try {
    const results = await migrateToLatest(store.db, migrationsFolder('log'));
    for (const r of results) console.log(`migration ${r.migrationName}: ${r.status}`);
    console.log(results.length === 0 ? 'no pending migrations' : 'migrations applied');
  } finally {
    await store.close();
  }
}

async function ensureLog(store: OpenDatabase<Database>, config: Config, origin: string): Promise<string> {
  let vkey: string;
  if (existsSync(config.keyFile)) {
    const key = await readKeyFile(config.keyFile);
    if (key.name !== origin) throw new Error(`key file ${config.keyFile} is for ${key.name}, not ${origin}`);
    vkey = key.vkey;
    console.log(`using existing log key ${config.keyFile}`);
  } else {
    vkey = await createKeyFile(config.keyFile, origin);
    console.log(`wrote new log key ${config.keyFile} (mode 0600)`);
  }
  const key = await readKeyFile(config.keyFile);
  await initLog(store.db, origin, key.signerKey);
  console.log(`created log ${origin} with key ${vkey}`);
  const operator = await loadOperatorKey(store.db, config.operatorKeyFile, origin);
  console.log(
    `${operator.created ? 'wrote new' : 'using existing'} operator key ${config.operatorKeyFile}` +
      `${operator.created ? ' (mode 0600)' : ''}: ${operator.vkey}`,
  );
  return vkey;
}

async function cmdInit(config: Config): Promise<void> {
  if (!config.origin) throw new ConfigError('init needs --origin <origin> (or VIGIL_ORIGIN)');
  const store = await openStore(config, 'attach');
  try {
    await refusePending(store);
    await ensureLog(store, config, config.origin);
  } finally {
    await store.close();
  }
}

/**
 * The data directory must not be writable by others (they could swap the key or the store), and
 * the log key neither (refuse) nor readable by others (warn loudly, make it 0600): the same rule as
 * vigil-witness, shared through @vigil/client. The embedded store's data directory is created 0700.
 */
async function checkFileModes(config: Config): Promise<void> {
  if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  if (existsSync(config.dataDir)) await checkDataDirMode(config.dataDir);
  if (existsSync(config.keyFile))
    await checkKeyFileMode(config.keyFile, 'log key', (line) => console.error(line));
}

async function cmdServe(config: Config, quickStart: boolean): Promise<void> {
  await checkFileModes(config);
  const store = await openStore(config, 'own');
  let lock: AdvisoryLock | undefined;
  let admin: pg.Client | undefined;
  try {
    if (quickStart && store.kind === 'embedded') {
      const pending = await pendingMigrations(store.db, migrationsFolder('log'));
      if (pending.length > 0) {
        console.log(`initialising data directory ${config.dataDir}: applying ${pending.length} migrations`);
        await migrateToLatest(store.db, migrationsFolder('log'));
      }
      if (!(await getLog(store.db))) {
        const origin = config.origin ?? DEFAULT_ORIGIN;
        console.log(`EMPTY DATA DIRECTORY ${config.dataDir}: creating a new log ${origin}`);
        await ensureLog(store, config, origin);
      }
    }
    await refusePending(store);
    if (!existsSync(config.keyFile))
      throw new Error(`no log key at ${config.keyFile}: run vigil-server init`);
    if (store.kind === 'postgres') {
      lock = await openAdvisoryLock(config.databaseUrl!, (err) => {
        console.error(`sequencing lock session lost: ${err.message}; exiting`);
        process.exit(1);
      });
    }
    const https =
      config.tlsCert && config.tlsKey
        ? { cert: await readFile(config.tlsCert), key: await readFile(config.tlsKey) }
        : undefined;
    const app = await buildApp(config, {
      db: store.db,
      ...(lock ? { tryLock: () => lock!.tryLock() } : {}),
      ...(https ? { https } : {}),
      onFatal: (err) => {
        console.error(`fatal: ${err.message}; exiting so the next start re-reads the database`);
        process.exit(1);
      },
    });
    app.server.requestTimeout = 60_000;
    app.server.headersTimeout = 20_000;
    app.server.keepAliveTimeout = 10_000;
    const address = await app.listen({ host: config.host, port: config.port });
    // Admin commands write the database from the CLI and then notify ADMIN_CHANNEL: forget cached
    // emitters and readers at once (a revocation takes effect before the next request is checked) and
    // append the registry records and operator actions the change calls for.
    admin = new pg.Client({ connectionString: store.connectionString });
    admin.on('error', (err) => app.log.warn({ err }, 'admin notification session lost'));
    admin.on('notification', () => {
      app.vigil.tlog.invalidate();
      app.vigil.sequencer.syncRegistry();
      app.vigil.sequencer.syncOperatorActions();
    });
    await admin.connect();
    await admin.query(`listen ${ADMIN_CHANNEL}`);
    const { origin, vkey } = app.vigil.tlog;
    console.log(`vigil log listening on ${address}`);
    // performance.now() counts from the start of this process: the whole cold start, Node included.
    console.log(`ready in ${(performance.now() / 1000).toFixed(2)} s`);
    console.log(`origin: ${origin}`);
    console.log(`vkey:   ${vkey}`);
    const dataDirFlag = store.kind === 'embedded' ? ` --data-dir ${config.dataDir}` : '';
    console.log(`register an emitter: npx vigil-server emitter add <name> <vkey>${dataDirFlag}`);
    closeWithGrace({ delay: 10_000 }, async ({ err }) => {
      if (err) app.log.error({ err }, 'shutting down after error');
      app.log.info('shutting down');
      await admin?.end().catch(() => undefined);
      await app.close();
      await lock?.close();
      await store.close();
    });
  } catch (err) {
    await admin?.end().catch(() => undefined);
    await lock?.close().catch(() => undefined);
    await store.close();
    throw err;
  }
}

async function cmdAdmin(config: Config, cmd: AdminCommand): Promise<void> {
  const store = await openStore(config, 'attach');
  try {
    await refusePending(store);
    const out = await runAdminCommand(store.db, cmd);
    await sql`select pg_notify(${ADMIN_CHANNEL}, '')`.execute(store.db);
    if (out) console.log(out);
  } finally {
    await store.close();
  }
}

async function cmdExport(config: Config, dir: string | undefined): Promise<void> {
  if (!dir) throw new ConfigError('export needs a directory: vigil-server export <dir>');
  const store = await openStore(config, 'attach');
  try {
    await refusePending(store);
    const r = await exportLog(store.db, dir);
    console.log(`exported log ${r.origin} at size ${r.treeSize} to ${dir}`);
    for (const [table, rows] of Object.entries(r.rows)) console.log(`  ${table}: ${rows} rows`);
    console.log(
      `the key files are not in the export: copy ${config.keyFile} (log key) and ${config.operatorKeyFile} ` +
        '(operator key) separately, or point --key-file and --operator-key-file at them; the log serves only with both',
    );
  } finally {
    await store.close();
  }
}

async function cmdImport(config: Config, dir: string | undefined): Promise<void> {
  if (!dir) throw new ConfigError('import needs a directory: vigil-server import <dir>');
  const store = await openStore(config, 'attach');
  try {
    await refusePending(store);
    const r = await importLog(store.db, dir);
    console.log(`imported log ${r.origin} at size ${r.treeSize}, root ${r.root}`);
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const { words, flags, lists } = parseArgs(process.argv.slice(2));
  const url = flags.url;
  delete flags.url;
  const quorumFlag = flags.quorum;
  delete flags.quorum;
  const options: AdminOptions = {
    sealed: lists.sealed,
    session: flags.session,
    stream: flags.stream,
    emitter: flags.emitter,
    reason: flags.reason,
    by: flags.by ?? userInfo().username,
    vacuumFull: flags['vacuum-full'] === 'true',
  };
  for (const k of ['session', 'stream', 'emitter', 'reason', 'by', 'vacuum-full']) delete flags[k];
  const config = loadConfig(process.env, flags);
  const [w0, w1, ...rest] = words;
  switch (w0) {
    case 'start':
      return cmdServe(config, true);
    case 'serve':
      return cmdServe(config, false);
    case 'init':
      return cmdInit(config);
    case 'migrate':
      return cmdMigrate(config);
    case 'emitter':
    case 'witness': {
      const sub = `${w0} ${w1 ?? ''}` as AdminCommand['command'];
      const valid = [
        'emitter add',
        'emitter list',
        'emitter revoke',
        'witness add',
        'witness list',
        'witness remove',
      ];
      if (!valid.includes(sub)) throw new ConfigError(USAGE);
      await cmdAdmin(config, { command: sub, args: rest, url });
      if (quorumFlag !== undefined) await cmdAdmin(config, { command: 'quorum', args: [quorumFlag] });
      return;
    }
    case 'reader': {
      const sub = `reader ${w1 ?? ''}` as AdminCommand['command'];
      if (!['reader add', 'reader list', 'reader revoke'].includes(sub)) throw new ConfigError(USAGE);
      return cmdAdmin(config, { command: sub, args: rest });
    }
    case 'export':
      return cmdExport(config, w1);
    case 'import':
      return cmdImport(config, w1);
    case 'quorum':
      return cmdAdmin(config, { command: 'quorum', args: [w1 ?? quorumFlag ?? ''] });
    case 'erase':
      if (w1 !== undefined) throw new ConfigError(USAGE);
      return cmdAdmin(config, { command: 'erase', args: [], options });
    case 'retention':
    case 'hold': {
      const sub = `${w0} ${w1 ?? ''}` as AdminCommand['command'];
      const valid = ['retention set', 'retention show', 'hold add', 'hold list', 'hold release'];
      if (!valid.includes(sub)) throw new ConfigError(USAGE);
      return cmdAdmin(config, { command: sub, args: rest, options });
    }
    default:
      console.error(USAGE);
      process.exit(w0 === undefined || w0 === 'help' ? 0 : 2);
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else if (err instanceof TransferError) console.error(`vigil-server: ${err.code}: ${err.message}`);
  else console.error(`vigil-server: ${(err as Error).message}`);
  process.exit(1);
});
