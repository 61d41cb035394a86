// End-to-end helper: runs the real log server process (`node server/dist/src/main.js`) on an
// ephemeral port with a temp data directory (the embedded PostgreSQL it starts itself) or a fresh
// Postgres database, and returns its URL, origin, vkey and a tlog-policy for it. Shared by the client
// and MCP e2e tests. Each log runs in its own process group, so a SIGKILL reaches the service and its
// PostgreSQL together, as a power cut would.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { copyTemplateCluster } from '@vigil/store';

/** Every log process this helper started and that is still running: killed with its process group
 * when the test process exits, so a test that fails half-way (before its teardown was registered)
 * leaves no log and no PostgreSQL behind. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) killGroup(c, 'SIGKILL');
});

/** Signals the process group a detached child leads (the service and the PostgreSQL it started). */
function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-c.pid!, signal);
  } catch {
    // already gone
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The compiled server CLI. */
export const serverMain = path.join(root, 'server/dist/src/main.js');
/** The compiled `vigil` CLI. */
export const vigilMain = path.join(root, 'client-lib/dist/src/cli/main.js');

export interface LogProcess {
  /** URL prefix with a trailing slash, e.g. http://127.0.0.1:41234/ */
  url: string;
  port: number;
  origin: string;
  vkey: string;
  /** tlog-policy text trusting this log's key, quorum none. */
  policy: string;
  dataDir: string;
  /** Set when the log runs on Postgres. */
  databaseUrl: string | undefined;
  /** Output of the current process so far (stdout + stderr). */
  output(): string;
  /** Registers an emitter with `vigil-server emitter add` (works while the log runs). */
  addEmitter(name: string, vkey: string): Promise<void>;
  /** Adds a reader with `vigil-server reader add`; resolves with the token it printed once. */
  addReader(name: string): Promise<string>;
  /** A reader token for this log (one reader, `e2e-reader`, added on first use). */
  readerToken(): Promise<string>;
  /**
   * Sends a signal and waits for the exit code. SIGKILL is a power cut: it reaches the whole process
   * group (the service and its embedded PostgreSQL); other signals go to the service alone.
   */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** Starts the process again on the same port and data. */
  restart(): Promise<void>;
  /** Stops the process and removes the data directory (and drops the Postgres database). */
  stop(): Promise<void>;
}

export interface StartLogOptions {
  /** Use Postgres (a fresh database created from this server URL, e.g. TEST_DATABASE_URL). */
  postgresUrl?: string;
  origin?: string;
  /** Extra environment for the server. */
  env?: Record<string, string>;
  /** Extra server flags. */
  args?: string[];
  /**
   * Embedded store: start from a copy of the test template cluster (default true, skipping initdb);
   * false runs `start` on a truly empty data directory, as `npm start` does.
   */
  fromTemplate?: boolean;
}

/** Runs a command to completion; rejects with its output on a non-zero exit. */
export function runNode(
  script: string,
  args: string[],
  env: Record<string, string | undefined> = {},
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function must(
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<string> {
  const r = await runNode(script, args, env);
  if (r.code !== 0)
    throw new Error(`${path.basename(script)} ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Polls `fn` until it returns true or the deadline passes (generous: 2 shared cores under load start PostgreSQL slowly). */
export async function until(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Creates a fresh Postgres database; returns its URL and a drop function. */
export async function createDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `vigil_t_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Starts a log; see LogProcess. */
export async function startLog(options: StartLogOptions = {}): Promise<LogProcess> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-log-'));
  const origin = options.origin ?? 'vigil.test/log';
  const db = options.postgresUrl !== undefined ? await createDatabase(options.postgresUrl) : undefined;
  const env: Record<string, string | undefined> = {
    LOG_LEVEL: 'info',
    ...(db !== undefined ? { DATABASE_URL: db.url } : { DATABASE_URL: undefined }),
    ...options.env,
  };
  // The embedded store starts from a copy of a cluster made once (initdb costs seconds here); the
  // cold start with initdb itself is covered by test/e2e/durability-fsync.test.ts and store/test.
  if (db === undefined && options.fromTemplate !== false) await copyTemplateCluster(dataDir);
  if (db !== undefined) {
    await must(serverMain, ['migrate', '--data-dir', dataDir], env);
    await must(serverMain, ['init', '--origin', origin, '--data-dir', dataDir], env);
  }
  let port = 0;
  let child: ChildProcess | undefined;
  let out = '';
  let exit: Promise<number | null> = Promise.resolve(null);

  const launch = async (): Promise<void> => {
    out = '';
    const cmd = db !== undefined ? 'serve' : 'start';
    const args = [
      cmd,
      '--data-dir',
      dataDir,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      ...(db === undefined ? ['--origin', origin] : []),
      ...(options.args ?? []),
    ];
    const c = spawn(process.execPath, [serverMain, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child = c;
    running.add(c);
    c.on('exit', () => running.delete(c));
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    exit = new Promise((resolve) =>
      c.on('exit', (code, signal) => resolve(code ?? (signal !== null ? 128 : null))),
    );
    let exited = false;
    void exit.then(() => (exited = true));
    await until(`log listening (output so far: ${out.slice(0, 2000)})`, () => {
      if (exited) throw new Error(`log exited during start-up:\n${out}`);
      const m = /https?:\/\/127\.0\.0\.1:([0-9]+)/.exec(out);
      if (m === null) return false;
      port = Number(m[1]);
      return true;
    });
    await until('log healthy', async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
      } catch {
        return false;
      }
    });
  };

  await launch();
  let reader: Promise<string> | undefined;
  const info = (await (await fetch(`http://127.0.0.1:${port}/v1/log`)).json()) as {
    origin: string;
    vkey: string;
  };
  const log: LogProcess = {
    url: `http://127.0.0.1:${port}/`,
    port,
    origin: info.origin,
    vkey: info.vkey,
    policy: `log ${info.vkey}\nquorum none\n`,
    dataDir,
    databaseUrl: db?.url,
    output: () => out,
    async addEmitter(name, vkey) {
      await must(serverMain, ['emitter', 'add', name, vkey, '--data-dir', dataDir], env);
    },
    async addReader(name) {
      const out = await must(serverMain, ['reader', 'add', name, '--data-dir', dataDir], env);
      const token = /vigil_rt_[A-Za-z0-9_-]+/.exec(out)?.[0];
      if (token === undefined) throw new Error(`vigil-server reader add printed no token`);
      return token;
    },
    readerToken() {
      reader ??= log.addReader('e2e-reader');
      return reader;
    },
    async kill(signal = 'SIGTERM') {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null)
        return child?.exitCode ?? null;
      if (signal === 'SIGKILL') killGroup(child, signal);
      else child.kill(signal);
      return exit;
    },
    async restart() {
      await launch();
    },
    async stop() {
      await log.kill('SIGTERM');
      await db?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
  return log;
}
