/**
 * `vigil export --follow --jsonl [--otlp URL]` (DESIGN.md "Forensic review", "Streams out"): every new
 * record of the log as one verified JSON line (stdout or --out FILE) for SIEM shippers, and with
 * --otlp one OpenTelemetry span per MCP request/response pair. Node-only.
 *
 * Never emits a record it has not verified. Each pass is one run of the auditor (audit/auditor.ts),
 * which takes the log's checkpoint, verifies it against the policy and against the last checkpoint this
 * stream verified (a rollback or a fork is a problem), reads the new entries through entry bundles,
 * recomputes the tree from the verified prefix (so every new entry is proven included in that
 * checkpoint), checks every emitter signature with keys from the registry records in the tree, and
 * with a reader token opens every sealed value against its commitment (`GET /v1/sealed?start&end`).
 * The pass hands us the entries as it reads them; we write them only if its report has no new
 * problem. Any problem: nothing of the pass is written, exit 1.
 *
 * The state file (--state) holds the next index, the last verified checkpoint, the auditor's state at
 * that size, the requests waiting for their response, and how many bytes of --out it covers. It is
 * replaced atomically (tmp, fsync, rename) only after the pass's lines were written and fsynced and the
 * OTLP export resolved. What a restart sees if the process dies:
 *   before the lines are fsynced, or between them and the state: the state still names the old size
 *     and --out's old length; --out is cut back to that length and the pass runs again (the same
 *     lines, once each);
 *   after the rename: the next pass starts at the new size.
 * On stdout (no --out) and for OTLP delivery is at-least-once: a pass interrupted after writing is
 * written again. Spans carry ids derived from the origin and the request's index, so a span sent twice
 * is the same span. At most MAX_PENDING_REQUESTS (10,000) requests wait for their response in the
 * state; past that the oldest is dropped (said on stderr) and its pair makes no span.
 *
 * Cost: a pass holds the entries it catches up (and their opened values) in memory until the tree
 * check at its end. The first pass of `--from now` audits the whole log once but keeps none of it;
 * a stream that must start at index 0 of a very large log needs memory for that backlog.
 */
import * as fs from 'node:fs/promises';
import { runAudit, type AuditProblem, type AuditState, type AuditStateStorage } from '../audit/auditor.js';
import { workerPoolSignatureVerifier } from '../audit/node-verifier.js';
import { LogClient, type LogClientOptions, type SealedAnswer } from '../client.js';
import { replaceFile } from '../replace-file.js';
import type { Policy } from '../policy/index.js';
import type { Entry } from '../record.js';
import {
  checkpointForPolicy,
  followLine,
  MAX_PENDING_REQUESTS,
  openRecord,
  pairRecord,
  type McpSpan,
  type Pairing,
  type PendingRequest,
} from '../review/index.js';
import { loadPolicy } from './commands.js';
import { wantsHelp } from './help.js';
import { args, parseDuration, readerToken, required, UsageError, type Io } from './io.js';

export const FOLLOW_USAGE = `usage: vigil export --follow --jsonl [--out FILE] [--state FILE] [--otlp URL] --log URL
                    --policy FILE [--reader-token T] [--interval 2s] [--from 0|now] [--once]

Writes every new record of the log as one JSON line (stdout, or appended to --out FILE) once it is
verified: included in a checkpoint that satisfies the policy and is consistent with the last one
seen, its emitter's signature checked (keys from the log's registry records), its sealed values
opened with the reader token and checked against their commitments. A log that lies (bad checkpoint,
rollback, fork, altered entry) stops the stream: nothing of that pass is written, exit 1.
--otlp URL sends one OpenTelemetry span per MCP request/response pair (OTLP/HTTP protobuf, e.g.
http://collector:4318/v1/traces). --state FILE remembers where the stream stopped (and the last
checkpoint); with --out a restart resumes exactly there. --from now starts at the current end of the
log when there is no state. --once catches up to the current checkpoint and exits.
`;

/** The follow state file (JSON). `next` always equals `audit.size`. */
interface FollowState {
  format: 'vigil-follow@1';
  origin: string;
  /** The index of the next record to write, decimal. */
  next: string;
  /** The last checkpoint verified (signed note). */
  checkpoint: string;
  /** Bytes of --out written by the passes this state covers. */
  outBytes?: number;
  audit: AuditState;
  /** MCP requests waiting for their response, oldest first (at most MAX_PENDING_REQUESTS). */
  pending: PendingRequest[];
  dropped: number;
}

async function loadState(file: string): Promise<FollowState | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const s = JSON.parse(text) as FollowState;
  if (s.format !== 'vigil-follow@1' || typeof s.next !== 'string' || typeof s.audit !== 'object')
    throw new Error(`${file} is not a vigil export --follow state file`);
  return s;
}

/** Replaces `file` atomically and durably: the new state is complete or the old one stays. */
async function saveState(file: string, state: FollowState): Promise<void> {
  await replaceFile(file, JSON.stringify(state));
}

/** The auditor's storage for one pass: starts from the committed state, keeps what the pass saves. */
function passStorage(state: FollowState | undefined): AuditStateStorage & {
  saved?: AuditState;
  note?: string;
} {
  const s: AuditStateStorage & { saved?: AuditState; note?: string } = {
    load: (origin) =>
      Promise.resolve(state !== undefined && state.origin === origin ? state.checkpoint : undefined),
    save: (_origin, note) => {
      s.note = note;
      return Promise.resolve();
    },
    loadState: () => Promise.resolve(state !== undefined ? structuredClone(state.audit) : undefined),
    saveState: (a) => {
      s.saved = a;
      return Promise.resolve();
    },
  };
  return s;
}

/** A LogClient whose `checkpoint()` is the newest one that satisfies the policy (checkpointForPolicy). */
class PolicyCheckpointClient extends LogClient {
  private readonly policy: Policy;

  constructor(url: string, options: LogClientOptions, policy: Policy) {
    super(url, options);
    this.policy = policy;
  }

  override checkpoint(): Promise<string> {
    return checkpointForPolicy(
      () => super.checkpoint(),
      () => this.witnessedCheckpoint(),
      this.policy,
    );
  }
}

/** Writes text to a stream and resolves once it is handed to the OS. */
function writeOut(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

function problemLine(p: AuditProblem): string {
  return `vigil: ${p.index !== undefined ? `entry ${p.index}: ` : ''}${p.code}: ${p.message}\n`;
}

/** `vigil export --follow --jsonl ...`: exit 0 (stopped or --once done), 1 (the log lied), 2 (could not run). */
export async function runFollow(argv: string[], io: Io): Promise<number> {
  if (wantsHelp(argv)) {
    io.stdout.write(FOLLOW_USAGE);
    return 0;
  }
  const { values } = args(
    argv,
    {
      follow: { type: 'boolean' },
      jsonl: { type: 'boolean' },
      out: { type: 'string' },
      state: { type: 'string' },
      otlp: { type: 'string' },
      log: { type: 'string' },
      policy: { type: 'string' },
      'reader-token': { type: 'string' },
      interval: { type: 'string' },
      from: { type: 'string' },
      once: { type: 'boolean' },
    },
    false,
  );
  if (values.jsonl !== true)
    throw new UsageError('--follow writes --jsonl (JSON Lines); say so with --jsonl');
  const from = typeof values.from === 'string' ? values.from : '0';
  if (from !== '0' && from !== 'now') throw new UsageError('--from must be 0 or now');
  const url = required(values, 'log', 'the log URL');
  const policy = await loadPolicy(required(values, 'policy', 'the tlog-policy file'));
  const token = readerToken(values, io);
  const client = new PolicyCheckpointClient(url, token !== undefined ? { readerToken: token } : {}, policy);
  const intervalMs = parseDuration(
    typeof values.interval === 'string' ? values.interval : '2s',
    '--interval',
  );
  const stateFile = typeof values.state === 'string' ? values.state : undefined;
  const outFile = typeof values.out === 'string' ? values.out : undefined;
  const otlpUrl = typeof values.otlp === 'string' ? values.otlp : undefined;
  let state = stateFile !== undefined ? await loadState(stateFile) : undefined;

  // --out: what the state covers; lines of a pass that never committed are cut and written again.
  let out: fs.FileHandle | undefined;
  /** Bytes of --out the committed state covers (what a failed pass is cut back to). */
  let outBytes = 0;
  if (outFile !== undefined) {
    out = await fs.open(outFile, 'a', 0o600);
    const size = (await out.stat()).size;
    const covered = state?.outBytes;
    if (covered !== undefined && size < covered) {
      await out.close();
      io.stderr.write(
        `vigil: ${outFile} has ${size} bytes, the state says ${covered} were written: it was truncated or replaced; move the state aside to start over\n`,
      );
      return 2;
    }
    outBytes = covered ?? size; // anything past it is cut at the start of the first pass
  }
  // The OpenTelemetry SDK is loaded only for --otlp.
  const sink = otlpUrl !== undefined ? new (await import('./otlp-sink.js')).OtlpSink(otlpUrl) : undefined;
  const verifySignature = workerPoolSignatureVerifier();
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (;;) {
      let code: number | undefined;
      try {
        code = await pass();
      } catch (err) {
        if (values.once === true) throw err;
        io.stderr.write(`vigil: export pass failed, retrying: ${(err as Error).message}\n`);
      }
      if (code !== undefined && code !== 0) return code;
      if (values.once === true || stop.signal.aborted) return 0;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        stop.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      });
      if (stop.signal.aborted) return 0;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await verifySignature.close();
    await sink?.close();
    await out?.close();
  }

  /** One pass: verify up to the current checkpoint, write, export, commit. 0 or 1 (the log lied). */
  async function pass(): Promise<number> {
    if (out !== undefined && (await out.stat()).size > outBytes) {
      // An earlier pass of this process wrote and then failed (OTLP, state file): its lines come again.
      await out.truncate(outBytes);
    }
    const storage = passStorage(state);
    // Without a state, --from now writes nothing of the first pass: the stream starts at its end.
    const emitFrom = state !== undefined ? BigInt(state.next) : from === 'now' ? undefined : 0n;
    const entries: { index: bigint; entry: Entry }[] = [];
    const answer: SealedAnswer | undefined =
      token !== undefined ? { sealed: new Map(), erased: new Map() } : undefined;
    const report = await runAudit({
      client,
      policy,
      storage,
      verifySignature,
      openSealed: token !== undefined,
      onEntry: (index, entry) => {
        if (emitFrom !== undefined && index >= emitFrom) entries.push({ index, entry });
      },
      onSealed: (found, claims) => {
        for (const [hex, bytes] of found) answer?.sealed.set(hex, bytes);
        for (const c of claims) answer?.erased.set(c.sha256, BigInt(c.erasure));
      },
    });
    if (report.newProblems.length > 0) {
      for (const p of report.newProblems) io.stderr.write(problemLine(p));
      io.stderr.write(
        `vigil: the log's answer did not verify; nothing after entry ${state?.next ?? '0'} was written\n`,
      );
      return 1;
    }
    // Nothing new since the committed state: nothing to write or commit.
    if (storage.saved === undefined || (state !== undefined && report.size === state.next)) return 0;
    const origin = report.origin;
    const pairing: Pairing = {
      pending: new Map((state?.pending ?? []).map((p) => [p.key, p])),
      dropped: state?.dropped ?? 0,
    };
    const lines: string[] = [];
    const spans: McpSpan[] = [];
    for (const { index, entry } of entries) {
      const opened = openRecord(
        { index, emitter: entry.emitter, received: entry.received, record: entry.record },
        answer,
      );
      lines.push(JSON.stringify(followLine(opened, origin)) + '\n');
      const span = sink !== undefined ? pairRecord(pairing, opened, origin) : undefined;
      if (span !== undefined) spans.push(span);
    }
    const text = lines.join('');
    if (text !== '') {
      if (out !== undefined) {
        await out.appendFile(text);
        await out.sync();
      } else await writeOut(io.stdout, text);
    }
    if (spans.length > 0) await sink!.send(spans);
    const note = storage.note ?? state?.checkpoint;
    if (note === undefined) throw new Error('the pass verified no checkpoint');
    if (pairing.dropped > (state?.dropped ?? 0))
      io.stderr.write(
        `vigil: ${pairing.dropped} request(s) in all dropped unanswered: more than ${MAX_PENDING_REQUESTS} were waiting for a response\n`,
      );
    // Memory moves only with the file: a pass that fails to save is done again, cut back to outBytes.
    const next: FollowState = {
      format: 'vigil-follow@1',
      origin,
      next: report.size,
      checkpoint: note,
      ...(out !== undefined ? { outBytes: outBytes + Buffer.byteLength(text) } : {}),
      audit: storage.saved,
      pending: [...pairing.pending.values()],
      dropped: pairing.dropped,
    };
    if (stateFile !== undefined) await saveState(stateFile, next);
    state = next;
    outBytes = next.outBytes ?? 0;
    return 0;
  }
}
