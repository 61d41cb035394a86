// Runs a service (the log server, the witness, the bare route) as a real process and waits until it
// listens. Output is kept (bounded) for error messages; stop() sends SIGTERM, then SIGKILL after 15 s.
import { spawn, type ChildProcess } from 'node:child_process';
import { track } from './procs.js';

export interface Service {
  child: ChildProcess;
  pid: number;
  port: number;
  base: string;
  output(): string;
  /** SIGTERM and wait; SIGKILL after the grace period. Returns the exit code (or 128 + signal). */
  stop(): Promise<number | null>;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  nodeArgs?: string[];
  /** Matched against the output; group 1 is the port. */
  listening?: RegExp;
  timeoutMs?: number;
}

const MAX_OUTPUT = 200_000;

export async function spawnService(
  script: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<Service> {
  const child = track(
    spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  const onData = (d: Buffer) => {
    if (out.length < MAX_OUTPUT) out += d.toString();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal !== null ? 128 : null))),
  );
  const pattern = options.listening ?? /https?:\/\/127\.0\.0\.1:([0-9]+)/;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not listen in time:\n${out.slice(-3000)}`)),
      options.timeoutMs ?? 60_000,
    );
    const poll = setInterval(() => {
      const m = pattern.exec(out);
      if (m !== null) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`${script} exited ${code} during start-up:\n${out.slice(-3000)}`));
    });
  });
  return {
    child,
    pid: child.pid!,
    port,
    base: `http://127.0.0.1:${port}`,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs a node script to completion; rejects with its output on a non-zero exit. */
export function runScript(
  script: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [script, ...args], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(
            `${script} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}${stdout.slice(-1000)}`,
          ),
        );
    });
  });
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssOf(pid: number): Promise<number | undefined> {
  const fs = await import('node:fs/promises');
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+([0-9]+) kB/.exec(status);
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** The pids of a process and all its descendants (Linux /proc: each process's parent in its stat). */
async function processTree(pid: number): Promise<number[]> {
  const fs = await import('node:fs/promises');
  const parents = new Map<number, number[]>();
  for (const name of await fs.readdir('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(name));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/**
 * Memory of a service and every process it started (the embedded PostgreSQL's postmaster and
 * backends): the sum of their proportional set sizes (PSS: each shared page split among the processes
 * that map it, so PostgreSQL's shared buffers count once), in bytes. Linux /proc smaps_rollup.
 */
export async function pssOfTree(pid: number): Promise<number | undefined> {
  const fs = await import('node:fs/promises');
  let sum = 0;
  let seen = false;
  for (const p of await processTree(pid)) {
    try {
      const rollup = await fs.readFile(`/proc/${p}/smaps_rollup`, 'utf8');
      const m = /^Pss:\s+([0-9]+) kB/m.exec(rollup);
      if (m !== null) {
        sum += Number(m[1]) * 1024;
        seen = true;
      }
    } catch {
      // exited meanwhile, or a zombie
    }
  }
  return seen ? sum : undefined;
}
