/**
 * `vigil reconcile`: compares two emitters' views of the same MCP sessions (DESIGN.md) and exits 1
 * when a request is missing on one side or differs.
 *
 *   vigil reconcile A.jsonl B.jsonl [--json]
 *   vigil reconcile --log URL --policy FILE --a EMITTER --b EMITTER [--since T] [--until T] [--json]
 *
 * Files hold JSON lines of records (or submissions/entries/search results carrying them); sealed
 * content is compared opened when the lines carry its S (a submission's `blobs`, a reader's
 * `sealed` map), else by the clear facts of each message. With
 * `--log`, the records come from the log's search, and each result's receipt is verified against the
 * policy first (as `vigil search` does): the search answer is the log's claim, so one result that
 * does not verify ends the run with status 1 before anything is compared.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LogClient } from '../client.js';
import { parsePolicy, type Policy } from '../policy/index.js';
import { verifyReceipt } from '../receipt/index.js';
import { formatEntry, type Entry } from '../record.js';
import {
  openerFromSealed,
  type ReconcileReport,
  reconcile,
  recordsFromJsonLines,
  sealedFromJsonLines,
} from '../mcp/reconcile.js';
import type { JsonObject } from '../mcp/types.js';
import { withOpenedValues } from './sealed-view.js';

const USAGE = `usage: vigil reconcile A.jsonl B.jsonl [--json]
       vigil reconcile --log URL --policy FILE --a EMITTER --b EMITTER [--since T] [--until T] [--json]
       vigil reconcile --log URL --policy FILE --session-a ID --session-b ID [--json]
                       [--reader-token T]   (search needs a reader token; or VIGIL_READER_TOKEN)

Compares two perspectives of the same MCP calls (a client's auditTransport and the wrapper or proxy
in front of the server): two emitters, two session ids (each side's own name for the session), or
two files of \`vigil search --json\` output. Lists requests present on one side only, or differing.
`;

/** A search result whose receipt did not verify: the log's answer cannot be trusted. */
class UnverifiedResultError extends Error {}

/** Runs `vigil reconcile`; 0 when both sides agree, 1 when they do not, 2 when it could not run. */
export async function runReconcileCommand(
  argv: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const args = argv[0] === 'reconcile' ? argv.slice(1) : argv;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: {
        log: { type: 'string' },
        policy: { type: 'string' },
        a: { type: 'string' },
        b: { type: 'string' },
        'session-a': { type: 'string' },
        'session-b': { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        json: { type: 'boolean' },
        'reader-token': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
    }));
  } catch (err) {
    process.stderr.write(`vigil reconcile: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values['help'] === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  let a: JsonObject[];
  let b: JsonObject[];
  const sealed = new Map<string, Uint8Array>();
  try {
    const logUrl =
      (values['log'] as string | undefined) ?? (positionals.length === 0 ? env['VIGIL_LOG_URL'] : undefined);
    if (logUrl !== undefined) {
      const bySession = typeof values['session-a'] === 'string' || typeof values['session-b'] === 'string';
      const sideA = bySession ? values['session-a'] : values['a'];
      const sideB = bySession ? values['session-b'] : values['b'];
      if (typeof sideA !== 'string' || typeof sideB !== 'string')
        throw new Error('--log needs --a EMITTER and --b EMITTER, or --session-a ID and --session-b ID');
      if (bySession && (values['a'] !== undefined || values['b'] !== undefined))
        throw new Error('give two emitters (--a, --b) or two sessions (--session-a, --session-b), not both');
      const policyFile = (values['policy'] as string | undefined) ?? env['VIGIL_POLICY_FILE'];
      if (policyFile === undefined)
        throw new Error(
          '--log needs --policy FILE (the tlog-policy that search results must verify against)',
        );
      const policy = parsePolicy(await readFile(policyFile, 'utf8'));
      const token = (values['reader-token'] as string | undefined) || env['VIGIL_READER_TOKEN'] || undefined;
      const client = new LogClient(logUrl, token !== undefined ? { readerToken: token } : {});
      const side = (name: string) => (bySession ? { session: name } : { emitter: name });
      a = await fromLog(client, policy, side(sideA), values);
      b = await fromLog(client, policy, side(sideB), values);
    } else {
      if (positionals.length !== 2) throw new Error('give two files (or --log URL --a EMITTER --b EMITTER)');
      const textA = await readFile(positionals[0] as string, 'utf8');
      const textB = await readFile(positionals[1] as string, 'utf8');
      a = recordsFromJsonLines(textA);
      b = recordsFromJsonLines(textB);
      for (const [hex, bytes] of [...sealedFromJsonLines(textA), ...sealedFromJsonLines(textB)])
        sealed.set(hex, bytes);
    }
  } catch (err) {
    process.stderr.write(`vigil reconcile: ${(err as Error).message}\n`);
    return err instanceof UnverifiedResultError ? 1 : 2;
  }
  const report = reconcile(a, b, sealed.size > 0 ? { open: openerFromSealed(sealed) } : {});
  process.stdout.write(
    values['json'] === true ? JSON.stringify(report, null, 2) + '\n' : formatReport(report),
  );
  return report.findings.length === 0 ? 0 : 1;
}

/**
 * Every record of one side (an emitter, or a session) from the log's search, each result's receipt
 * verified against `policy` for the entry bytes rebuilt here (and for the index the result claims).
 * In log order.
 */
async function fromLog(
  client: LogClient,
  policy: Policy,
  side: { emitter: string } | { session: string },
  values: Record<string, string | boolean | undefined>,
): Promise<JsonObject[]> {
  const found: { index: bigint; record: JsonObject }[] = [];
  const emitter = 'emitter' in side ? side.emitter : undefined;
  const label =
    emitter !== undefined ? `emitter ${emitter}` : `session ${(side as { session: string }).session}`;
  let after: string | undefined;
  for (;;) {
    const query: Parameters<typeof client.search>[0] = { ...side, limit: 1000 };
    if (typeof values['since'] === 'string') query.since = values['since'];
    if (typeof values['until'] === 'string') query.until = values['until'];
    if (after !== undefined) query.after = after;
    // Each side seals with its own salts: the values are compared, opened (and checked against
    // their commitments), never the commitments.
    const page = await client.search(query, { open: client.hasReaderToken });
    const answer = { sealed: page.sealed ?? new Map(), erased: page.erased ?? new Map() };
    for (const r of page.results) {
      try {
        if (emitter !== undefined && r.entry['emitter'] !== emitter)
          throw new Error(`the entry names emitter ${String(r.entry['emitter'])}`);
        if ('session' in side && (r.entry['record'] as JsonObject | undefined)?.['session'] !== side.session)
          throw new Error(`the record is not of session ${side.session}`);
        const v = verifyReceipt(r.receipt, formatEntry(r.entry as unknown as Entry), policy);
        if (v.index !== r.index) throw new Error(`the receipt is for index ${v.index}`);
      } catch (err) {
        throw new UnverifiedResultError(
          `search result ${r.index} for ${label} failed verification: ${(err as Error).message}; ` +
            "the log's search answer cannot be trusted",
        );
      }
      // Only the JSON-RPC message is compared, so only its sealed parts are opened (`wire` stays the
      // commitment reconcile already reads it as).
      const record = r.entry['record'] as JsonObject;
      const opened = withOpenedValues(record['message'], answer);
      if (opened.failed.length > 0)
        throw new UnverifiedResultError(
          `search result ${r.index}: the sealed value at ${opened.failed.map((f) => (f === '.' ? 'message' : `message.${f}`)).join(', ')} does not match its commitment; ` +
            "the log's search answer cannot be trusted",
        );
      found.push({
        index: r.index,
        record:
          record['message'] === undefined ? record : { ...record, message: opened.record as JsonObject },
      });
    }
    if (page.next === undefined || page.results.length === 0) break;
    after = page.next;
  }
  // Search answers newest first; the perspectives are built in log order (emission order per stream).
  return found.sort((x, y) => (x.index < y.index ? -1 : x.index > y.index ? 1 : 0)).map((x) => x.record);
}

function formatReport(report: ReconcileReport): string {
  const lines = [`compared ${report.requestsCompared} requests in ${report.sessions.length} paired sessions`];
  if (report.findings.length === 0) return lines.concat('both sides agree', '').join('\n');
  const rows = report.findings.map((f) => [
    f.problem,
    `${f.requester}:${JSON.stringify(f.id)}`,
    f.method + (f.tool !== undefined ? ` ${f.tool}` : ''),
    f.sessionA ?? '-',
    f.sessionB ?? '-',
  ]);
  const header = ['problem', 'request', 'method', 'session A', 'session B'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  lines.push(fmt(header), ...rows.map(fmt), `${report.findings.length} differences`, '');
  return lines.join('\n');
}
