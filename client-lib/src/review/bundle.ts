/**
 * Evidence bundles (DESIGN.md "Forensic review", "Evidence bundles"): one JSON file that a reviewer
 * hands to someone who trusts neither the reviewer nor the log operator. It holds the policy, one
 * checkpoint note that satisfies it, the exact bytes of every entry with an inclusion proof to that
 * checkpoint, the emitter registry records (`emitter.add` / `emitter.revoke`) that give the key of
 * every emitter in it, and, when the exporter held a reader token, the sealed bytes S of the values
 * and the erasure index of erased ones:
 * `{"format":"vigil-evidence@1","policy","checkpoint","entries":[{"index","entry","proof"}],
 *   "sealed":{"<hex>":"<base64 S>"},"erased":{"<hex>":"<index>"}}`.
 *
 * Root of trust offline: the policy's log key (and witnesses) sign the checkpoint; the checkpoint's
 * origin names the operator emitter (`<origin>/operator`), whose self-registration (an entry of the
 * bundle, proven in the tree) gives the operator key; the operator's registry records give every
 * other emitter's key. What the bundle cannot show is a record it leaves out: a revocation after the
 * selected records' registrations, or a stream's records between two it holds (reported as a note).
 *
 * Browser-safe (the console builds and checks bundles with it): I/O only through the LogClient.
 */
import type { LogClient, SealedAnswer } from '../client.js';
import { base64Decode, base64Encode } from '../encoding.js';
import { isTlogError, TlogError } from '../errors.js';
import { sha256 } from '../crypto.js';
import { hashLeaf, inclusionProof, verifyInclusion } from '../merkle/index.js';
import { parseCheckpoint, type Checkpoint } from '../note/checkpoint.js';
import { parseNote } from '../note/note.js';
import { formatPolicy, parsePolicy, verifyCheckpoint, type Policy } from '../policy/index.js';
import { readLimited } from '../read-limited.js';
import { MAX_ENTRY_SIZE, parseEntryWithRecord, verifyRecordSignature, type Entry } from '../record.js';
import { EMITTER_ADD, isRegistryKind, operatorNameFor, parseRegistryChange } from '../registry.js';
import { openSealed } from '../sealed.js';
import { tileNodeReader } from '../tiles/index.js';
import { KeyBook } from '../audit/key-book.js';
import { OPERATOR_KINDS, sealedRefsOf } from '../audit/sealed-check.js';
import { checkpointForPolicy } from './follow.js';
import { openRecord, type OpenedRecord, type ReviewRecord } from './records.js';
import { isInWindow, timeOn, type ReviewClock } from './time.js';

export const BUNDLE_FORMAT = 'vigil-evidence@1';

/** The evidence bundle as its JSON carries it (indices are canonical decimal strings). */
export interface EvidenceBundle {
  format: typeof BUNDLE_FORMAT;
  policy: string;
  checkpoint: string;
  entries: { index: string; entry: string; proof: string[] }[];
  sealed: Record<string, string>;
  erased: Record<string, string>;
}

/** Largest bundle text parseBundle reads (a browser must hold it and its parse in memory). */
export const MAX_BUNDLE_TEXT = 256 * 1024 * 1024;
/** Most hashes an inclusion proof has (a tree of at most 2^64 leaves). */
const MAX_PROOF_HASHES = 64;
const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

function malformed(message: string): never {
  throw new TlogError('BUNDLE_MALFORMED', `evidence bundle: ${message}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function exactKeys(o: Record<string, unknown>, keys: string[], what: string): void {
  const got = Object.keys(o).sort().join(',');
  const want = [...keys].sort().join(',');
  if (got !== want) malformed(`${what} has fields ${got}, want ${want}`);
}

function canonicalBase64(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string') malformed(`${what} is not a string`);
  try {
    return base64Decode(v, 'BUNDLE_MALFORMED');
  } catch {
    malformed(`${what} is not canonical base64`);
  }
}

/**
 * Parses an evidence bundle strictly: at most MAX_BUNDLE_TEXT characters of JSON with exactly the
 * fields of the format, `format` equal to BUNDLE_FORMAT (another is BUNDLE_FORMAT_UNKNOWN), indices as
 * canonical decimals in strictly increasing order, entries of 1..65,535 bytes, proofs of 32-byte
 * hashes, sealed and erased names of 64 lowercase hex (a name in both is refused). Everything else is
 * BUNDLE_MALFORMED. Parsing checks shape only: verifyBundle checks what it claims.
 */
export function parseBundle(text: string): EvidenceBundle {
  if (typeof text !== 'string' || text.length > MAX_BUNDLE_TEXT)
    malformed(`not a string of at most ${MAX_BUNDLE_TEXT} characters`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    malformed('not json');
  }
  if (!isObject(v)) malformed('not a json object');
  if (v.format !== BUNDLE_FORMAT)
    throw new TlogError(
      'BUNDLE_FORMAT_UNKNOWN',
      `evidence bundle format ${JSON.stringify(v.format)} is not ${BUNDLE_FORMAT}`,
    );
  exactKeys(v, ['format', 'policy', 'checkpoint', 'entries', 'sealed', 'erased'], 'the bundle');
  if (typeof v.policy !== 'string') malformed('policy is not a string');
  if (typeof v.checkpoint !== 'string') malformed('checkpoint is not a string');
  if (!Array.isArray(v.entries)) malformed('entries is not a list');
  const entries: EvidenceBundle['entries'] = [];
  let last = -1n;
  v.entries.forEach((e: unknown, i: number) => {
    if (!isObject(e)) malformed(`entry ${i} is not an object`);
    exactKeys(e, ['index', 'entry', 'proof'], `entry ${i}`);
    if (typeof e.index !== 'string' || !DECIMAL.test(e.index))
      malformed(`entry ${i} index is not a canonical decimal`);
    const index = BigInt(e.index);
    if (index <= last) malformed(`entry ${i} index ${index} does not follow ${last}`);
    last = index;
    const bytes = canonicalBase64(e.entry, `entry ${index}`);
    if (bytes.length === 0 || bytes.length > MAX_ENTRY_SIZE)
      malformed(`entry ${index} has ${bytes.length} bytes, want 1..${MAX_ENTRY_SIZE}`);
    if (!Array.isArray(e.proof) || e.proof.length > MAX_PROOF_HASHES)
      malformed(`entry ${index} proof is not a list of at most ${MAX_PROOF_HASHES} hashes`);
    for (const [j, h] of (e.proof as unknown[]).entries())
      if (canonicalBase64(h, `entry ${index} proof hash ${j}`).length !== 32)
        malformed(`entry ${index} proof hash ${j} is not 32 bytes`);
    entries.push({ index: e.index, entry: e.entry as string, proof: e.proof as string[] });
  });
  const names = (m: unknown, what: string): [string, unknown][] => {
    if (!isObject(m)) malformed(`${what} is not an object`);
    const items = Object.entries(m);
    for (const [hex] of items) if (!HEX64.test(hex)) malformed(`${what} name ${hex} is not 64 hex`);
    return items;
  };
  const sealed: Record<string, string> = {};
  for (const [hex, s] of names(v.sealed, 'sealed')) {
    canonicalBase64(s, `sealed ${hex}`);
    sealed[hex] = s as string;
  }
  const erased: Record<string, string> = {};
  for (const [hex, at] of names(v.erased, 'erased')) {
    if (typeof at !== 'string' || !DECIMAL.test(at)) malformed(`erased ${hex} is not a canonical decimal`);
    if (hex in sealed) malformed(`${hex} is both sealed and erased`);
    erased[hex] = at;
  }
  return { format: BUNDLE_FORMAT, policy: v.policy, checkpoint: v.checkpoint, entries, sealed, erased };
}

function sortedMap(m: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(m).sort()) out[k] = m[k]!;
  return out;
}

/**
 * The JSON text of a bundle: keys in the order of the format, entries by index (one per line, so a
 * diff of two bundles reads), sealed and erased names sorted. parseBundle(formatBundle(b)) equals b
 * for a bundle parseBundle accepts.
 */
export function formatBundle(b: EvidenceBundle): string {
  const entries = [...b.entries].sort((x, y) => {
    const a = BigInt(x.index);
    const c = BigInt(y.index);
    return a < c ? -1 : a > c ? 1 : 0;
  });
  const lines = entries.map(
    (e) => JSON.stringify({ index: e.index, entry: e.entry, proof: e.proof }) as string,
  );
  return (
    `{"format":${JSON.stringify(b.format)},\n` +
    `"policy":${JSON.stringify(b.policy)},\n` +
    `"checkpoint":${JSON.stringify(b.checkpoint)},\n` +
    `"entries":[${lines.length === 0 ? '' : `\n${lines.join(',\n')}\n`}],\n` +
    `"sealed":${JSON.stringify(sortedMap(b.sealed))},\n` +
    `"erased":${JSON.stringify(sortedMap(b.erased))}}\n`
  );
}

/** Which records a bundle holds: one session, or a time window (on either clock), maybe of one emitter. */
export interface BundleSelection {
  session?: string;
  since?: Date;
  until?: Date;
  clock?: 'received' | 'emitter';
  emitter?: string;
}

/** One problem (or note) of a bundle; `index` names the entry to blame when there is one. */
export interface BundleProblem {
  index?: bigint;
  code: string;
  message: string;
}

export interface BundleReport {
  /** True only when every check held (notes do not count). */
  ok: boolean;
  /** Of the bundle's checkpoint (as its text says, when it does not verify). */
  origin: string;
  size: bigint;
  /** Witnesses of the policy whose cosignatures verified. */
  cosigners: string[];
  /** Every entry of the bundle in index order; `failure` set on any entry that failed a check. */
  records: OpenedRecord[];
  problems: BundleProblem[];
  /**
   * What the bundle does not show, without being wrong: a stream's records between two it holds
   * (SEQ_GAP), an erasure whose record it does not carry (ERASURE_NOT_IN_BUNDLE).
   */
  notes: BundleProblem[];
}

/** Policies compare as their formatted form (comments, blank lines and spacing do not count). */
function samePolicyText(a: string, b: string): boolean {
  try {
    return formatPolicy(parsePolicy(a)) === formatPolicy(parsePolicy(b));
  } catch {
    return false;
  }
}

/** The checkpoint a note's text claims, without checking any signature (undefined when it does not parse). */
function claimedCheckpoint(note: string): Checkpoint | undefined {
  try {
    return parseCheckpoint(parseNote(note).text);
  } catch {
    return undefined;
  }
}

/** The erasure record's inline commitments (undefined when it lists them in a `$blob`). */
function erasureCommitments(record: Record<string, unknown>): string[] | undefined {
  const c = record['commitments'];
  return Array.isArray(c) && c.every((x) => typeof x === 'string') ? (c as string[]) : undefined;
}

/** Per-stream chain state while checking a bundle's entries in index order. */
interface ChainState {
  emitter: string;
  seq: number;
  hash: string;
  index: bigint;
}

/**
 * Checks a bundle offline against `policy`: the checkpoint's log signature, cosignatures and quorum;
 * every entry's inclusion proof to that checkpoint; every emitter signature with the key the bundle's
 * registry records give (an emitter the bundle does not register is EMITTER_UNREGISTERED); stream
 * chains (consecutive seq must chain `prev`: PREV_MISMATCH; a gap is a note); sealed values against
 * their commitments (SEALED_MISMATCH); erased values listed with their erasure record, checked when the
 * bundle carries it. Never throws on bad content: every failure is a problem with its code, and
 * records with a problem carry `failure`. Throws TlogError POLICY_MISMATCH when `options.policyText`
 * is given and is not the bundle's policy.
 */
export function verifyBundle(
  b: EvidenceBundle,
  policy: Policy,
  options: { policyText?: string } = {},
): BundleReport {
  if (options.policyText !== undefined && !samePolicyText(options.policyText, b.policy))
    throw new TlogError(
      'POLICY_MISMATCH',
      "the bundle's policy is not the policy given: it was exported under other trust",
    );
  const problems: BundleProblem[] = [];
  const notes: BundleProblem[] = [];
  const problem = (code: string, message: string, index?: bigint): void => {
    problems.push(index === undefined ? { code, message } : { index, code, message });
  };
  // A bundle made in code rather than parsed gets the same shape checks as one read from a file.
  try {
    b = parseBundle(formatBundle(b));
  } catch (err) {
    problem(isTlogError(err) ? err.code : 'BUNDLE_MALFORMED', (err as Error).message);
    return { ok: false, origin: '', size: 0n, cosigners: [], records: [], problems, notes };
  }

  // The checkpoint: signatures and quorum. One that fails leaves every entry unproven.
  let checkpoint: Checkpoint | undefined;
  let cosigners: string[] = [];
  try {
    const v = verifyCheckpoint(b.checkpoint, policy);
    checkpoint = v.checkpoint;
    cosigners = [...v.cosigners.keys()];
  } catch (err) {
    problem(
      isTlogError(err) ? err.code : 'CHECKPOINT_INVALID',
      `the checkpoint does not verify under the policy: ${(err as Error).message}`,
    );
  }
  const claimed = checkpoint ?? claimedCheckpoint(b.checkpoint);
  const origin = claimed?.origin ?? '';
  const size = claimed?.size ?? 0n;
  const operatorName = operatorNameFor(origin);

  // The entries that are proven in the checkpoint, parsed.
  const proven: { index: bigint; entry: Entry; record: Uint8Array }[] = [];
  const records: ReviewRecord[] = [];
  for (const e of b.entries) {
    const index = BigInt(e.index);
    const bytes = base64Decode(e.entry);
    let entry: Entry | undefined;
    let record: Uint8Array | undefined;
    try {
      ({ entry, record } = parseEntryWithRecord(bytes));
    } catch (err) {
      problem('ENTRY_MALFORMED', `entry ${index} is malformed: ${(err as Error).message}`, index);
    }
    records.push({
      index,
      emitter: entry?.emitter ?? '',
      received: entry?.received ?? '',
      record: entry?.record ?? {},
    });
    if (checkpoint === undefined) continue;
    try {
      verifyInclusion(
        hashLeaf(bytes),
        index,
        checkpoint.size,
        e.proof.map((p) => base64Decode(p)),
        checkpoint.root,
      );
    } catch (err) {
      problem(
        isTlogError(err) ? err.code : 'PROOF_INVALID',
        `entry ${index} is not proven in the checkpoint of size ${checkpoint.size}: ${(err as Error).message}`,
        index,
      );
      continue;
    }
    if (entry !== undefined && record !== undefined) proven.push({ index, entry, record });
  }

  // Keys: the operator's self-registration in the bundle is where the registry begins.
  const self = proven.find(
    (p) =>
      p.entry.emitter === operatorName &&
      p.entry.record['kind'] === EMITTER_ADD &&
      p.entry.record['name'] === operatorName,
  );
  let operatorKey: string | undefined;
  if (self !== undefined) {
    try {
      operatorKey = parseRegistryChange(self.entry.record).vkey;
    } catch (err) {
      problem('REGISTRY_INVALID', `entry ${self.index}: ${(err as Error).message}`, self.index);
    }
  } else if (checkpoint !== undefined && proven.length > 0)
    problem(
      'EMITTER_UNREGISTERED',
      `the bundle lacks the operator's self-registration (an ${EMITTER_ADD} of ${operatorName}): no emitter key can be trusted`,
    );
  const book = new KeyBook(
    {
      ...(operatorKey !== undefined ? { operator: { name: operatorName, vkey: operatorKey } } : {}),
      registry: {},
      legacyKeys: {},
    },
    undefined,
    new Map(),
  );

  const chains = new Map<string, ChainState>();
  const erasureRecords = new Map<bigint, Entry>();
  for (const { index, entry, record } of proven) {
    if (operatorKey !== undefined && book.isRegistryRecord(entry)) {
      for (const p of book.applyRegistryRecord(entry, index)) problem(p.code, p.message, index);
    } else if (isRegistryKind(entry.record['kind']) && entry.emitter !== operatorName) {
      problem(
        'REGISTRY_INVALID',
        `entry ${index}: a ${String(entry.record['kind'])} record by ${entry.emitter}, not by the operator`,
        index,
      );
    } else {
      const decision = book.decide(entry.emitter, index);
      if (decision.problem !== undefined) problem(decision.problem.code, decision.problem.message, index);
      if (decision.vkey === undefined) {
        if (decision.problem === undefined)
          problem(
            'EMITTER_UNREGISTERED',
            `entry ${index} is by ${entry.emitter}, whose registration is not in the bundle`,
            index,
          );
      } else {
        try {
          verifyRecordSignature(entry.record, entry.sig, decision.vkey);
        } catch {
          problem(
            'SIGNATURE_INVALID',
            `entry ${index}: the record's signature does not verify with the key registered for ${entry.emitter}`,
            index,
          );
        }
      }
    }
    const kind = entry.record['kind'];
    if (typeof kind === 'string' && OPERATOR_KINDS.has(kind)) {
      if (entry.emitter !== operatorName)
        problem(
          'OPERATOR_RECORD_FORGED',
          `entry ${index}: a ${kind} record by ${entry.emitter}; only ${operatorName} signs them`,
          index,
        );
      else if (kind === 'log.erasure') erasureRecords.set(index, entry);
    }
    checkChain(index, entry, record, chains, operatorName, problem, notes);
  }

  // Sealed values: every S against its commitment, through the same path the console shows.
  const hasValues = Object.keys(b.sealed).length > 0 || Object.keys(b.erased).length > 0;
  const answer: SealedAnswer | undefined = hasValues
    ? {
        sealed: new Map(Object.entries(b.sealed).map(([h, s]) => [h, base64Decode(s)])),
        erased: new Map(Object.entries(b.erased).map(([h, i]) => [h, BigInt(i)])),
      }
    : undefined;
  const provenIndices = new Set(proven.map((p) => p.index));
  const opened = records.map((r) => {
    const o = openRecord(r, provenIndices.has(r.index) ? answer : undefined);
    for (const v of o.sealed) {
      if (v.state === 'failed')
        problem(
          'SEALED_MISMATCH',
          `entry ${r.index}: the sealed value at ${v.path} does not match its commitment ${v.sha256}: ${v.error ?? ''}`,
          r.index,
        );
      if (v.state === 'erased') {
        const at = BigInt(v.erasure!);
        const erasure = erasureRecords.get(at);
        if (at <= r.index)
          problem(
            'ERASURE_INVALID',
            `entry ${r.index}: ${v.path} is said to be erased by entry ${at}, which comes before it`,
            r.index,
          );
        else if (erasure === undefined)
          notes.push({
            index: r.index,
            code: 'ERASURE_NOT_IN_BUNDLE',
            message: `entry ${r.index}: ${v.path} was erased by entry ${at}, which the bundle does not carry`,
          });
        else {
          const listed = erasureCommitments(erasure.record);
          if (listed === undefined)
            notes.push({
              index: r.index,
              code: 'ERASURE_NOT_IN_BUNDLE',
              message: `entry ${r.index}: erasure entry ${at} lists its commitments in a blob the bundle does not carry`,
            });
          else if (!listed.includes(v.sha256))
            problem(
              'ERASURE_INVALID',
              `entry ${r.index}: erasure entry ${at} does not name commitment ${v.sha256}`,
              r.index,
            );
        }
      }
    }
    return o;
  });

  // Every record with a problem carries it, so a view of the records cannot show it as proven.
  const why = new Map<bigint, string[]>();
  for (const p of problems)
    if (p.index !== undefined) why.set(p.index, [...(why.get(p.index) ?? []), `${p.code}: ${p.message}`]);
  for (const r of opened) {
    const w = why.get(r.index);
    if (w !== undefined) r.failure = w.join('; ');
    else if (checkpoint === undefined) r.failure = 'the checkpoint does not verify under the policy';
  }
  return { ok: problems.length === 0, origin, size, cosigners, records: opened, problems, notes };
}

/**
 * Stream continuity of the entries a bundle holds: consecutive seq must chain `prev` (PREV_MISMATCH),
 * a seq again is SEQ_DUPLICATE, another emitter on a stream is STREAM_EMITTER_CHANGED, and records of a
 * stream missing between two the bundle holds are a SEQ_GAP note (a bundle is a selection). The
 * operator's stream is not followed: the bundle carries only its registry and erasure records.
 */
function checkChain(
  index: bigint,
  entry: Entry,
  record: Uint8Array,
  chains: Map<string, ChainState>,
  operatorName: string,
  problem: (code: string, message: string, index?: bigint) => void,
  notes: BundleProblem[],
): void {
  const { stream, seq, prev } = entry.record;
  if (entry.emitter === operatorName) return;
  if (typeof stream !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    problem('ENTRY_MALFORMED', `entry ${index}: record lacks a stream or a seq`, index);
    return;
  }
  // recordHash(record): base64 SHA-256 of the record's canonical bytes (sliced from the entry).
  const hash = base64Encode(sha256(record));
  const s = chains.get(stream);
  if (s === undefined) {
    if (seq === 0 && prev !== undefined)
      problem('PREV_MISMATCH', `entry ${index}: seq 0 of stream ${stream} has a prev`, index);
    chains.set(stream, { emitter: entry.emitter, seq, hash, index });
    return;
  }
  if (s.emitter !== entry.emitter)
    problem(
      'STREAM_EMITTER_CHANGED',
      `entry ${index}: stream ${stream} began with emitter ${s.emitter}, now ${entry.emitter}`,
      index,
    );
  if (seq <= s.seq) {
    problem(
      'SEQ_DUPLICATE',
      `entry ${index}: stream ${stream} seq ${seq} again (already at seq ${s.seq}, entry ${s.index})`,
      index,
    );
    return;
  }
  if (seq === s.seq + 1) {
    if (prev !== s.hash)
      problem(
        'PREV_MISMATCH',
        `entry ${index}: prev of stream ${stream} seq ${seq} does not match seq ${s.seq} (entry ${s.index})`,
        index,
      );
  } else
    notes.push({
      index,
      code: 'SEQ_GAP',
      message: `entry ${index}: stream ${stream} goes from seq ${s.seq} (entry ${s.index}) to ${seq}; the bundle does not hold the ${seq - s.seq - 1} record(s) between`,
    });
  chains.set(stream, { emitter: entry.emitter, seq, hash, index });
}

/** Most search results buildBundle takes for one selection (a bundle is for handing over, not for a whole log). */
export const MAX_BUNDLE_ENTRIES = 100_000;

/** Entry fetches buildBundle has in flight at once. */
const FETCH_PARALLEL = 8;

/** Search results of `query`, all pages (the log pages newest first; the order does not matter here). */
async function searchAll(
  client: LogClient,
  query: Parameters<LogClient['search']>[0],
  open: boolean,
): Promise<{ indices: bigint[]; entries: Map<bigint, Record<string, unknown>>; answer: SealedAnswer }> {
  const entries = new Map<bigint, Record<string, unknown>>();
  const answer: SealedAnswer = { sealed: new Map(), erased: new Map() };
  let after: string | undefined;
  for (;;) {
    const page = await client.search(
      { ...query, limit: 1000, ...(after !== undefined ? { after } : {}) },
      { open },
    );
    for (const [k, v] of page.sealed ?? []) answer.sealed.set(k, v);
    for (const [k, v] of page.erased ?? []) answer.erased.set(k, v);
    for (const r of page.results) entries.set(r.index, r.entry);
    if (entries.size > MAX_BUNDLE_ENTRIES)
      throw new TlogError(
        'RESPONSE_TOO_LARGE',
        `the selection holds more than ${MAX_BUNDLE_ENTRIES} records: narrow it`,
      );
    if (page.next === undefined || page.results.length === 0) break;
    after = page.next;
  }
  const indices = [...entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { indices, entries, answer };
}

/** The exact entry bytes at `index` (`GET /v1/entries/<i>?format=raw`), unverified. */
async function rawEntry(client: LogClient, index: bigint): Promise<Uint8Array> {
  const res = await client.request(`v1/entries/${index}?format=raw`);
  return readLimited(res, MAX_ENTRY_SIZE, `/v1/entries/${index}?format=raw`);
}

/**
 * Fetches, verifies and assembles a bundle from a live log (browser too: LogClient only). The records
 * of `selection` come from the search API (a reader endpoint); with `clock: 'emitter'` the window is
 * applied here on each record's `time`, else the log filters on `received`. The checkpoint is the
 * newest that satisfies `policy`; every entry's exact bytes are fetched, its inclusion proof to that
 * checkpoint computed from the log's tiles (tileNodeReader, as the checkpoint store reads them) and
 * verified before it is written. The operator's registry records for every emitter in the bundle
 * (its own self-registration first) and the log.erasure records of erased values are added. With a
 * reader token, S of each sealed value is opened against its commitment (SEALED_MISMATCH when the log
 * lies) and the erased ones are listed; the log records these reads as access.read records.
 * `options.open: false` keeps the values sealed (commitments only, no access.read of opened content).
 * The search API needs a reader token, so `client` must carry one. Throws INDEX_OUT_OF_RANGE when a selected record is newer than that checkpoint (retry once the
 * witnesses cosign a newer one), PROOF_INVALID when the log's tiles do not prove an entry.
 */
export async function buildBundle(
  client: LogClient,
  policy: Policy,
  policyText: string,
  selection: BundleSelection,
  options: { open?: boolean } = {},
): Promise<EvidenceBundle> {
  if (selection.session === undefined && selection.since === undefined && selection.until === undefined)
    throw new RangeError('a bundle selects a session or a time window');
  const clock: ReviewClock = selection.clock ?? 'received';
  const query: Parameters<LogClient['search']>[0] = {};
  if (selection.session !== undefined) query.session = selection.session;
  if (selection.emitter !== undefined) query.emitter = selection.emitter;
  if (clock === 'received') {
    if (selection.since !== undefined) query.since = selection.since.toISOString();
    if (selection.until !== undefined) query.until = selection.until.toISOString();
  }
  const open = client.hasReaderToken && options.open !== false;
  const found = await searchAll(client, query, open);
  // The checkpoint is read after the search, so it covers every record the search saw (unless the
  // policy needs cosignatures the witnesses have not added yet).
  // The newest checkpoint that satisfies the policy; a failure other than a short quorum throws.
  const note = await checkpointForPolicy(
    () => client.checkpoint(),
    () => client.witnessedCheckpoint(),
    policy,
  );
  const { checkpoint } = verifyCheckpoint(note, policy);
  const size = checkpoint.size;

  const selected = new Map<bigint, Entry>();
  const bytesOf = new Map<bigint, Uint8Array>();
  const proofOf = new Map<bigint, Uint8Array[]>();
  const getNode = tileNodeReader(size, (level, index, width) => client.readTile(level, index, width));
  /** The entry's proof from the tiles, verified for its bytes (PROOF_INVALID: the tree holds others). */
  const prove = async (index: bigint, bytes: Uint8Array): Promise<void> => {
    const proof = await inclusionProof(index, size, getNode);
    verifyInclusion(hashLeaf(bytes), index, size, proof, checkpoint.root);
    proofOf.set(index, proof);
  };
  const fetchEntry = async (index: bigint): Promise<Entry> => {
    const bytes = await rawEntry(client, index);
    let entry: Entry;
    try {
      entry = parseEntryWithRecord(bytes).entry;
    } catch (err) {
      // Bytes that do not parse: blame the log's answer, unless the tree itself holds them.
      await prove(index, bytes);
      throw err;
    }
    bytesOf.set(index, bytes);
    return entry;
  };
  const late: bigint[] = [];
  const wanted: bigint[] = [];
  for (const index of found.indices) {
    const e = found.entries.get(index)!;
    if (clock === 'emitter') {
      const rec = e['record'] as Record<string, unknown> | undefined;
      const t = timeOn('emitter', e['received'], rec?.['time']);
      if (!isInWindow(t, selection.since, selection.until)) continue;
    }
    if (index >= size) late.push(index);
    else wanted.push(index);
  }
  if (late.length > 0)
    throw new TlogError(
      'INDEX_OUT_OF_RANGE',
      `${late.length} selected record(s) (from entry ${late[0]}) are newer than the newest checkpoint that satisfies the policy (size ${size}); retry once the witnesses have cosigned a newer one`,
    );
  // A few requests at once: the log's answer time overlaps, and the log is not flooded.
  for (let i = 0; i < wanted.length; i += FETCH_PARALLEL) {
    const batch = wanted.slice(i, i + FETCH_PARALLEL);
    const got = await Promise.all(batch.map((index) => fetchEntry(index)));
    batch.forEach((index, j) => selected.set(index, got[j]!));
  }

  // Sealed values: each S checked against the commitment of the record that carries it.
  const sealed: Record<string, string> = {};
  const erased: Record<string, string> = {};
  if (open) {
    for (const [index, entry] of selected)
      for (const ref of sealedRefsOf(entry.record)) {
        const hex = ref.$sealed.sha256;
        const s = found.answer.sealed.get(hex);
        const at = found.answer.erased.get(hex);
        if (s !== undefined) {
          try {
            openSealed(ref, s);
          } catch (err) {
            throw new TlogError(
              'SEALED_MISMATCH',
              `entry ${index}: the log's sealed value for commitment ${hex} does not match it: ${(err as Error).message}`,
              { cause: err },
            );
          }
          sealed[hex] = base64Encode(s);
        } else if (at !== undefined) erased[hex] = at.toString();
      }
    for (const at of new Set(Object.values(erased))) {
      const index = BigInt(at);
      if (index < size && !selected.has(index)) selected.set(index, await fetchEntry(index));
    }
  }

  // Registry records of every emitter in the bundle (the operator first: its self-registration is
  // the root of every other key), from the operator's own records. Nothing selected: nothing to add.
  const operatorName = operatorNameFor(checkpoint.origin);
  const emitters = new Set([...selected.values()].map((e) => e.emitter));
  emitters.add(operatorName);
  const operatorRecords =
    selected.size === 0
      ? { indices: [], entries: new Map<bigint, Record<string, unknown>>() }
      : await searchAll(client, { emitter: operatorName }, false);
  for (const index of operatorRecords.indices) {
    if (index >= size || selected.has(index)) continue;
    const r = operatorRecords.entries.get(index)!['record'] as Record<string, unknown> | undefined;
    if (!isRegistryKind(r?.['kind']) || typeof r?.['name'] !== 'string' || !emitters.has(r['name'])) continue;
    const entry = await fetchEntry(index);
    // The bytes decide, not the search answer.
    if (isRegistryKind(entry.record['kind']) && emitters.has(String(entry.record['name'])))
      selected.set(index, entry);
  }

  const indices = [...selected.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const entries: EvidenceBundle['entries'] = [];
  for (const index of indices) {
    const bytes = bytesOf.get(index)!;
    await prove(index, bytes);
    entries.push({
      index: index.toString(),
      entry: base64Encode(bytes),
      proof: proofOf.get(index)!.map(base64Encode),
    });
  }
  return { format: BUNDLE_FORMAT, policy: policyText, checkpoint: note, entries, sealed, erased };
}
