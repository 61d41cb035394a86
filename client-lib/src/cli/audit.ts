/** `vigil audit`: one pass, or `--follow` to keep watching. */
import * as fs from 'node:fs/promises';
import { LogClient } from '../client.js';
import { runAudit, type AuditProblem, type AuditReport, type AuditWarning } from '../audit/auditor.js';
import { workerPoolSignatureVerifier } from '../audit/node-verifier.js';
import { fileAuditStorage, memoryAuditStorage } from '../audit/state-file.js';
import { parseVerifierKey } from '../note/index.js';
import { args, paint, parseDuration, readerToken, required, table, type Io } from './io.js';
import { loadPolicy } from './commands.js';
import { terminalSafe } from './sealed-view.js';

async function loadEmitterKeys(file: string): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  const text = await fs.readFile(file, 'utf8');
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) return;
    try {
      keys.set(parseVerifierKey(l).name, l);
    } catch (err) {
      throw new Error(`${file} line ${i + 1}: not an emitter vkey: ${(err as Error).message}`, {
        cause: err,
      });
    }
  });
  return keys;
}

function problemRows(problems: AuditProblem[]): string {
  return table([['INDEX', 'PROBLEM', 'DETAIL'], ...problems.map((p) => [p.index ?? '-', p.code, p.message])]);
}

/** Tool names and sessions come from the audited records: shown terminal-safe. */
function warningRows(io: Io, warnings: AuditWarning[]): string {
  return (
    paint(io, 'yellow', 'warnings (evidence to review; they do not fail the audit):') +
    '\n' +
    table([
      ['INDEX', 'WARNING', 'DETAIL'],
      ...warnings.map((w) => [w.index, w.code, terminalSafe(w.message)]),
    ])
  );
}

/** What the run could say about tool definitions. */
function toolLine(r: AuditReport): string {
  const t = r.toolDefinitions;
  if (t.lists === 0) return 'no tools/list results in the new entries';
  const notChecked =
    t.sealed === 0
      ? ''
      : r.sealed.opened
        ? `, ${t.sealed} not checked (erased or not opened)`
        : `, ${t.sealed} sealed: tool definitions NOT checked (no reader token: --reader-token or VIGIL_READER_TOKEN)`;
  return `${t.lists} tools/list result(s) in the new entries: ${t.checked} compared with the server's earlier definitions${notChecked}; ${r.newWarnings.length} changed`;
}

function printReport(io: Io, r: AuditReport): void {
  const status = r.ok ? paint(io, 'green', 'CLEAN') : paint(io, 'red', `${r.problems.length} PROBLEM(S)`);
  io.stdout.write(
    table([
      ['log', r.origin],
      ['checkpoint', `size ${r.size} root ${r.root}`],
      ['checked', `${r.entriesChecked} new entries (previous audit size ${r.previousSize})`],
      ['streams', `${r.streams.total} total, ${r.streams.closed} closed, ${r.streams.open.length} open`],
      [
        'sealed',
        r.sealed.opened
          ? `${r.sealed.values} value(s) in the new entries: ${r.sealed.matched} opened and matched, ${r.sealed.erased} erased`
          : `${r.sealed.values} value(s) in the new entries, not opened (no reader token: --reader-token or VIGIL_READER_TOKEN)`,
      ],
      ['erasures', String(r.erasures.length)],
      ['tools', toolLine(r)],
      ['result', status],
    ]),
  );
  const emitters = Object.entries(r.emitters);
  if (emitters.length > 0) {
    io.stdout.write('\n' + table([['EMITTER', 'ENTRIES'], ...emitters.map(([n, c]) => [n, String(c)])]));
  }
  if (r.streams.open.length > 0) {
    io.stdout.write(
      '\n' +
        paint(io, 'yellow', 'open streams (no stream.close yet; --fail-on-unclosed makes them problems):') +
        '\n' +
        table([
          ['STREAM', 'EMITTER', 'LAST SEQ', 'LAST INDEX'],
          ...r.streams.open.map((s) => [s.stream, s.emitter, String(s.lastSeq), s.lastIndex]),
        ]),
    );
  }
  if (r.erasures.length > 0) {
    io.stdout.write(
      '\nerasures (log.erasure records of the operator):\n' +
        table([
          ['INDEX', 'TIME', 'BY', 'TARGET', 'COUNT', 'REASON'],
          ...r.erasures.map((e) => [
            e.index,
            e.time,
            e.by,
            JSON.stringify(e.target),
            String(e.count),
            JSON.stringify(e.reason),
          ]),
        ]),
    );
  }
  if (r.warnings.length > 0) io.stdout.write('\n' + warningRows(io, r.warnings));
  if (r.problems.length > 0) io.stdout.write('\n' + problemRows(r.problems));
}

/** `vigil audit --log URL --policy FILE [...]`. Exit 0 clean, 1 problems, 2 could not run. */
export async function runAuditCommand(argv: string[], io: Io): Promise<number> {
  const { values } = args(
    argv,
    {
      log: { type: 'string' },
      policy: { type: 'string' },
      state: { type: 'string' },
      follow: { type: 'boolean' },
      json: { type: 'boolean' },
      emitters: { type: 'string' },
      'operator-key': { type: 'string' },
      'fail-on-unclosed': { type: 'boolean' },
      'max-skew': { type: 'string' },
      interval: { type: 'string' },
      'reader-token': { type: 'string' },
    },
    false,
  );
  const token = readerToken(values, io);
  const client = new LogClient(required(values, 'log', 'the log URL'), {
    ...(token !== undefined ? { readerToken: token } : {}),
  });
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file with the log key'));
  const storage = typeof values.state === 'string' ? fileAuditStorage(values.state) : memoryAuditStorage();
  const emitterKeys =
    typeof values.emitters === 'string' ? await loadEmitterKeys(values.emitters) : undefined;
  const maxSkewMs = parseDuration(
    typeof values['max-skew'] === 'string' ? values['max-skew'] : '5m',
    '--max-skew',
  );
  const intervalMs = parseDuration(
    typeof values.interval === 'string' ? values.interval : '10s',
    '--interval',
  );
  const onProgress = io.progress
    ? (done: bigint, total: bigint): void => {
        const pct = total === 0n ? 100 : Number((done * 100n) / total);
        const bar = '#'.repeat(Math.floor(pct / 4)).padEnd(25, '.');
        io.stderr.write(`\r[${bar}] ${done}/${total} entries (${pct}%)`);
        if (done === total) io.stderr.write('\n');
      }
    : undefined;
  // Emitter signatures are checked on worker threads, one a core, in batches.
  const verifySignature = workerPoolSignatureVerifier();
  try {
    return await auditRuns();
  } finally {
    await verifySignature.close();
  }

  async function auditRuns(): Promise<number> {
    const once = (): Promise<AuditReport> =>
      runAudit({
        client,
        policy,
        storage,
        verifySignature,
        maxSkewMs,
        failOnUnclosed: values['fail-on-unclosed'] === true,
        openSealed: token !== undefined,
        ...(emitterKeys !== undefined ? { emitterKeys } : {}),
        ...(typeof values['operator-key'] === 'string' ? { operatorKey: values['operator-key'] } : {}),
        ...(onProgress !== undefined ? { onProgress } : {}),
      });

    if (values.follow !== true) {
      const report = await once();
      if (values.json === true) io.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else printReport(io, report);
      return report.ok ? 0 : 1;
    }

    // --follow: audit, then poll; print only what changed. Stops on SIGINT/SIGTERM.
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let sawProblem = false;
    let lastSize = '';
    let failures = 0;
    try {
      while (!stop.signal.aborted) {
        try {
          const report = await once();
          failures = 0;
          if (!report.ok) sawProblem = true;
          if (values.json === true) {
            if (report.size !== lastSize || report.newProblems.length > 0 || report.newWarnings.length > 0)
              io.stdout.write(JSON.stringify(report) + '\n');
          } else if (lastSize === '') {
            printReport(io, report);
          } else if (report.size !== lastSize || report.newProblems.length > 0) {
            io.stdout.write(
              `${new Date().toISOString()} size ${report.size}: ${report.entriesChecked} new entries, ` +
                (report.newProblems.length === 0
                  ? paint(io, 'green', 'clean')
                  : paint(io, 'red', `${report.newProblems.length} new problem(s)`)) +
                '\n',
            );
            if (report.newWarnings.length > 0) io.stdout.write(warningRows(io, report.newWarnings));
            if (report.newProblems.length > 0) io.stdout.write(problemRows(report.newProblems));
          }
          lastSize = report.size;
        } catch (err) {
          failures++;
          io.stderr.write(
            `vigil: audit pass failed (${failures} in a row), retrying: ${(err as Error).message}\n`,
          );
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, intervalMs);
          stop.signal.addEventListener('abort', () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return sawProblem ? 1 : 0;
  }
}
