/** `vigil keygen`, `submit`, `verify`, `search`, `evidence verify`. */
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogClient } from '../client.js';
import { createEmitter } from '../emitter/emitter.js';
import { base64Decode, bytesEqual } from '../encoding.js';
import { TlogError } from '../errors.js';
import { verifyConsistency } from '../merkle/index.js';
import { generateKey, openNote, parseCheckpoint, parseVerifierKey } from '../note/index.js';
import { parsePolicy, type Policy } from '../policy/index.js';
import { verifyReceipt } from '../receipt/index.js';
import { formatEntry, parseEntry, type Entry } from '../record.js';
import { replaceSealed } from '../sealed.js';
import {
  args,
  paint,
  readAll,
  readerToken,
  required,
  table,
  UsageError,
  WINDOW_OPTIONS,
  type Io,
} from './io.js';
import { isInWindow, timeOn } from '../review/time.js';
import { isSealedRef } from '../sealed.js';
import { fetchEntryAndReceipt, windowOf } from './review.js';
import { formatSealedView, terminalSafe, viewSealedValues, type SealedView } from './sealed-view.js';

async function readText(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads and parses a tlog-policy file. */
export async function loadPolicy(file: string): Promise<Policy> {
  return parsePolicy(await readText(file, 'policy'));
}

/** `vigil keygen <name> [--out FILE]`: writes the signer key 0600 (never overwrites), prints the vkey. */
export async function runKeygen(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, { out: { type: 'string' } });
  const name = positionals[0];
  if (name === undefined || positionals.length !== 1) throw new UsageError('keygen takes exactly one <name>');
  const { signerKey, verifierKey } = generateKey(name);
  const out = typeof values.out === 'string' ? values.out : `./${name.replaceAll('/', '_')}.key`;
  let h;
  try {
    h = await fs.open(out, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`${out} exists; refusing to overwrite a key (choose another --out)`);
    }
    throw err;
  }
  try {
    await h.writeFile(signerKey + '\n');
    await h.sync();
  } finally {
    await h.close();
  }
  io.stdout.write(verifierKey + '\n');
  io.stderr.write(
    `wrote signer key to ${out} (mode 0600); register it on the log with:\n  vigil-server emitter add ${name} ${verifierKey}\n`,
  );
  return 0;
}

/** `vigil submit --log URL --key FILE [--policy FILE] [--spool DIR] [FILE]`. */
export async function runSubmit(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, {
    log: { type: 'string' },
    key: { type: 'string' },
    policy: { type: 'string' },
    spool: { type: 'string' },
  });
  const logUrl = required(values, 'log', 'the log URL');
  const key = (await readText(required(values, 'key', 'the signer key file'), 'key')).trim();
  const policy = typeof values.policy === 'string' ? await loadPolicy(values.policy) : undefined;
  const input =
    positionals[0] !== undefined ? await readText(positionals[0], 'records') : await readAll(io.stdin);
  const records: Record<string, unknown>[] = [];
  input.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new UsageError(`line ${i + 1} is not JSON`);
    }
    if (
      typeof v !== 'object' ||
      v === null ||
      Array.isArray(v) ||
      typeof (v as { kind?: unknown }).kind !== 'string'
    ) {
      throw new UsageError(`line ${i + 1} must be a JSON object with a string "kind"`);
    }
    records.push(v as Record<string, unknown>);
  });
  const spoolDir =
    typeof values.spool === 'string'
      ? values.spool
      : await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-submit-'));
  const emitter = await createEmitter({
    logUrl,
    key,
    spoolDir,
    ...(policy !== undefined ? { policy } : {}),
    program: 'vigil submit',
    onWarning: (w) => io.stderr.write(`vigil: warning: ${w.message}\n`),
  });
  emitter.on('receipt', (r) => {
    io.stdout.write(
      JSON.stringify({ stream: r.stream, seq: r.seq, index: r.index.toString(), receipt: r.receipt }) + '\n',
    );
  });
  for (const r of records) await emitter.emit(r as { kind: string });
  try {
    await emitter.close({ timeoutMs: 60_000 });
  } catch (err) {
    io.stderr.write(`vigil: ${(err as Error).message}\n`);
    return emitter.alarm !== undefined ? 1 : 2;
  }
  if (values.spool === undefined) await fs.rm(spoolDir, { recursive: true, force: true });
  io.stderr.write(`submitted ${records.length} record(s) in stream ${emitter.stream}\n`);
  return 0;
}

/** Prints sealed values (path: value or state), indented; returns how many failed or are missing. */
function printSealedViews(io: Io, views: SealedView[], indent: string): number {
  let bad = 0;
  for (const v of views) {
    const line = formatSealedView(v);
    const broken = v.state === 'failed' || v.state === 'missing';
    if (broken) bad++;
    io.stdout.write(`${indent}${broken ? paint(io, 'red', line) : line}\n`);
  }
  return bad;
}

/**
 * `vigil verify <receipt> --entry FILE --policy FILE [--log URL --reader-token T]`. With a reader
 * token, the entry's sealed values are fetched (`GET /v1/entries/<index>?open=1`), opened against the
 * commitments in the verified entry file and shown; one that does not match makes the exit status 1.
 */
export async function runVerify(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = args(argv, {
    entry: { type: 'string' },
    policy: { type: 'string' },
    log: { type: 'string' },
    index: { type: 'string' },
    'reader-token': { type: 'string' },
  });
  const token = readerToken(values, io);
  if (token !== undefined && typeof values.log !== 'string')
    throw new UsageError('--log URL is required to open sealed values with a reader token');
  let receipt: string;
  let entry: Uint8Array;
  if (typeof values.index === 'string') {
    // The entry's exact bytes and its receipt, both from the log: checked below like files would be.
    if (positionals.length !== 0 || values.entry !== undefined)
      throw new UsageError('verify --index N takes no <receipt> file and no --entry');
    ({ receipt, entry } = await fetchEntryAndReceipt(required(values, 'log', 'the log URL'), values.index));
  } else {
    if (positionals.length !== 1)
      throw new UsageError('verify takes exactly one <receipt> file (or --log URL --index N)');
    receipt = await readText(positionals[0]!, 'receipt');
    entry = new Uint8Array(
      await fs.readFile(required(values, 'entry', 'the entry bytes the receipt is for')),
    );
  }
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file'));
  try {
    const v = verifyReceipt(receipt, entry, policy);
    io.stdout.write(
      `${paint(io, 'green', 'OK')} entry ${v.index} is in ${v.checkpoint.origin} at size ${v.checkpoint.size}` +
        (v.cosigners.length > 0 ? `, cosigned by ${v.cosigners.join(', ')}` : '') +
        '\n',
    );
    const record = parseEntry(entry).record;
    if (token === undefined) {
      const views = viewSealedValues(record, undefined);
      if (views.length > 0) {
        io.stdout.write(`${views.length} sealed value(s), not opened (no reader token):\n`);
        printSealedViews(io, views, '  ');
      }
      return 0;
    }
    const client = new LogClient(values.log as string, { readerToken: token });
    const opened = await client.entry(v.index, { open: true });
    const views = viewSealedValues(record, {
      sealed: opened.sealed ?? new Map(),
      erased: opened.erased ?? new Map(),
    });
    io.stdout.write(`${views.length} sealed value(s):\n`);
    const bad = printSealedViews(io, views, '  ');
    if (bad > 0) {
      io.stdout.write(`${paint(io, 'red', 'FAIL')} ${bad} sealed value(s) do not match their commitment\n`);
      return 1;
    }
    return 0;
  } catch (err) {
    if (err instanceof TlogError) {
      io.stdout.write(`${paint(io, 'red', 'FAIL')} ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** Record fields shown in their own columns (or not at all) rather than in a record's summary. */
const SUMMARY_SKIP = new Set([
  'v',
  'stream',
  'seq',
  'prev',
  'time',
  'kind',
  'session',
  'transport',
  'direction',
]);

/** Most characters of a value summary in the search table. */
const SUMMARY_CHARS = 60;

/** A value for one table cell: JSON, terminal-safe, cut to `max` characters. */
function cell(v: unknown, max = SUMMARY_CHARS): string {
  const text = typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
  return terminalSafe(text.length > max ? `${text.slice(0, max - 3)}...` : text);
}

/** `[sealed]` for a value that is still a commitment (not opened, erased, failed), else the value. */
function summaryOf(v: unknown): string {
  if (isSealedRef(v)) return '[sealed]';
  const text = JSON.stringify(v) ?? 'undefined';
  if (typeof v === 'object' && v !== null && sealedRefsIn(v)) return `${cell(text)} [partly sealed]`;
  return cell(text);
}

function sealedRefsIn(v: unknown): boolean {
  if (isSealedRef(v)) return true;
  if (typeof v !== 'object' || v === null) return false;
  return Object.values(v).some(sealedRefsIn);
}

/**
 * The readable columns of one search result (DESIGN.md "Forensic review"): direction, method, the tool
 * (or prompt, or resource) it names, the JSON-RPC id, and a short summary of its arguments, result or
 * error as opened (`[sealed]` when not). Other records show their kind and their own fields.
 */
function searchColumns(opened: Record<string, unknown>): string[] {
  const str = (k: string) => (typeof opened[k] === 'string' ? (opened[k] as string) : undefined);
  const direction =
    str('direction') === 'client_to_server'
      ? 'client->server'
      : str('direction') === 'server_to_client'
        ? 'server->client'
        : '-';
  const kind = str('kind') ?? '';
  const name = str('gen_ai.tool.name') ?? str('gen_ai.prompt.name') ?? str('mcp.resource.uri');
  const m = opened['message'];
  const message =
    typeof m === 'object' && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : undefined;
  const id = message?.['id'] ?? opened['jsonrpc.request.id'];
  const method = kind === 'mcp.message' ? (str('mcp.method.name') ?? '') : `(${kind})`;
  let summary: string;
  if (kind !== 'mcp.message') {
    const fields = Object.fromEntries(Object.entries(opened).filter(([k]) => !SUMMARY_SKIP.has(k)));
    summary = Object.keys(fields).length === 0 ? '-' : summaryOf(fields);
  } else if (message === undefined) {
    summary =
      opened['raw'] !== undefined || opened['rawBase64'] !== undefined
        ? 'raw: ' + summaryOf(opened['raw'] ?? opened['rawBase64'])
        : '-';
  } else if ('error' in message) summary = `error: ${summaryOf(message['error'])}`;
  else if ('result' in message) summary = `result: ${summaryOf(message['result'])}`;
  else if ('params' in message) {
    const p = message['params'];
    // tools/call and prompts/get name the tool in their own column: show the arguments.
    const args =
      typeof p === 'object' && p !== null && !isSealedRef(p) && 'arguments' in p
        ? (p as Record<string, unknown>)['arguments']
        : p;
    summary = `args: ${summaryOf(args)}`;
  } else summary = '-';
  return [
    direction,
    terminalSafe(method === '' ? '-' : method),
    name === undefined ? '-' : cell(name, 40),
    id === undefined || id === null ? '-' : cell(id, 20),
    summary,
  ];
}

/** `vigil search`: every result's receipt is verified before it is printed. */
export async function runSearch(argv: string[], io: Io): Promise<number> {
  const { values } = args(
    argv,
    {
      ...WINDOW_OPTIONS,
      stream: { type: 'string' },
      session: { type: 'string' },
      method: { type: 'string' },
      tool: { type: 'string' },
      limit: { type: 'string' },
      after: { type: 'string' },
      json: { type: 'boolean' },
      open: { type: 'boolean' },
      'no-open': { type: 'boolean' },
    },
    false,
  );
  const token = readerToken(values, io);
  if (values.open === true && token === undefined)
    throw new UsageError('--open needs a reader token (--reader-token or VIGIL_READER_TOKEN)');
  const open = token !== undefined && values['no-open'] !== true;
  const window = windowOf(values, new Date());
  const client = new LogClient(required(values, 'log', 'the log URL'), {
    ...(token !== undefined ? { readerToken: token } : {}),
  });
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file'));
  const query: Record<string, string | number> = {};
  for (const k of ['emitter', 'stream', 'session', 'method', 'tool', 'after']) {
    if (typeof values[k] === 'string') query[k] = values[k];
  }
  // The log filters on its own clock; on the emitter's, pages are read and filtered here.
  if (window.clock === 'received') {
    if (window.since !== undefined) query.since = window.since.toISOString();
    if (window.until !== undefined) query.until = window.until.toISOString();
  }
  let limit: number | undefined;
  if (typeof values.limit === 'string') {
    if (!/^[1-9][0-9]*$/.test(values.limit)) throw new UsageError('--limit must be a positive integer');
    limit = Number(values.limit);
    query.limit = limit;
  }
  let { results, next, sealed, erased } = await client.search(query, { open });
  if (window.clock === 'emitter' && (window.since !== undefined || window.until !== undefined)) {
    const want = limit ?? 100;
    const inWindow = (r: (typeof results)[number]) =>
      isInWindow(
        timeOn(
          'emitter',
          r.entry['received'],
          (r.entry['record'] as Record<string, unknown> | undefined)?.['time'],
        ),
        window.since,
        window.until,
      );
    const kept = results.filter(inWindow);
    sealed = new Map(sealed ?? []);
    erased = new Map(erased ?? []);
    while (kept.length < want && next !== undefined && results.length > 0) {
      const page = await client.search({ ...query, after: next }, { open });
      for (const [k, v] of page.sealed ?? []) sealed.set(k, v);
      for (const [k, v] of page.erased ?? []) erased.set(k, v);
      kept.push(...page.results.filter(inWindow));
      results = page.results;
      next = page.next;
    }
    results = kept.slice(0, want);
    if (kept.length > want) next = results.at(-1)!.index.toString();
  }
  const opened = open ? { sealed: sealed ?? new Map(), erased: erased ?? new Map() } : undefined;
  const details: string[] = [];
  let failed = 0;
  let sealedFailed = 0;
  const rows: string[][] = [
    [
      'INDEX',
      'RECEIVED (LOG)',
      'TIME (EMITTER)',
      'EMITTER',
      'DIRECTION',
      'METHOD',
      'TOOL',
      'ID',
      'ARGS/RESULT',
      'VERIFIED',
    ],
  ];
  const json: unknown[] = [];
  for (const r of results) {
    let ok = true;
    let why = '';
    try {
      const entryBytes = formatEntry(r.entry as unknown as Entry);
      const v = verifyReceipt(r.receipt, entryBytes, policy);
      if (v.index !== r.index)
        throw new TlogError('INDEX_OUT_OF_RANGE', `receipt is for index ${v.index}, result says ${r.index}`);
    } catch (err) {
      ok = false;
      why = (err as Error).message;
      failed++;
    }
    const rec = (r.entry.record ?? {}) as Record<string, unknown>;
    // Values are opened against the record's own commitments: a record that failed verification
    // still shows whether the log's S matches what that (unverified) record claims.
    const views = viewSealedValues(rec, opened);
    const bad = views.filter((v) => v.state === 'failed' || v.state === 'missing').length;
    sealedFailed += bad;
    if (views.length > 0) {
      details.push(
        `entry ${r.index}:`,
        ...views.map((v) => {
          const line = `  ${formatSealedView(v)}`;
          return v.state === 'failed' || v.state === 'missing' ? paint(io, 'red', line) : line;
        }),
      );
    }
    const openedRecord =
      opened !== undefined && views.some((v) => v.state === 'opened')
        ? (replaceSealed(rec, (ref) => {
            const view = views.find((v) => v.sha256 === ref.$sealed.sha256 && v.state === 'opened');
            return view === undefined ? undefined : { value: view.value };
          }) as Record<string, unknown>)
        : undefined;
    rows.push([
      r.index.toString(),
      cell(r.entry.received, 40),
      cell(rec.time ?? '-', 40),
      cell(r.entry.emitter, 40),
      ...searchColumns(openedRecord ?? rec),
      !ok
        ? paint(io, 'red', `NO: ${why}`)
        : bad > 0
          ? paint(io, 'red', `FAILED ${bad} of ${views.length} sealed`)
          : paint(io, 'green', 'yes'),
    ]);
    json.push({
      index: r.index.toString(),
      verified: ok,
      ...(ok ? {} : { error: why }),
      entry: r.entry,
      receipt: r.receipt,
      ...(views.length > 0 ? { sealed: views } : {}),
      // The record with every value that opened and matched in place of its commitment.
      ...(openedRecord !== undefined ? { opened: openedRecord } : {}),
    });
  }
  if (values.json === true)
    io.stdout.write(
      JSON.stringify({ results: json, ...(next !== undefined ? { next } : {}) }, null, 2) + '\n',
    );
  else {
    if (window.since !== undefined || window.until !== undefined)
      io.stdout.write(
        `${results.length} result(s), window on the ${window.clock === 'received' ? "log's clock (received)" : "emitter's clock (time)"}\n`,
      );
    io.stdout.write(table(rows));
    if (details.length > 0) io.stdout.write('\n' + details.join('\n') + '\n');
    const more =
      next ??
      (limit !== undefined && results.length === limit ? results.at(-1)?.index.toString() : undefined);
    if (more !== undefined) io.stderr.write(`more results may follow: add --after ${more}\n`);
  }
  if (failed > 0) {
    io.stderr.write(`${failed} result(s) failed verification: the log's search answer cannot be trusted\n`);
    return 1;
  }
  if (sealedFailed > 0) {
    io.stderr.write(
      `${sealedFailed} sealed value(s) do not match their commitment (FAILED / MISSING above)\n`,
    );
    return 1;
  }
  return 0;
}

/**
 * `vigil evidence verify <file> (--policy FILE | --log-key VKEY)`: checks witness evidence offline, in
 * the JSON shape of witness/README.md ("Evidence"): one item, a list, or `{"evidence":[...]}`. Both
 * notes must carry a valid signature by the log key given here (the item's `logVkey` is not a trust
 * anchor). Then by kind: `fork` needs one size and two roots; `inconsistent` needs
 * verifyConsistency(oldSize, newSize, prefixRoot, newRoot, proof) to pass with prefixRoot != oldRoot;
 * `rollback` needs newSize < oldSize (shown, but not conclusive on its own). Exit 0 when every item
 * is confirmed, 1 otherwise.
 */
export async function runEvidenceCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify')
    throw new UsageError('usage: vigil evidence verify <file> (--policy FILE | --log-key VKEY)');
  const { values, positionals } = args(rest, { policy: { type: 'string' }, 'log-key': { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('evidence verify takes exactly one <file>');
  const keys: string[] = [];
  if (typeof values.policy === 'string')
    keys.push(...(await loadPolicy(values.policy)).logs.map((l) => l.vkey));
  if (typeof values['log-key'] === 'string') {
    parseVerifierKey(values['log-key']);
    keys.push(values['log-key']);
  }
  if (keys.length === 0) {
    throw new UsageError(
      "give the log key with --policy FILE or --log-key VKEY (the evidence's logVkey is not a trust anchor)",
    );
  }
  const parsed = JSON.parse(await readText(positionals[0]!, 'evidence')) as unknown;
  const wrapped = (parsed as { evidence?: unknown }).evidence;
  const items = (Array.isArray(parsed) ? parsed : Array.isArray(wrapped) ? wrapped : [parsed]) as Record<
    string,
    unknown
  >[];
  if (items.length === 0) {
    io.stdout.write('no evidence in the file\n');
    return 1;
  }
  let bad = 0;
  items.forEach((item, i) => {
    const label = items.length > 1 ? `evidence ${typeof item.id === 'string' ? item.id : i}: ` : '';
    try {
      const { verdict, conclusive } = checkEvidence(item, keys);
      io.stdout.write(
        `${paint(io, 'green', conclusive ? 'CONFIRMED' : 'CONFIRMED (not conclusive)')} ${label}${verdict}\n`,
      );
    } catch (err) {
      bad++;
      io.stdout.write(`${paint(io, 'red', 'NOT CONFIRMED')} ${label}${(err as Error).message}\n`);
    }
  });
  return bad === 0 ? 0 : 1;
}

function noteField(item: Record<string, unknown>, names: string[]): string {
  for (const n of names) if (typeof item[n] === 'string') return item[n];
  throw new TlogError('NOTE_MALFORMED', `evidence lacks ${names.join(' / ')}`);
}

function checkpointOf(note: string, keys: string[]): ReturnType<typeof parseCheckpoint> {
  const opened = openNote(note, keys);
  if (!opened.signatures.some((s) => s.verified))
    throw new TlogError('NO_KNOWN_SIGNATURE', 'note has no valid log signature');
  return parseCheckpoint(opened.text);
}

function checkEvidence(
  item: Record<string, unknown>,
  keys: string[],
): { verdict: string; conclusive: boolean } {
  const oldC = checkpointOf(noteField(item, ['oldNote']), keys);
  const newC = checkpointOf(noteField(item, ['newNote']), keys);
  if (oldC.origin !== newC.origin)
    throw new TlogError('ORIGIN_MISMATCH', `notes are for ${oldC.origin} and ${newC.origin}`);
  const o = oldC.origin;
  for (const [field, c] of [
    ['oldSize', oldC],
    ['newSize', newC],
  ] as const) {
    if (item[field] !== undefined && item[field] !== c.size.toString()) {
      throw new TlogError(
        'SIZE_INVALID',
        `${field} ${String(item[field])} does not match the note's size ${c.size}`,
      );
    }
  }
  const kind =
    typeof item.kind === 'string'
      ? item.kind
      : oldC.size === newC.size
        ? 'fork'
        : newC.size < oldC.size
          ? 'rollback'
          : 'inconsistent';
  if (kind === 'fork') {
    if (oldC.size !== newC.size)
      throw new TlogError('SIZE_INVALID', `fork evidence with sizes ${oldC.size} and ${newC.size}`);
    if (bytesEqual(oldC.root, newC.root)) {
      throw new TlogError(
        'PROOF_INVALID',
        `both notes of ${o} are the same checkpoint (size ${oldC.size}): nothing inconsistent`,
      );
    }
    return { verdict: `${o} signed two different roots at size ${oldC.size} (fork)`, conclusive: true };
  }
  if (kind === 'rollback') {
    if (!(newC.size < oldC.size))
      throw new TlogError('SIZE_INVALID', `rollback evidence with sizes ${oldC.size} -> ${newC.size}`);
    return {
      verdict: `${o} served size ${newC.size} after signing size ${oldC.size} (rollback)`,
      conclusive: false,
    };
  }
  if (kind !== 'inconsistent')
    throw new TlogError('PROOF_INVALID', `unknown evidence kind ${JSON.stringify(kind)}`);
  if (typeof item.prefixRoot !== 'string')
    throw new TlogError('PROOF_INVALID', 'inconsistent evidence lacks prefixRoot');
  const prefixRoot = base64Decode(item.prefixRoot, 'PROOF_INVALID');
  const proofField = item.proof;
  if (!Array.isArray(proofField)) throw new TlogError('PROOF_INVALID', 'evidence proof is not a list');
  const proof = proofField.map((p) => base64Decode(String(p), 'PROOF_INVALID'));
  // The new tree's own proof shows its first oldSize leaves have root prefixRoot ...
  verifyConsistency(oldC.size, newC.size, prefixRoot, newC.root, proof);
  // ... which differs from what the log signed at oldSize.
  if (bytesEqual(prefixRoot, oldC.root)) {
    throw new TlogError(
      'PROOF_INVALID',
      `${o}: prefixRoot equals the root signed at size ${oldC.size}: the checkpoints are consistent`,
    );
  }
  return {
    verdict: `${o}: the tree signed at size ${newC.size} does not extend the one signed at size ${oldC.size} (inconsistent)`,
    conclusive: true,
  };
}
