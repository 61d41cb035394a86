/**
 * The reviewer's commands (DESIGN.md "Forensic review"): `vigil policy`, `vigil sessions`,
 * `vigil transcript`, and the log side of `vigil verify --log URL --index N`. Everything the log sends
 * is checked here against the reviewer's policy before it is shown; the pure logic is in ../review/.
 */
import { LogClient } from '../client.js';
import { readLimited } from '../read-limited.js';
import { MAX_ENTRY_SIZE } from '../record.js';
import {
  fetchTranscript,
  fetchVerifiedRecords,
  parseTimeBound,
  policyFromLogInfo,
  summarizeSessions,
  type ReviewClock,
  type TranscriptItem,
  type TranscriptSide,
} from '../review/index.js';
import { loadPolicy } from './commands.js';
import { args, paint, readerToken, required, table, UsageError, WINDOW_OPTIONS, type Io } from './io.js';
import { terminalSafe } from './sealed-view.js';

export const POLICY_USAGE = `usage: vigil policy --log URL [--out FILE]

Prints a tlog-policy for the log: its key, its witnesses and quorum, as the log's /v1/log describes
them. This is trust on first use: compare the printed keys with ones obtained out of band (from the
operator, from each witness) before you pin the file and pass it as --policy.
`;

export const SESSIONS_USAGE = `usage: vigil sessions --log URL --policy FILE [--since 10m|7d|<RFC3339>] [--until ...]
                     [--clock received|emitter] [--emitter E] [--tool T] [--method M]
                     [--principal TYPE] [--json] [--reader-token T]

One line per session with a record in the window: first and last time on both clocks, emitters,
records, requests, errors, tools called, principal type, the server it reached (upstream URL or
wrapped command), how it ended (exit code, signal, DELETE; "open" when no record says so), and how
many records failed verification.
--tool, --method and --principal keep the sessions that called that tool, sent a request of that
method, or had a principal of that type (process, jwt, token, ...).
Every record's receipt is verified against the policy. --clock chooses the clock the window filters
on (default received: the log's clock). Needs a reader token (or VIGIL_READER_TOKEN).
`;

export const TRANSCRIPT_USAGE = `usage: vigil transcript <session> --log URL --policy FILE [--json] [--reader-token T] [--no-open]

The session in log order: each request beside its response (method, tool, arguments and result
opened and checked against their commitments, error, both clocks, latency, entry indices), every
record's receipt verified against the policy (FAILED is shown, never hidden), and for each tools/call
the tools/list result in effect; a tool whose description or input schema changed during the session
is flagged with both indices. Needs a reader token (search needs one); with --no-open values stay
[sealed] (no access.read record of opened content).
--json prints one JSON object per line. Exit 1 when a record failed verification.
`;

/** Parses --index as a canonical decimal. */
function indexOf(text: string): bigint {
  if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new UsageError('--index must be a non-negative integer');
  return BigInt(text);
}

/**
 * The exact entry bytes at `index` (`GET /v1/entries/<i>?format=raw`) and its receipt, both unverified:
 * `vigil verify` checks them as it checks files.
 */
export async function fetchEntryAndReceipt(
  logUrl: string,
  indexText: string,
): Promise<{ receipt: string; entry: Uint8Array }> {
  const index = indexOf(indexText);
  const client = new LogClient(logUrl);
  const res = await client.request(`v1/entries/${index}?format=raw`);
  const entry = await readLimited(res, MAX_ENTRY_SIZE, `/v1/entries/${index}?format=raw`);
  return { receipt: await client.receipt(index), entry };
}

/** `vigil policy --log URL [--out FILE]`. */
export async function runPolicy(argv: string[], io: Io): Promise<number> {
  const { values } = args(argv, { log: { type: 'string' }, out: { type: 'string' } }, false);
  const url = required(values, 'log', 'the log URL');
  const info = await new LogClient(url).logInfo();
  let text: string;
  try {
    ({ text } = policyFromLogInfo(info, url.endsWith('/') ? url.slice(0, -1) : url));
  } catch (err) {
    io.stderr.write(`vigil: the log's /v1/log does not make a usable policy: ${(err as Error).message}\n`);
    return 1;
  }
  const header =
    `# tlog-policy for ${info.origin}, as ${url} described itself (trust on first use).\n` +
    `# Compare these keys with copies obtained out of band before pinning this file.\n`;
  io.stderr.write(
    `vigil: warning: trust on first use: these keys are what ${url} says they are. Check the log key and ` +
      `every witness key out of band (from the operator, from each witness) before pinning this policy.\n`,
  );
  if (typeof values.out === 'string') {
    const fs = await import('node:fs/promises');
    await fs.writeFile(values.out, header + text, { flag: 'wx' });
    io.stderr.write(`wrote ${values.out}\n`);
  } else io.stdout.write(header + text);
  return 0;
}

/** The window options shared by the review commands and `vigil search`. */
export function windowOf(values: Record<string, string | boolean | undefined>, now: Date) {
  const clock = values.clock ?? 'received';
  if (clock !== 'received' && clock !== 'emitter')
    throw new UsageError('--clock must be received (the log) or emitter');
  const bound = (name: 'since' | 'until'): Date | undefined => {
    const v = values[name];
    if (typeof v !== 'string') return undefined;
    try {
      return parseTimeBound(v, now, `--${name}`);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  return { clock: clock as ReviewClock, since: bound('since'), until: bound('until') };
}

/** `vigil sessions`. */
export async function runSessions(argv: string[], io: Io): Promise<number> {
  const { values } = args(
    argv,
    {
      ...WINDOW_OPTIONS,
      tool: { type: 'string' },
      method: { type: 'string' },
      principal: { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  );
  const url = required(values, 'log', 'the log URL');
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file'));
  const window = windowOf(values, new Date());
  const token = readerToken(values, io);
  const client = new LogClient(url, token !== undefined ? { readerToken: token } : {});
  // The log filters on its own clock; with --clock emitter every record is fetched and filtered here.
  const query: Parameters<LogClient['search']>[0] = {};
  if (typeof values.emitter === 'string') query.emitter = values.emitter;
  if (window.clock === 'received') {
    if (window.since !== undefined) query.since = window.since.toISOString();
    if (window.until !== undefined) query.until = window.until.toISOString();
  }
  const { records } = await fetchVerifiedRecords(client, policy, query, false);
  const sessions = summarizeSessions(records, {
    clock: window.clock,
    ...(window.since !== undefined ? { since: window.since } : {}),
    ...(window.until !== undefined ? { until: window.until } : {}),
    ...(typeof values.emitter === 'string' ? { emitter: values.emitter } : {}),
    ...(typeof values.tool === 'string' ? { tool: values.tool } : {}),
    ...(typeof values.method === 'string' ? { method: values.method } : {}),
    ...(typeof values.principal === 'string' ? { principal: values.principal } : {}),
  });
  const failed = sessions.reduce((n, s) => n + s.failed, 0);
  const clockNote = `window on the ${window.clock === 'received' ? "log's clock (received)" : "emitter's clock (time)"}`;
  if (values.json === true) {
    for (const s of sessions) io.stdout.write(JSON.stringify({ ...s, clock: window.clock }) + '\n');
  } else {
    // Both clocks unless --clock named one (then the window filters and shows that one).
    const shownClocks: ('received' | 'emitter')[] =
      typeof values.clock === 'string' ? [window.clock] : ['received', 'emitter'];
    const timeHeaders = shownClocks.flatMap((c) =>
      c === 'received' ? ['FIRST (LOG)', 'LAST (LOG)'] : ['FIRST (EMITTER)', 'LAST (EMITTER)'],
    );
    const rows = [
      [
        'SESSION',
        ...timeHeaders,
        'EMITTER',
        'PRINCIPAL',
        'RECORDS',
        'REQUESTS',
        'ERRORS',
        'TOOLS',
        'SERVER',
        'ENDED',
        'VERIFIED',
      ],
    ];
    for (const s of sessions) {
      rows.push([
        terminalSafe(s.session),
        ...shownClocks.flatMap((c) =>
          c === 'received'
            ? [s.firstReceived, s.lastReceived]
            : [terminalSafe(s.firstTime), terminalSafe(s.lastTime)],
        ),
        terminalSafe(s.emitters.join(',')),
        terminalSafe(s.principals.join(',') || '-'),
        String(s.records),
        String(s.requests),
        String(s.errors),
        terminalSafe(s.tools.join(',') || '-'),
        terminalSafe(s.servers.join(',') || '-'),
        terminalSafe(s.ended ?? 'open'),
        s.failed === 0 ? paint(io, 'green', 'yes') : paint(io, 'red', `FAILED ${s.failed}`),
      ]);
    }
    io.stdout.write(`${sessions.length} session(s), ${clockNote}\n`);
    if (sessions.length > 0) io.stdout.write(table(rows));
  }
  if (failed > 0) {
    io.stderr.write(`${failed} record(s) failed verification: the log's answer cannot be trusted\n`);
    return 1;
  }
  return 0;
}

function mark(io: Io, s: TranscriptSide): string {
  return s.failure === undefined ? paint(io, 'green', 'verified') : paint(io, 'red', `FAILED: ${s.failure}`);
}

function shown(v: unknown, max = 2000): string {
  const text = JSON.stringify(v) ?? 'undefined';
  return terminalSafe(text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text);
}

function sideLines(io: Io, label: string, s: TranscriptSide, part: 'params' | 'result'): string[] {
  const out = [
    `    ${label} entry ${s.index} by ${terminalSafe(s.emitter)}  received ${s.received}  time ${s.time}  ${mark(io, s)}`,
  ];
  if (label.trim() === 'request' && s.principal !== undefined)
    out.push(`      principal: ${shown(s.principal, 600)}`);
  const m = s.message as Record<string, unknown> | undefined;
  const body = m?.[part] ?? m?.['error'];
  if (body !== undefined) out.push(`      ${part in (m ?? {}) ? part : 'error'}: ${shown(body)}`);
  for (const n of s.notOpened) out.push(`      ${terminalSafe(n)}`);
  return out;
}

function formatItem(io: Io, item: TranscriptItem, changedTools: Set<string>): string[] {
  const what = [item.method, item.tool]
    .filter((x) => x !== undefined)
    .map(terminalSafe)
    .join(' ');
  if (item.type === 'call') {
    const head = `${item.request!.index}  ${item.direction === 'server_to_client' ? 'server->client' : 'client->server'} ${what}`;
    const lines = [head];
    lines.push(...sideLines(io, 'request ', item.request!, 'params'));
    if (item.response !== undefined) {
      lines.push(...sideLines(io, 'response', item.response, 'result'));
      if (item.latencyMs !== undefined) lines.push(`      latency ${item.latencyMs} ms (log clock)`);
    } else lines.push(paint(io, 'yellow', '    no response in the log'));
    if (item.error !== undefined) lines.push(paint(io, 'red', `    error: ${shown(item.error)}`));
    if (item.method === 'tools/call') {
      const d = item.definitions;
      lines.push(
        d === undefined
          ? '    tool definition in effect: none (no tools/list earlier in the session)'
          : d.sealed
            ? `    tool definition in effect: tools/list result at entry ${d.index} [sealed]`
            : `    tool definition in effect (tools/list result at entry ${d.index}${d.session !== undefined ? ` of ${terminalSafe(d.session)}` : ''}): ${d.definition === undefined ? 'NOT LISTED' : shown(d.definition, 600)}`,
      );
      if (d !== undefined && !d.verified)
        lines.push(paint(io, 'red', `    FAILED: the tools/list result at entry ${d.index} did not verify`));
      if (item.tool !== undefined && changedTools.has(item.tool))
        lines.push(
          paint(
            io,
            'red',
            `    WARNING: the definition of ${terminalSafe(item.tool)} changed during this session`,
          ),
        );
    }
    for (const c of item.toolChanges ?? [])
      lines.push(
        paint(
          io,
          'red',
          `    WARNING: tool ${terminalSafe(c.tool)} changed (${c.fields.join(', ')}) between entries ${c.fromIndex} and ${c.toIndex}`,
        ),
      );
    return lines;
  }
  const r = item.record!;
  const body =
    r.message !== undefined
      ? `  ${shown(r.message)}`
      : r.fields !== undefined && Object.keys(r.fields).length > 0
        ? `  ${shown(r.fields)}`
        : '';
  return [
    `${r.index}  ${item.type} ${terminalSafe(item.kind)} ${what}`.trimEnd(),
    `    entry ${r.index} by ${terminalSafe(r.emitter)}  received ${r.received}  time ${r.time}  ${mark(io, r)}${body}`,
    ...r.notOpened.map((n) => `      ${terminalSafe(n)}`),
  ];
}

/** `vigil transcript <session>`. */
export async function runTranscript(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, {
    log: { type: 'string' },
    policy: { type: 'string' },
    json: { type: 'boolean' },
    'reader-token': { type: 'string' },
    'no-open': { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError('transcript takes exactly one <session>');
  const session = positionals[0]!;
  const url = required(values, 'log', 'the log URL');
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file'));
  const token = readerToken(values, io);
  const client = new LogClient(url, token !== undefined ? { readerToken: token } : {});
  const open = token !== undefined && values['no-open'] !== true;
  const { records: count, transcript } = await fetchTranscript(client, policy, session, open);
  if (values.json === true) {
    for (const item of transcript.items) io.stdout.write(JSON.stringify({ session, ...item }) + '\n');
    io.stdout.write(
      JSON.stringify({
        session,
        summary: {
          items: transcript.items.length,
          failed: transcript.failed,
          toolChanges: transcript.toolChanges,
        },
      }) + '\n',
    );
  } else {
    io.stdout.write(`session ${terminalSafe(session)}: ${count} record(s), log order\n\n`);
    const changed = new Set(transcript.toolChanges.map((c) => c.tool));
    for (const item of transcript.items) io.stdout.write(formatItem(io, item, changed).join('\n') + '\n');
    if (transcript.toolChanges.length > 0) {
      io.stdout.write('\ntool definitions that changed during the session:\n');
      for (const c of transcript.toolChanges)
        io.stdout.write(
          `  ${terminalSafe(c.tool)}: ${c.fields.join(', ')}: entry ${c.fromIndex} -> entry ${c.toIndex}\n`,
        );
    }
  }
  if (count === 0) {
    io.stderr.write(`no records of session ${terminalSafe(session)}\n`);
    return 1;
  }
  if (transcript.failed > 0) {
    io.stderr.write(`${transcript.failed} record(s) FAILED verification or opening (shown above)\n`);
    return 1;
  }
  return 0;
}
