/** Shared CLI plumbing: streams, usage errors, tables and colours (colours only on a TTY). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /** Colour escapes on stdout (a TTY without NO_COLOR). */
  color: boolean;
  /** Progress bar on stderr (a TTY). */
  progress: boolean;
}

/** Wrong invocation: main prints the message and the usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The options of every review command that reads a window of the log (sessions, search, export). */
export const WINDOW_OPTIONS = {
  log: { type: 'string' },
  policy: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  clock: { type: 'string' },
  emitter: { type: 'string' },
  'reader-token': { type: 'string' },
} as const;

/** parseArgs with strict checking; unknown options become UsageErrors. */
export function args<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  allowPositionals = true,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A required string option. */
export function required(
  values: Record<string, string | boolean | undefined>,
  name: string,
  what: string,
): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required (${what})`);
  return v;
}

/**
 * The reader token: `--reader-token`, else VIGIL_READER_TOKEN, else none. (A token on the command
 * line is visible to other local users in the process list; the environment variable is not.)
 */
export function readerToken(
  values: Record<string, string | boolean | undefined>,
  io: Io,
): string | undefined {
  const v = values['reader-token'];
  if (typeof v === 'string' && v !== '') return v;
  const e = io.env['VIGIL_READER_TOKEN'];
  return e !== undefined && e !== '' ? e : undefined;
}

export function paint(io: Io, code: 'red' | 'green' | 'yellow' | 'bold' | 'dim', text: string): string {
  if (!io.color) return text;
  const c = { red: 31, green: 32, yellow: 33, bold: 1, dim: 2 }[code];
  return `\x1b[${c}m${text}\x1b[0m`;
}

/** Aligned columns; the first row is the header. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') +
    '\n'
  );
}

/** Parses durations like 500ms, 10s, 5m, 1h. */
export function parseDuration(s: string, what: string): number {
  const m = /^([0-9]+)(ms|s|m|h)?$/.exec(s);
  if (m === null) throw new UsageError(`${what} ${JSON.stringify(s)} is not a duration like 30s or 5m`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/** Reads a whole stream as UTF-8. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
