#!/usr/bin/env node
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { cosignerVerifierKey, generateKey, parseSignerKey } from '@vigil/client';
import { checkDataDirMode, checkKeyFileMode, useNodeCrypto } from '@vigil/client/node';
import { ZodError } from 'zod';
import { parseInterval, runAdminCommand, type AdminCommand } from './admin.js';
import { buildApp } from './app.js';
import { loadConfig, SETTINGS, type WitnessConfig } from './config.js';
import { migrateWitness, openWitnessStore, pendingWitnessMigrations } from './db/open.js';
import { inspect } from 'node:util';
import { exportWitness, importWitness } from './transfer.js';
import { TransferError } from '@vigil/store';

const USAGE = `usage: vigil-witness <command> [options]

commands:
  init --name <witness name>      create the witness key (<data-dir>/witness.key) and print its vkey;
                                  on the embedded store also create the store
  migrate                         apply pending migrations (migrations/witness/)
  serve                           run the witness (push: POST /add-checkpoint; pull: logs with --url)
  vkey                            print the witness's cosigner vkey
  log add <origin> <log vkey> [--url <log base URL>] [--pull-interval 5s]
  log list [--json]
  log disable <origin>            stop cosigning for a log (its state is kept)
  export <dir>                    write the witness's state (logs, cosigned checkpoints, evidence) to a
                                  new directory; the key file is not included
  import <dir>                    load an export into an empty, migrated store (notes are verified)

every command takes --data-dir (VIGIL_DATA_DIR, default ./data); see witness/README.md for all settings.`;

class UsageError extends Error {}

/**
 * Reads and checks the witness key file once; the key text is never printed or logged. The data
 * directory and the key follow the same mode rule as vigil-server's (shared through @vigil/client):
 * writable by others refuses the start, a key readable by others is made 0600 with a warning.
 */
async function readSignerKey(config: WitnessConfig): Promise<string> {
  let text: string;
  try {
    if (existsSync(config.dataDir)) await checkDataDirMode(config.dataDir);
    await checkKeyFileMode(config.keyFile, 'witness key', (line) => process.stderr.write(`${line}\n`));
    text = (await fs.readFile(config.keyFile, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UsageError(`no witness key at ${config.keyFile}: run vigil-witness init --name <name> first`);
    }
    throw err;
  }
  const key = parseSignerKey(text);
  if (key.seed.length !== 32)
    throw new UsageError(`witness key ${config.keyFile} does not hold a 32-byte seed`);
  return text;
}

async function init(config: WitnessConfig): Promise<void> {
  if (config.name === undefined) throw new UsageError('init needs --name <witness name> (or WITNESS_NAME)');
  const { signerKey } = generateKey(config.name);
  await fs.mkdir(path.dirname(config.keyFile), { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite an identity. A lost key means a new witness, not a silent restart.
    await fs.writeFile(config.keyFile, `${signerKey}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${config.keyFile} exists: this data directory already has a witness identity`);
    }
    throw err;
  }
  if (config.databaseUrl === undefined) {
    const opened = await openWitnessStore(config, 'attach');
    try {
      const applied = await migrateWitness(opened.db);
      process.stderr.write(
        `initialised the embedded store in ${path.join(config.dataDir, 'pg')} (${applied.length} migrations)\n`,
      );
    } finally {
      await opened.close();
    }
  } else {
    process.stderr.write('with DATABASE_URL nothing else is created: run vigil-witness migrate\n');
  }
  process.stderr.write(`wrote ${config.keyFile} (mode 0600); the witness cosigner vkey is:\n`);
  process.stdout.write(`${cosignerVerifierKey(signerKey)}\n`);
}

async function migrate(config: WitnessConfig): Promise<void> {
  const opened = await openWitnessStore(config, 'attach');
  try {
    const applied = await migrateWitness(opened.db);
    process.stderr.write(
      applied.length === 0 ? 'no pending migrations\n' : `applied ${applied.join(', ')}\n`,
    );
  } finally {
    await opened.close();
  }
}

async function serve(config: WitnessConfig): Promise<void> {
  const signerKey = await readSignerKey(config);
  const opened = await openWitnessStore(config, 'own');
  const pending = await pendingWitnessMigrations(opened.db).catch(async (err: unknown) => {
    await opened.close();
    throw err;
  });
  if (pending.length > 0) {
    await opened.close();
    throw new UsageError(`pending migrations (${pending.join(', ')}): run vigil-witness migrate first`);
  }
  const https =
    config.tlsCert !== undefined && config.tlsKey !== undefined
      ? {
          cert: await fs.readFile(config.tlsCert),
          key: await fs.readFile(config.tlsKey),
          minVersion: 'TLSv1.2',
        }
      : undefined;
  const app = await buildApp(config, {
    store: opened.store,
    signerKey,
    pull: true,
    fastify: {
      connectionTimeout: 30_000,
      keepAliveTimeout: 65_000,
      requestTimeout: 30_000,
      ...(https === undefined ? {} : { https }),
    },
  });
  app.addHook('onClose', async () => {
    await opened.close();
  });
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });
  await app.listen({ host: config.host, port: config.port });
  app.log.info({ name: app.witness.name, vkey: app.witness.vkey, store: opened.kind }, 'witness ready');
}

async function admin(config: WitnessConfig, command: AdminCommand, json: boolean): Promise<void> {
  let result;
  const opened = await openWitnessStore(config, 'attach');
  try {
    const pending = await pendingWitnessMigrations(opened.db);
    if (pending.length > 0)
      throw new UsageError(`pending migrations (${pending.join(', ')}): run vigil-witness migrate first`);
    result = await runAdminCommand(opened.store, command);
  } finally {
    await opened.close();
  }
  if (!result.ok) throw new UsageError(`${result.code}: ${result.message}`);
  if (result.logs !== undefined) {
    if (json) process.stdout.write(`${JSON.stringify(result.logs, null, 2)}\n`);
    else {
      for (const log of result.logs) {
        const mode = log.url === null ? 'push' : `pull ${log.url} every ${log.pullIntervalMs}ms`;
        process.stdout.write(
          `${log.origin}\tsize ${log.size}\t${log.disabled ? 'disabled' : 'enabled'}\t${mode}\t${log.vkey}\n`,
        );
      }
    }
  } else {
    process.stderr.write(`${result.message}\n`);
  }
}

/** `export <dir>` / `import <dir>`: the store moves whole (see transfer.ts). */
async function transfer(config: WitnessConfig, direction: 'export' | 'import', dir: string): Promise<void> {
  const opened = await openWitnessStore(config);
  try {
    const pending = await pendingWitnessMigrations(opened.db);
    if (pending.length > 0)
      throw new UsageError(`pending migrations (${pending.join(', ')}): run vigil-witness migrate first`);
    if (direction === 'export') {
      const rows = await exportWitness(opened.db, dir);
      process.stdout.write(`exported the witness state to ${dir}\n`);
      for (const [table, n] of Object.entries(rows)) process.stdout.write(`  ${table}: ${n} rows\n`);
    } else {
      const r = await importWitness(opened.db, dir);
      process.stdout.write(`imported the witness state of ${r.logs} logs from ${dir}\n`);
    }
  } finally {
    await opened.close();
  }
}

async function main(argv: string[]): Promise<void> {
  useNodeCrypto();
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    url: { type: 'string' },
    'pull-interval': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
  };
  for (const { flag } of Object.values(SETTINGS)) options[flag] = { type: 'string' };
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const [command, ...rest] = positionals;
  if (values.help === true || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let config: WitnessConfig;
  try {
    config = loadConfig(process.env, values);
  } catch (err) {
    if (err instanceof ZodError) {
      for (const issue of err.issues)
        process.stderr.write(`invalid setting ${issue.path.join('.')}: ${issue.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const args = (n: number) => {
    if (rest.length !== n) throw new UsageError(USAGE);
    return rest;
  };
  switch (command) {
    case 'init':
      args(0);
      return init(config);
    case 'migrate':
      args(0);
      return migrate(config);
    case 'serve':
      args(0);
      return serve(config);
    case 'export':
    case 'import':
      return transfer(config, command, args(1)[0]!);
    case 'vkey':
      args(0);
      process.stdout.write(`${cosignerVerifierKey(await readSignerKey(config))}\n`);
      return;
    case 'log': {
      const [sub, ...subArgs] = rest;
      if (sub === 'add' && subArgs.length === 2) {
        const [origin, vkey] = subArgs as [string, string];
        const url = typeof values.url === 'string' ? values.url : null;
        const interval = typeof values['pull-interval'] === 'string' ? values['pull-interval'] : '5s';
        return admin(
          config,
          { cmd: 'log-add', origin, vkey, url, pullIntervalMs: parseInterval(interval) },
          false,
        );
      }
      if (sub === 'list' && subArgs.length === 0)
        return admin(config, { cmd: 'log-list' }, values.json === true);
      if (sub === 'disable' && subArgs.length === 1) {
        return admin(config, { cmd: 'log-disable', origin: subArgs[0] as string }, false);
      }
      throw new UsageError(USAGE);
    }
    default:
      throw new UsageError(USAGE);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof TransferError) {
    process.stderr.write(`vigil-witness: ${err.code}: ${err.message}\n`);
  } else if (err instanceof UsageError || (err as { code?: string }).code === 'DATA_DIR_IN_USE') {
    process.stderr.write(`vigil-witness: ${(err as Error).message}\n`);
  } else if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    process.stderr.write(`vigil-witness: ${(err as Error).message}\n${USAGE}\n`);
  } else {
    process.stderr.write(`vigil-witness: ${err instanceof Error ? err.message : inspect(err)}\n`);
  }
  process.exit(1);
});
