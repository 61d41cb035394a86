// Test helpers: real server and witness processes, a prepared store, signed record streams.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKey, recordHash, signRecord } from '@vigil/client';
import type { TestStore } from '../../src/db/testing.js';
import type { Database } from '../../src/db/schema.js';
import { migrateToLatest, migrationsFolder } from '../../src/db/migrate.js';
import { createKeyFile, initLog, readKeyFile } from '../../src/tlog/signer.js';
import { runAdminCommand } from '../../src/admin.js';

export const SERVER_MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
export const WITNESS_MAIN = fileURLToPath(new URL('../../../../witness/dist/src/main.js', import.meta.url));

/** A running (or finished) child process with its combined output. */
export interface Child {
  proc: ChildProcess;
  output(): string;
  /**
   * Resolves with the first match of `re` in the output after character `from` (default 0); rejects
   * after `ms` or if the process exits first.
   */
  waitFor(re: RegExp, ms?: number, from?: number): Promise<RegExpExecArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `node <main> ...args` with `env` added to a clean environment. */
export function spawnNode(main: string, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, [main, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const l of listeners) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => {
      done = true;
      for (const l of listeners) l();
      resolve({ code, signal });
    }),
  );
  return {
    proc,
    output: () => out,
    exited,
    waitFor(re, ms = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out.slice(from));
          if (m) finish(() => resolve(m));
          else if (done) finish(() => reject(new Error(`process exited before ${re}; output:\n${out}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`timed out waiting for ${re}; output:\n${out}`))),
          ms,
        );
        const finish = (f: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/**
 * Stops a child if it still runs (teardown): SIGTERM, so a server or witness stops its embedded
 * PostgreSQL before its data directory is removed, then SIGKILL after `graceMs`.
 */
export async function stopChild(c: Child, graceMs = 10_000): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  if ((await Promise.race([c.exited, late])) === 'late') {
    c.proc.kill('SIGKILL');
    await c.exited;
  }
  clearTimeout(timer);
}

/** Env and flags that point a `vigil-server` process at a test store. */
export function serverEnv(store: TestStore): Record<string, string> {
  return {
    VIGIL_DATA_DIR: store.dataDir,
    ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {}),
    LOG_LEVEL: 'info',
    VIGIL_RATE_ADDRESS: '0',
  };
}

/** Starts `vigil-server serve --port 0` and waits until it listens; returns its base URL. */
export async function startServer(
  store: TestStore,
  extraArgs: string[] = [],
): Promise<{ child: Child; url: string }> {
  const child = spawnNode(SERVER_MAIN, ['serve', '--port', '0', ...extraArgs], serverEnv(store));
  const m = await child.waitFor(/vigil log listening on (http:\/\/\S+)/);
  return { child, url: m[1]! };
}

export const ORIGIN = 'test.example/log';

/**
 * Migrates the store, writes `<dataDir>/log.key`, creates the log `origin` and registers emitter `em1`.
 * Closes its handle (its embedded PostgreSQL stops, so a server process can start its own).
 */
export async function prepareLog(
  store: TestStore,
  origin = ORIGIN,
): Promise<{ signerKey: string; vkey: string; emitterKey: string }> {
  const opened = await store.open<Database>();
  try {
    await migrateToLatest(opened.db, migrationsFolder('log'));
    const keyFile = join(store.dataDir, 'log.key');
    await createKeyFile(keyFile, origin);
    const key = await readKeyFile(keyFile);
    await initLog(opened.db, origin, key.signerKey);
    const em = generateKey('em1');
    await runAdminCommand(opened.db, { command: 'emitter add', args: ['em1', em.verifierKey] });
    return { signerKey: key.signerKey, vkey: key.vkey, emitterKey: em.signerKey };
  } finally {
    await opened.close();
  }
}

/** Adds a reader to the log of `store` (as `vigil-server reader add` does); returns its token. */
export async function addReader(store: TestStore, name = 'auditor'): Promise<string> {
  const opened = await store.open<Database>();
  try {
    const out = await runAdminCommand(opened.db, { command: 'reader add', args: [name] });
    return out.split('\n').at(-1)!;
  } finally {
    await opened.close();
  }
}

/** A signed record stream: `next(n)` returns the next n submissions of stream `stream`. */
export function recordStream(
  emitterKey: string,
  stream: string,
  emitter = 'em1',
): {
  next(
    n: number,
    extra?: Record<string, unknown>,
  ): { emitter: string; record: Record<string, unknown>; sig: string }[];
} {
  let seq = 0;
  let prev: string | undefined;
  return {
    next(n, extra = {}) {
      const out = [];
      for (let i = 0; i < n; i++) {
        const record: Record<string, unknown> = {
          v: 1,
          stream,
          seq,
          ...(prev ? { prev } : {}),
          time: '2026-11-24T12:00:00.000Z',
          kind: seq === 0 ? 'stream.open' : 'mcp.message',
          ...extra,
        };
        prev = recordHash(record);
        seq++;
        out.push({ emitter, record, sig: signRecord(record, emitterKey) });
      }
      return out;
    },
  };
}

/** Polls `fn` until it returns a value other than undefined, or throws after `ms`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  ms = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(last ?? '')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
