/**
 * `vigil export` and `vigil bundle verify` (DESIGN.md "Forensic review", "Evidence bundles"): write one
 * evidence bundle from a live log, and check one offline. The bundle logic is in ../review/bundle.ts;
 * `vigil export --follow` (streams out) lives in ./follow.js and is only handed the arguments here.
 */
import * as fs from 'node:fs/promises';
import { LogClient } from '../client.js';
import { isTlogError } from '../errors.js';
import { parsePolicy, type Policy } from '../policy/index.js';
import {
  buildBundle,
  formatBundle,
  parseBundle,
  parseTimeBound,
  str,
  summarizeSessions,
  verifyBundle,
  type BundleProblem,
  type BundleReport,
  type ReviewClock,
} from '../review/index.js';
import { args, paint, readerToken, required, table, UsageError, WINDOW_OPTIONS, type Io } from './io.js';
import { terminalSafe } from './sealed-view.js';

export const EXPORT_USAGE = `usage: vigil export (--session ID | --since 10m|7d|<RFC3339> [--until ...] [--clock received|emitter])
                    [--emitter E] --log URL --policy FILE [--reader-token T] [--no-open] --out FILE
       vigil export --follow --jsonl ...       (streams out: see vigil export --follow --help)

Writes an evidence bundle (format vigil-evidence@1): the policy, the newest checkpoint of the log
that satisfies it, the exact bytes of every selected entry with an inclusion proof to that checkpoint
(computed from the log's tiles and checked before it is written), and the operator's registry records
that give every emitter's key, so that anyone can check it offline with vigil bundle verify. Needs a
reader token (--reader-token or VIGIL_READER_TOKEN: records are selected with the search API). The
sealed values are included, each checked against its commitment, and erased ones are listed (the log
records these reads as access.read records); with --no-open values stay sealed (commitments only). --clock chooses the clock the window filters on (default received: the log's).
--out is never overwritten. Exit 1 when the bundle written does not verify.
`;

export const BUNDLE_USAGE = `usage: vigil bundle verify FILE [--policy FILE] [--json]

Checks an evidence bundle offline: the checkpoint's log signature and witness quorum, the inclusion
of every entry, every emitter signature (keys from the bundle's registry records), stream chains,
and sealed values against their commitments; erased values are listed. Prints the records, sessions,
emitters and cosigners, and every problem with the entry to blame. Exit 0 only when all hold.
--policy: your own copy of the log's policy; a bundle exported under another policy is refused
(POLICY_MISMATCH). Without it the bundle is checked against the policy it carries, which only shows
that it is consistent with itself.
`;

/** Reads a file as text, naming it in the error. */
async function readText(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** `vigil export ...`: a bundle, or with --follow the streams-out loop of ./follow.js. */
export async function runExport(argv: string[], io: Io): Promise<number> {
  if (argv.includes('--follow')) {
    // A non-literal specifier: the streams-out module is built separately and may be absent.
    const specifier = './follow.js';
    let follow: { runFollow(argv: string[], io: Io): Promise<number> };
    try {
      follow = (await import(specifier)) as typeof follow;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
      io.stderr.write('vigil: export --follow is not available in this build (no streams-out module)\n');
      return 2;
    }
    return follow.runFollow(argv, io);
  }
  const { values } = args(
    argv,
    {
      ...WINDOW_OPTIONS,
      session: { type: 'string' },
      'no-open': { type: 'boolean' },
      out: { type: 'string' },
    },
    false,
  );
  const url = required(values, 'log', 'the log URL');
  const policyFile = required(values, 'policy', 'the tlog-policy file');
  const out = required(values, 'out', 'the bundle file to write');
  const clock = values.clock ?? 'received';
  if (clock !== 'received' && clock !== 'emitter')
    throw new UsageError('--clock must be received (the log) or emitter');
  const now = new Date();
  const bound = (name: 'since' | 'until'): Date | undefined => {
    const v = values[name];
    if (typeof v !== 'string') return undefined;
    try {
      return parseTimeBound(v, now, `--${name}`);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  const since = bound('since');
  const until = bound('until');
  const session = typeof values.session === 'string' ? values.session : undefined;
  if (session === undefined && since === undefined)
    throw new UsageError('export needs --session ID or --since (a time window)');
  const policyText = await readText(policyFile, 'policy');
  const policy = parsePolicy(policyText);
  const token = readerToken(values, io);
  const client = new LogClient(url, token !== undefined ? { readerToken: token } : {});
  if (token === undefined)
    throw new UsageError(
      'export needs a reader token (--reader-token or VIGIL_READER_TOKEN) to select records',
    );
  const open = values['no-open'] !== true;
  const bundle = await buildBundle(
    client,
    policy,
    policyText,
    {
      ...(session !== undefined ? { session } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(typeof values.emitter === 'string' ? { emitter: values.emitter } : {}),
      clock: clock as ReviewClock,
    },
    { open },
  );
  await fs.writeFile(out, formatBundle(bundle), { flag: 'wx' });
  // The same check the receiver runs, so an exporter learns at once what the bundle shows.
  const report = verifyBundle(bundle, policy);
  const selected = report.records.filter((r) => !isOperatorRecord(report, r.emitter)).length;
  io.stderr.write(
    `wrote ${out}: ${bundle.entries.length} entries (${selected} selected, ${bundle.entries.length - selected} of the operator), ` +
      `checkpoint of ${terminalSafe(report.origin)} at size ${report.size}` +
      `${report.cosigners.length > 0 ? `, cosigned by ${report.cosigners.map(terminalSafe).join(', ')}` : ''}\n`,
  );
  if (!open) io.stderr.write('--no-open: the sealed values stay sealed in the bundle (commitments only)\n');
  else
    io.stderr.write(
      `${Object.keys(bundle.sealed).length} sealed value(s) included, ${Object.keys(bundle.erased).length} erased\n`,
    );
  if (selected === 0) io.stderr.write('warning: no record matched the selection\n');
  if (!report.ok) {
    for (const p of report.problems) io.stderr.write(paint(io, 'red', problemLine(p)) + '\n');
    io.stderr.write(`the bundle does not verify: ${report.problems.length} problem(s)\n`);
    return 1;
  }
  return 0;
}

function isOperatorRecord(report: BundleReport, emitter: string): boolean {
  return emitter === `${report.origin}/operator`;
}

function problemLine(p: BundleProblem): string {
  return `${p.code}${p.index !== undefined ? ` entry ${p.index}` : ''}: ${terminalSafe(p.message)}`;
}

/** The report as JSON (indices as decimal strings); opened values are left out, states kept. */
function reportJson(file: string, report: BundleReport, policyGiven: boolean): string {
  const problem = (p: BundleProblem) => ({
    ...(p.index !== undefined ? { index: p.index.toString() } : {}),
    code: p.code,
    message: p.message,
  });
  return (
    JSON.stringify({
      file,
      ok: report.ok,
      policy: policyGiven ? 'given' : 'bundle',
      origin: report.origin,
      size: report.size.toString(),
      cosigners: report.cosigners,
      records: report.records.map((r) => ({
        index: r.index.toString(),
        emitter: r.emitter,
        received: r.received,
        record: r.record,
        sealed: r.sealed.map(({ value: _, ...v }) => v),
        ...(r.failure !== undefined ? { failure: r.failure } : {}),
      })),
      problems: report.problems.map(problem),
      notes: report.notes.map(problem),
    }) + '\n'
  );
}

/** `vigil bundle verify FILE [--policy FILE] [--json]`. */
export async function runBundleCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify') throw new UsageError('usage: vigil bundle verify FILE [--policy FILE] [--json]');
  const { values, positionals } = args(rest, { policy: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('bundle verify takes exactly one FILE');
  const file = positionals[0]!;
  const json = values.json === true;
  const fail = (code: string, message: string): number => {
    if (json) io.stdout.write(JSON.stringify({ file, ok: false, problems: [{ code, message }] }) + '\n');
    else io.stdout.write(paint(io, 'red', `FAIL ${code}: ${terminalSafe(message)}`) + '\n');
    return 1;
  };
  const text = await readText(file, 'bundle');
  let bundle;
  try {
    bundle = parseBundle(text);
  } catch (err) {
    if (isTlogError(err)) return fail(err.code, err.message);
    throw err;
  }
  let policy: Policy;
  let policyText: string | undefined;
  if (typeof values.policy === 'string') {
    policyText = await readText(values.policy, 'policy');
    policy = parsePolicy(policyText);
  } else {
    try {
      policy = parsePolicy(bundle.policy);
    } catch (err) {
      if (isTlogError(err)) return fail(err.code, `the bundle's own policy: ${err.message}`);
      throw err;
    }
    io.stderr.write(
      "vigil: warning: no --policy: checked against the policy the bundle carries, which shows only that it is consistent with itself. Pass your own copy of the log's policy to check it against keys you trust.\n",
    );
  }
  let report: BundleReport;
  try {
    report = verifyBundle(bundle, policy, policyText !== undefined ? { policyText } : {});
  } catch (err) {
    if (isTlogError(err, 'POLICY_MISMATCH')) return fail(err.code, err.message);
    throw err;
  }
  if (json) io.stdout.write(reportJson(file, report, policyText !== undefined));
  else io.stdout.write(humanReport(io, file, report));
  return report.ok ? 0 : 1;
}

/** The human report: checkpoint, cosigners, sessions, emitters, records, notes, problems in red. */
function humanReport(io: Io, file: string, report: BundleReport): string {
  const out: string[] = [];
  out.push(
    `bundle ${terminalSafe(file)}: checkpoint of ${terminalSafe(report.origin)} at size ${report.size}`,
    `cosigners: ${report.cosigners.length > 0 ? report.cosigners.map(terminalSafe).join(', ') : 'none'}`,
  );
  const emitters = new Map<string, number>();
  for (const r of report.records) emitters.set(r.emitter, (emitters.get(r.emitter) ?? 0) + 1);
  out.push(
    `emitters: ${[...emitters].map(([e, n]) => `${terminalSafe(e)} (${n} record${n === 1 ? '' : 's'})`).join(', ')}`,
  );
  const sessions = summarizeSessions(report.records, { clock: 'received' });
  out.push(`sessions: ${sessions.length}`);
  if (sessions.length > 0) {
    const rows = [
      ['SESSION', 'FIRST (LOG)', 'LAST (LOG)', 'EMITTER', 'RECORDS', 'REQUESTS', 'ERRORS', 'TOOLS'],
    ];
    for (const s of sessions)
      rows.push([
        terminalSafe(s.session),
        s.firstReceived,
        s.lastReceived,
        terminalSafe(s.emitters.join(',')),
        String(s.records),
        String(s.requests),
        String(s.errors),
        terminalSafe(s.tools.join(',') || '-'),
      ]);
    out.push(table(rows).trimEnd());
  }
  out.push(`records: ${report.records.length}`);
  const rows = [['INDEX', 'EMITTER', 'KIND', 'WHAT', 'RECEIVED', 'SEALED', 'VERIFIED']];
  for (const r of report.records) {
    const what = [
      str(r.record, 'messageType'),
      str(r.record, 'mcp.method.name'),
      str(r.record, 'gen_ai.tool.name'),
      str(r.record, 'name'),
    ]
      .filter((x) => x !== undefined)
      .join(' ');
    const states = new Map<string, number>();
    for (const v of r.sealed) states.set(v.state, (states.get(v.state) ?? 0) + 1);
    rows.push([
      r.index.toString(),
      terminalSafe(r.emitter),
      terminalSafe(str(r.record, 'kind') ?? '-'),
      terminalSafe(what || '-'),
      r.received,
      [...states].map(([s, n]) => `${n} ${s}`).join(',') || '-',
      r.failure === undefined ? paint(io, 'green', 'yes') : paint(io, 'red', 'FAILED'),
    ]);
  }
  out.push(table(rows).trimEnd());
  const erased = report.records.flatMap((r) =>
    r.sealed.filter((v) => v.state === 'erased').map((v) => ({ r, v })),
  );
  if (erased.length > 0) {
    out.push('erased values:');
    for (const { r, v } of erased)
      out.push(`  entry ${r.index} ${terminalSafe(v.path)}: erased by entry ${v.erasure ?? '?'}`);
  }
  if (report.notes.length > 0) {
    out.push('notes (what the bundle does not show):');
    for (const n of report.notes) out.push(paint(io, 'yellow', `  ${problemLine(n)}`));
  }
  if (report.problems.length > 0) {
    out.push(`problems: ${report.problems.length}`);
    for (const p of report.problems) out.push(paint(io, 'red', `  ${problemLine(p)}`));
    out.push(paint(io, 'red', 'FAILED: the bundle does not prove these records'));
  } else out.push(paint(io, 'green', 'OK: every check held'));
  return out.join('\n') + '\n';
}
