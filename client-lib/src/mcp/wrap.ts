/**
 * `vigil mcp wrap`: runs a stdio MCP server as a child process, passes stdin and stdout through byte
 * for byte, and records every line in both directions, every stderr line, the start and the exit
 * (DESIGN.md "MCP capture"). Node only.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { type McpCapture, MCP_KINDS, type MessageContext, refusalOf } from './capture.js';
import { isUtf8 } from '../encoding.js';
import { type Line, LineSplitter } from './line-splitter.js';
import type { Principal } from './types.js';

/** Signals the wrapper passes on to the server. */
export const FORWARDED_SIGNALS: NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
];

/** Options of `runWrap`. */
export interface WrapOptions {
  command: string;
  args: string[];
  capture: McpCapture;
  /** The client's side: what it writes to us, where we answer, where stderr goes. */
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The stream id used as session for correlation (default: a new UUID). */
  session?: string;
  /** Default: the local OS user. */
  principal?: Principal;
  /** Where signals come from (default `process`); pass `null` to forward none. */
  signalSource?: EventEmitter | null;
  /** Reports capture problems that do not stop the wrapper (a record the log refused, ...). */
  onWarning?: (message: string) => void;
}

/** How the wrapped server ended. `status`: the exit status to give our own parent (128+n on signal n). */
export interface WrapResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  status: number;
  session: string;
}

/** A serial queue of writes to one stream: keeps line order, waits for each line's gate. */
class OrderedWriter {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private readonly out: Writable;
  private readonly onDepth: (depth: number) => void;
  constructor(out: Writable, onDepth: (depth: number) => void) {
    this.out = out;
    this.onDepth = onDepth;
  }

  /** Queues `task`, which runs after every earlier one; its result decides what is written. */
  enqueue(task: () => Promise<Buffer | undefined>): void {
    this.queued++;
    this.onDepth(this.queued);
    this.tail = this.tail.then(async () => {
      try {
        const bytes = await task();
        if (bytes !== undefined) await writeAll(this.out, bytes);
      } finally {
        this.queued--;
        this.onDepth(this.queued);
      }
    });
  }

  /**
   * Writes `bytes` now when nothing is queued (so the write happens before whatever the caller does
   * next), else queues it behind the earlier writes. Order is the same either way.
   */
  writeNow(bytes: Buffer): void {
    if (this.queued > 0) {
      this.enqueue(async () => bytes);
      return;
    }
    this.tail = writeAll(this.out, bytes);
  }

  /** Resolves when everything queued so far has been written. */
  drained(): Promise<void> {
    return this.tail;
  }
}

function writeAll(out: Writable, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (out.destroyed || out.writableEnded) {
      resolve();
      return;
    }
    // Resolve on error too: a closed pipe must not wedge the queue; the exit path reports it.
    const ok = out.write(bytes, () => resolve());
    if (!ok) out.once('error', () => resolve());
  });
}

const HIGH_WATER = 256;

/**
 * Spawns `command args`, wires the client's stdio to it through the capture, and resolves once the
 * child exited and everything it wrote was forwarded and recorded. Does not close the capture.
 */
export async function runWrap(options: WrapOptions): Promise<WrapResult> {
  const { capture, stdin, stdout, stderr } = options;
  const session = options.session ?? randomUUID();
  const warn = options.onWarning ?? (() => {});
  const principal = options.principal ?? processPrincipal();
  const context: MessageContext = { session, principal };
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;

  const child: ChildProcess = spawn(options.command, options.args, {
    cwd,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const spawned = new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = await spawned;
  void capture
    .event({
      kind: MCP_KINDS.processStart,
      session,
      command: options.command,
      args: options.args,
      cwd,
      user: principal.type === 'process' ? principal.user : os.userInfo().username,
      host: os.hostname(),
      pid: child.pid ?? null,
      // Names only: values often hold secrets (MCP.md section 2, "stdio context").
      envNames: Object.keys(env).sort(),
      ...(spawnError === undefined ? {} : { error: spawnError.message }),
    })
    .catch((err: unknown) => warn(`could not record process start: ${String(err)}`));
  if (spawnError !== undefined) {
    await capture
      .event({
        kind: MCP_KINDS.processExit,
        session,
        pid: null,
        code: null,
        signal: null,
        error: spawnError.message,
      })
      .catch(() => {});
    return { code: null, signal: null, status: 127, session };
  }
  const childStdin = child.stdin as Writable;
  const childStdout = child.stdout as Readable;
  const childStderr = child.stderr as Readable;
  childStdin.on('error', (err) => warn(`server stdin: ${err.message}`));

  const toServer = new OrderedWriter(childStdin, (depth) => {
    if (depth > HIGH_WATER) stdin.pause();
    else if (depth === 0) stdin.resume();
  });
  const toClient = new OrderedWriter(stdout, (depth) => {
    if (depth > HIGH_WATER) childStdout.pause();
    else if (depth === 0) childStdout.resume();
  });

  const fromClient = (line: Line): void => {
    const observation = capture.observeText('client_to_server', line.text, context, line.bytes);
    const { classified } = observation;
    toServer.enqueue(async () => {
      try {
        await observation.gate;
        return line.bytes;
      } catch (err) {
        // Sync mode: a gated message (a request, a batch holding one, an unclassifiable line) is not
        // forwarded; the client gets an error with the same id (an array of them for a batch).
        const refusal = refusalOf(classified, err instanceof Error ? err.message : String(err));
        if (refusal === undefined) {
          warn(`forwarding a message whose record failed: ${String(err)}`);
          return line.bytes;
        }
        const text = JSON.stringify(refusal);
        warn(`refused a ${classified.type} message: audit log unavailable`);
        capture.observeText('server_to_client', text, { ...context, synthesized: true });
        toClient.enqueue(async () => Buffer.from(text + '\n'));
        return undefined;
      }
    });
  };
  const fromServer = (line: Line): void => {
    // What the server sends never waits for the log or the spool (capture.ts, audit modes): forward
    // it first and record it after, so the recording work is off the client's path. The record is
    // still made before the next line is read, so the stream keeps the wire order.
    if (capture.receipts) {
      // `--receipts`: recorded as the server sent it, forwarded with the log's receipts in `_meta`.
      const { classified } = capture.observeText('server_to_client', line.text, context, line.bytes);
      const text = capture.decorate(session, classified, line.text);
      // Only a UTF-8 line is rewritten: its text re-encodes to the same bytes.
      if (text === line.text || !isUtf8(line.bytes)) toClient.writeNow(line.bytes);
      else {
        const terminator = line.bytes.subarray(Buffer.byteLength(line.text));
        toClient.writeNow(Buffer.concat([Buffer.from(text), terminator]));
      }
      return;
    }
    toClient.writeNow(line.bytes);
    capture.observeText('server_to_client', line.text, context, line.bytes);
  };

  const clientLines = new LineSplitter();
  const onStdinData = (chunk: Buffer): void => {
    for (const line of clientLines.push(chunk)) fromClient(line);
  };
  const onStdinEnd = (): void => {
    const tail = clientLines.end();
    if (tail !== undefined) fromClient(tail);
    // stdin close propagates once every earlier line reached the server.
    void toServer.drained().then(() => childStdin.end());
  };
  stdin.on('data', onStdinData);
  stdin.once('end', onStdinEnd);

  const serverLines = new LineSplitter();
  childStdout.on('data', (chunk: Buffer) => {
    for (const line of serverLines.push(chunk)) fromServer(line);
  });
  const stdoutEnded = new Promise<void>((resolve) => {
    childStdout.once('close', () => {
      const tail = serverLines.end();
      if (tail !== undefined) fromServer(tail);
      resolve();
    });
  });

  const stderrLines = new LineSplitter();
  const recordStderr = (line: Line): void => {
    capture
      .stderrLine(session, line.text, line.bytes)
      .catch((err: unknown) => warn(`could not record stderr: ${String(err)}`));
  };
  childStderr.on('data', (chunk: Buffer) => {
    stderr.write(chunk);
    for (const line of stderrLines.push(chunk)) recordStderr(line);
  });
  const stderrEnded = new Promise<void>((resolve) => {
    childStderr.once('close', () => {
      const tail = stderrLines.end();
      if (tail !== undefined) recordStderr(tail);
      resolve();
    });
  });

  const signalSource = options.signalSource === undefined ? process : options.signalSource;
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const listener = (): void => forward(signal);
    signalSource?.on(signal, listener);
    return [signal, listener] as const;
  });

  const { code, signal } = await closed;
  await Promise.all([stdoutEnded, stderrEnded]);
  await toClient.drained();
  for (const [s, listener] of listeners) signalSource?.removeListener(s, listener);
  stdin.removeListener('data', onStdinData);
  stdin.removeListener('end', onStdinEnd);
  stdin.pause();

  await capture
    .event({ kind: MCP_KINDS.processExit, session, pid: child.pid ?? null, code, signal })
    .catch((err: unknown) => warn(`could not record process exit: ${String(err)}`));
  await capture
    .endSession(session, 'process_exit')
    .catch((err: unknown) => warn(`could not record unanswered requests: ${String(err)}`));
  const signalNumber = signal === null ? 0 : (os.constants.signals[signal] ?? 0);
  return { code, signal, status: code ?? 128 + signalNumber, session };
}

/** Most bytes of the parent's command line kept. */
const MAX_COMMAND_BYTES = 8 * 1024;

/**
 * The principal of a stdio session (MCP.md 1.11: stdio has no token): the local OS user and uid, the
 * wrapper's pid, and the process that spawned it (the client), with its command line and real uid
 * where /proc can be read. Nothing here is verified by the client: it is what the OS says about the
 * process tree at start.
 */
export function processPrincipal(): Principal {
  const info = os.userInfo();
  const principal: Principal = { type: 'process', user: info.username, uid: info.uid, pid: process.pid };
  principal.parent = parentProcess(process.ppid);
  return principal;
}

/** What /proc says about process `pid` (its argv and real uid); only the pid where it cannot be read. */
export function parentProcess(pid: number): NonNullable<Extract<Principal, { type: 'process' }>['parent']> {
  const parent: NonNullable<Extract<Principal, { type: 'process' }>['parent']> = { pid };
  try {
    let bytes = readFileSync(`/proc/${pid}/cmdline`);
    if (bytes.length > MAX_COMMAND_BYTES) {
      bytes = bytes.subarray(0, MAX_COMMAND_BYTES);
      parent.commandTruncated = true;
    }
    const args = bytes.toString('utf8').split('\0');
    if (args.at(-1) === '') args.pop();
    if (args.length > 0) parent.command = args;
  } catch {
    // Not Linux, or the parent is gone or not ours to read: the pid alone.
  }
  try {
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (uid !== undefined) parent.uid = Number(uid);
  } catch {
    // As above.
  }
  return parent;
}

export { EventEmitter };
