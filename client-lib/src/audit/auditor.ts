/**
 * The auditor behind `vigil audit` (DESIGN.md "Client library and CLI": "downloads the whole log
 * through tiles, recomputes the tree, checks the checkpoints (consistency with the last run), every
 * emitter signature, and every stream").
 *
 * Browser-safe: I/O goes through the LogClient and an AuditStateStorage. Incremental: the state
 * holds the compact range of the audited size (so the tree is extended, not recomputed), the
 * streams' last seq/prev, and the problems found so far. A run reads only the entry bundles and
 * level-0 tiles from the audited size on.
 *
 * State is saved only when the recomputed root equals the signed root of the checkpoint being
 * audited; a run that finds the tree itself broken leaves the state where it was, so every later
 * run fails the same way until an operator acts. *
 * Sealed values (DESIGN.md "Readers and sealed payloads"): with `openSealed` (the client carries a
 * reader token) every sealed ref of every newly audited entry is opened and checked, one
 * `GET /v1/sealed?start&end` per tile (audit/sealed-check.ts). Each such read is itself recorded by the
 * log as an access.read record, which a later run audits like any other entry.
 */
import type { LogClient } from '../client.js';
import { sha256 } from '../crypto.js';
import { base64Decode, base64Encode, bytesEqual } from '../encoding.js';
import { TlogError } from '../errors.js';
import {
  appendLeafHashes,
  emptyCompactRange,
  hashLeaf,
  rootOfCompactRange,
  type CompactRange,
} from '../merkle/index.js';
import { verifyCheckpoint, type Policy } from '../policy/index.js';
import { parseVerifierKey, type VerifierKey } from '../note/index.js';
import { KeyBook, parseOperatorKey, type KeyBookState } from './key-book.js';
import { parseEntryWithRecord, verifyRecordSignature, type Entry } from '../record.js';
import { decodeEntryBundle } from '../tiles/index.js';
import {
  checkErasureClaims,
  erasureInfoOf,
  fetchAndCheckSealed,
  OPERATOR_KINDS,
  sealedRefsOf,
  type ErasureClaim,
  type ErasureInfo,
  type SealedAt,
} from './sealed-check.js';
import { replaceSealed } from '../sealed.js';
import {
  compareToolList,
  streamServerOf,
  toolScopeOf,
  toolsOf,
  type StreamServer,
  type ToolDefinitionState,
} from '../review/tool-definitions.js';
import {
  CheckpointConflictError,
  CheckpointStore,
  type CheckpointStorage,
} from '../checkpoint-store/checkpoint-store.js';

/** Problem codes the auditor reports. Each names an entry index when one is to blame. */
export type AuditProblemCode =
  | 'CHECKPOINT_INVALID'
  | 'CHECKPOINT_ROLLBACK'
  | 'CHECKPOINT_FORK'
  | 'LEAF_HASH_MISMATCH'
  | 'ROOT_MISMATCH'
  | 'ENTRY_MALFORMED'
  | 'EMITTER_UNKNOWN'
  | 'EMITTER_UNREGISTERED'
  | 'EMITTER_REVOKED'
  | 'EMITTER_KEY_MISMATCH'
  | 'EMITTER_KEY_CHANGED'
  | 'OPERATOR_KEY_CHANGED'
  | 'REGISTRY_INVALID'
  | 'SIGNATURE_INVALID'
  | 'SEQ_GAP'
  | 'SEQ_DUPLICATE'
  | 'PREV_MISMATCH'
  | 'STREAM_EMITTER_CHANGED'
  | 'RECORD_AFTER_CLOSE'
  | 'CLOCK_SKEW'
  | 'STREAM_UNCLOSED'
  | 'SEALED_MISMATCH'
  | 'SEALED_MISSING'
  | 'SEALED_ERASURE_UNRECORDED'
  | 'OPERATOR_RECORD_FORGED';

export interface AuditProblem {
  code: AuditProblemCode;
  /** Leaf index (decimal) of the entry to blame, when there is one. */
  index?: string;
  stream?: string;
  message: string;
}

/**
 * Evidence worth a reviewer's look that does not make the log or an emitter wrong, so it does not fail
 * the audit. `TOOL_DEFINITION_CHANGED`: a server changed a tool's description or input schema between
 * two tools/list results (DESIGN.md "Forensic review", "Tool definitions in effect"); `index` is the
 * later result's entry, `fromIndex` the earlier one's.
 */
export interface AuditWarning {
  code: 'TOOL_DEFINITION_CHANGED';
  index: string;
  session: string;
  tool: string;
  fields: string[];
  fromIndex: string;
  /** The earlier result's session, when another one (a stateless server's other exchange). */
  fromSession?: string;
  message: string;
}

/** What the run did with tools/list results (in the entries it checked). */
export interface ToolDefinitionSummary {
  /** tools/list results seen. */
  lists: number;
  /** Of those, opened (or clear) and compared with the server's earlier definitions. */
  checked: number;
  /** Of those, still sealed (no reader token) or erased: their definitions were not checked. */
  sealed: number;
}

/** Per-stream state kept between runs. */
export interface StreamState {
  emitter: string;
  firstIndex: string;
  lastIndex: string;
  lastSeq: number;
  lastHash: string;
  lastTime: string;
  closed: boolean;
}

/** What an audit run keeps between runs (JSON). Version 2 added `keys` (the registry). */
export interface AuditState {
  version: 2;
  origin: string;
  size: string;
  root: string;
  /** Compact range nodes at `size`, base64. */
  range: string[];
  /**
   * Leaf hashes (base64) of the entries in the last, partial bundle at `size`. The next run re-reads
   * that bundle and checks them against what this run saw (an entry altered after it was audited).
   */
  tail?: string[];
  streams: Record<string, StreamState>;
  emitters: Record<string, number>;
  /** The operator trusted, the registry as the tree holds it, keys pinned for older entries. */
  keys: KeyBookState;
  problems: AuditProblem[];
  /** The operator's log.erasure records found in the tree, by index (added with sealed values). */
  erasures?: Record<string, ErasureInfo>;
  /** Erasures the log reported whose log.erasure record lies beyond the audited tree (checked later). */
  erasureClaims?: ErasureClaim[];
  /**
   * The last tool definitions seen per server, as digests (review/tool-definitions.ts), and what each
   * open capture stream reaches (`<emitter>\0<stream>`): a definition changed across two runs is
   * flagged. `toolScopes` lists, per open stream, the scopes that end with it (its sessions, or the
   * stream itself); they are forgotten at its stream.close, so the state grows with the servers and
   * the open streams, not with every session the log ever held.
   */
  tools?: ToolDefinitionState;
  toolServers?: Record<string, StreamServer>;
  toolScopes?: Record<string, string[]>;
  /** Every warning found so far. */
  warnings?: AuditWarning[];
}

/**
 * Checks one Ed25519 signature (strict rule: `isStrictEd25519Input`, then the equation) and resolves
 * true when it verifies. Node callers inject one that runs on the threadpool
 * (`workerPoolSignatureVerifier` in audit/node-verifier.ts) so signatures are checked on every core.
 */
export type SignatureVerifier = (
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
) => Promise<boolean>;

/** A problem now, or one that is known once a signature check finishes (undefined: none). */
type PendingProblem = AuditProblem | Promise<AuditProblem | AuditProblem[] | undefined>;

/** Tiles whose signature checks may be in flight at once when a SignatureVerifier is given. */
const TILES_IN_FLIGHT = 4;
/** Tiles (entry bundle and level-0 tile) fetched ahead of the one being checked. */
const TILES_AHEAD = 3n;

/** Where the audit state lives (the CLI uses a file in --state). */
export interface AuditStateStorage extends CheckpointStorage {
  loadState(): Promise<AuditState | undefined>;
  saveState(state: AuditState): Promise<void>;
}

export interface AuditOptions {
  client: LogClient;
  policy: Policy;
  /**
   * Emitter name -> vkey, an independent list trusted instead of the log's for signatures (and for
   * the operator's key when it lists the operator). Undefined: keys come from the tree's registry,
   * and for entries older than the registry from /v1/log (pinned in the state at first use).
   */
  emitterKeys?: Map<string, string>;
  /** The operator emitter's vkey, given independently: the root of trust for the registry. */
  operatorKey?: string;
  storage: AuditStateStorage;
  /** Largest tolerated |time - received| in ms for a record that claims to be from the future; default 5 min. */
  maxSkewMs?: number;
  /** Unclosed streams are problems (else only listed). */
  failOnUnclosed?: boolean;
  onProgress?: (done: bigint, total: bigint) => void;
  /**
   * Checks emitter signatures asynchronously (several tiles in flight); problems are still reported
   * in entry order. Undefined: each signature is checked inline by the installed crypto provider.
   */
  verifySignature?: SignatureVerifier;
  /**
   * Opens and checks every sealed value of the audited entries (the client needs a reader token):
   * one `GET /v1/sealed?start&end` per tile. Undefined or false: sealed values are not opened.
   */
  openSealed?: boolean;
  /**
   * Called with every entry this run reads past the audited size, in index order, as it is read:
   * nothing about it is verified until the run's report has no new problem (streams out,
   * cli/follow.ts, emits them only then).
   */
  onEntry?: (index: bigint, entry: Entry) => void;
  /**
   * With `openSealed`: called with the sealed values of those entries that opened and matched their
   * commitment (S by hex commitment) and the erasures the log reported, as each tile's check ends.
   */
  onSealed?: (values: ReadonlyMap<string, Uint8Array>, claims: readonly ErasureClaim[]) => void;
}

/** What the run did with sealed values. */
export interface SealedSummary {
  /** Whether sealed values were opened (a reader token was given). */
  opened: boolean;
  /** Sealed refs in the entries this run checked. */
  values: number;
  /** Of those, opened and found to match their commitment. */
  matched: number;
  /** Of those, reported erased by the log. */
  erased: number;
}

export interface AuditReport {
  origin: string;
  size: string;
  root: string;
  previousSize: string;
  entriesChecked: string;
  emitters: Record<string, number>;
  streams: {
    total: number;
    closed: number;
    open: { stream: string; emitter: string; lastIndex: string; lastSeq: number }[];
  };
  /** Problems found in this run. */
  newProblems: AuditProblem[];
  /** Every problem, this run's and earlier runs'. */
  problems: AuditProblem[];
  ok: boolean;
  sealed: SealedSummary;
  /** Every log.erasure record of the operator in the audited tree, in index order. */
  erasures: Omit<ErasureInfo, 'commitments' | 'commitmentsBlob'>[];
  /** Warnings found in this run, and every warning so far; neither makes `ok` false. */
  newWarnings: AuditWarning[];
  warnings: AuditWarning[];
  toolDefinitions: ToolDefinitionSummary;
}

const TREE_PROBLEMS = new Set<AuditProblemCode>([
  'CHECKPOINT_INVALID',
  'CHECKPOINT_ROLLBACK',
  'CHECKPOINT_FORK',
  'LEAF_HASH_MISMATCH',
  'ROOT_MISMATCH',
]);

function problemKey(p: AuditProblem): string {
  return `${p.code}/${p.index ?? ''}/${p.stream ?? ''}`;
}

function rangeToState(r: CompactRange): string[] {
  return r.nodes.map((n) => base64Encode(n));
}

/**
 * Runs one audit pass against the log's current checkpoint and returns the report. Throws (exit 2
 * territory) only when it cannot run: network errors, a malformed state file, a policy that does not
 * match the log. Everything the log did wrong is a problem in the report.
 */
export async function runAudit(options: AuditOptions): Promise<AuditReport> {
  const { client, policy, storage } = options;
  const maxSkewMs = options.maxSkewMs ?? 5 * 60_000;
  const openSealed = options.openSealed === true;
  const sealed: SealedSummary = { opened: openSealed, values: 0, matched: 0, erased: 0 };
  const state = await storage.loadState();
  const newProblems: AuditProblem[] = [];
  const newWarnings: AuditWarning[] = [];
  const toolDefinitions: ToolDefinitionSummary = { lists: 0, checked: 0, sealed: 0 };
  const problem = (p: AuditProblem): void => {
    newProblems.push(p);
  };

  const note = await client.checkpoint();
  let checkpoint;
  try {
    checkpoint = verifyCheckpoint(note, policy).checkpoint;
  } catch (err) {
    if (err instanceof TlogError) {
      return finish(state, [
        {
          code: 'CHECKPOINT_INVALID',
          message: `the log's checkpoint does not verify under the policy: ${err.message}`,
        },
      ]);
    }
    throw err;
  }
  const origin = checkpoint.origin;
  if (state !== undefined && state.origin !== origin) {
    throw new TlogError(
      'ORIGIN_MISMATCH',
      `state is for origin ${state.origin}, log presents ${origin}: use another --state directory`,
    );
  }

  // Rollback / fork against what earlier runs (and anything sharing the store) verified.
  const store = new CheckpointStore(policy, storage);
  try {
    await store.update(note, (level, index, width) => client.readTile(level, index, width));
  } catch (err) {
    if (err instanceof CheckpointConflictError) {
      return finish(state, [
        {
          code: err.kind === 'rollback' ? 'CHECKPOINT_ROLLBACK' : 'CHECKPOINT_FORK',
          message: err.message,
        },
      ]);
    }
    throw err;
  }

  const info = await client.logInfo();
  // The most bytes of S the log sends in one range answer, when it says (ranges are split to fit).
  const listedBudget = info.limits.sealedMaxBytes;
  const sealedBudget =
    typeof listedBudget === 'number' && Number.isSafeInteger(listedBudget) && listedBudget > 0
      ? listedBudget
      : undefined;
  const known = new Set((state?.problems ?? []).map(problemKey));
  /** A standing problem (found again every run while it lasts) is new only the first time. */
  const standing = (p: AuditProblem): void => {
    if (!known.has(problemKey(p))) problem(p);
  };
  const keyState: KeyBookState = structuredClone(state?.keys ?? { registry: {}, legacyKeys: {} });
  trustOperator(keyState, options, info.operator).forEach(standing);
  const book = new KeyBook(
    keyState,
    options.emitterKeys,
    new Map(info.emitters.map((e) => [e.name, e.vkey])),
  );
  const startSize = state === undefined ? 0n : BigInt(state.size);
  let range: CompactRange =
    state === undefined
      ? emptyCompactRange()
      : { size: startSize, nodes: state.range.map((n) => base64Decode(n)) };
  const streams: Record<string, StreamState> = structuredClone(state?.streams ?? {});
  const emitters: Record<string, number> = { ...(state?.emitters ?? {}) };
  const erasures: Record<string, ErasureInfo> = structuredClone(state?.erasures ?? {});
  const claims: ErasureClaim[] = [...(state?.erasureClaims ?? [])];
  const toolState: ToolDefinitionState = structuredClone(state?.tools ?? {});
  const toolStreams: ToolStreams = {
    servers: new Map(Object.entries(state?.toolServers ?? {})),
    scopes: new Map(Object.entries(state?.toolScopes ?? {}).map(([k, v]) => [k, new Set(v)])),
  };
  const size = checkpoint.size;
  const checkSignature = signatureChecker(options.verifySignature);
  // Tiles processed but not yet reported: their problems (some waiting for a signature check) and
  // the audited size after them. Reported strictly in order, so problems stay in entry order.
  // `after` runs once the tile's problems are known (its sealed values opened), in tile order.
  const inFlight: { problems: PendingProblem[]; done: bigint; after?: () => void }[] = [];
  const window = options.verifySignature === undefined ? 0 : TILES_IN_FLIGHT;
  const report = async (keep: number): Promise<void> => {
    while (inFlight.length > keep) {
      const tile = inFlight.shift()!;
      for (const p of (await Promise.all(tile.problems)).flat()) if (p !== undefined) problem(p);
      tile.after?.();
      options.onProgress?.(tile.done, size);
    }
  };
  let tail: string[] = size % 256n === 0n ? [] : startSize === size ? (state?.tail ?? []) : [];

  // Fetches run TILES_AHEAD tiles ahead of the checks, so the log's answer time overlaps our work.
  const widthOf = (tile: bigint): number => Number(size - tile * 256n >= 256n ? 256n : size - tile * 256n);
  const fetched = new Map<bigint, Promise<[Uint8Array, Uint8Array]>>();
  // A read that fails names what it was reading (the audit cannot go on without it).
  const naming =
    (what: string) =>
    (err: unknown): never => {
      throw new Error(`${what} could not be read: ${(err as Error).message}`, { cause: err });
    };
  const fetchAhead = (from: bigint): void => {
    for (let k = from; k < from + TILES_AHEAD && k * 256n < size; k++) {
      if (fetched.has(k)) continue;
      const w = widthOf(k);
      const entriesOf = `entries ${k * 256n}..${k * 256n + BigInt(w) - 1n}`;
      const p = Promise.all([
        client.readEntryBundle(k, w).catch(naming(`entry bundle ${k} (${entriesOf})`)),
        client.readTile(0, k, w).catch(naming(`level-0 tile 0/${k} (leaf hashes of ${entriesOf})`)),
      ]);
      p.catch(() => undefined); // awaited below in order; an early return must not leave it unhandled
      fetched.set(k, p);
    }
  };
  for (let tile = startSize / 256n; startSize < size && tile * 256n < size; tile++) {
    const width = widthOf(tile);
    fetchAhead(tile);
    let bundleBytes: Uint8Array;
    let tileBytes: Uint8Array;
    try {
      [bundleBytes, tileBytes] = await fetched.get(tile)!;
    } catch (err) {
      // The run ends here: the signature checks still in flight for earlier tiles are dropped
      // (their verifier is closed next), never left to fail unhandled.
      for (const t of inFlight) for (const p of t.problems) void Promise.resolve(p).catch(() => undefined);
      throw err;
    }
    fetched.delete(tile);
    const tileProblems: PendingProblem[] = [];
    const tileProblem = (p: PendingProblem): void => {
      tileProblems.push(p);
    };
    let entries: Uint8Array[];
    try {
      entries = decodeEntryBundle(bundleBytes);
      if (entries.length !== width)
        throw new TlogError('BUNDLE_MALFORMED', `bundle has ${entries.length} entries, want ${width}`);
    } catch (err) {
      await report(0);
      problem({
        code: 'ENTRY_MALFORMED',
        index: (tile * 256n).toString(),
        message: `entry bundle ${tile} (width ${width}) is malformed: ${(err as Error).message}`,
      });
      return finish(state, newProblems);
    }
    const leafHashes: Uint8Array[] = [];
    const refs: SealedAt[] = [];
    /** stream.open records and tools/list results: what tool definitions are compared from. */
    const toolRecords: { index: bigint; entry: Entry }[] = [];
    let tileValues: Map<string, unknown> | undefined;
    const seen = tile === startSize / 256n ? (state?.tail ?? []) : [];
    for (let i = 0; i < width; i++) {
      const index = tile * 256n + BigInt(i);
      if (index < startSize) {
        const before = seen[i];
        if (before !== undefined && base64Encode(hashLeaf(entries[i]!)) !== before) {
          tileProblem({
            code: 'LEAF_HASH_MISMATCH',
            index: index.toString(),
            message: `entry ${index} changed since the last audit: the log now serves other bytes for it`,
          });
        }
        continue;
      }
      const bytes = entries[i]!;
      const leafHash = hashLeaf(bytes);
      if (!bytesEqual(leafHash, tileBytes.subarray(i * 32, i * 32 + 32))) {
        tileProblem({
          code: 'LEAF_HASH_MISMATCH',
          index: index.toString(),
          message: `entry ${index} does not hash to the leaf hash in tile 0/${tile}: the entry or the tree was altered`,
        });
      }
      leafHashes.push(leafHash);
      const entry = checkEntry(index, bytes, book, checkSignature, streams, emitters, maxSkewMs, tileProblem);
      if (entry !== undefined) {
        options.onEntry?.(index, entry);
        checkOperatorRecord(index, entry, book, erasures, tileProblem);
        const keep = isToolRecord(entry.record);
        if (keep) toolRecords.push({ index, entry });
        for (const ref of sealedRefsOf(entry.record)) refs.push({ index, ref, ...(keep ? { keep } : {}) });
      }
    }
    sealed.values += refs.length;
    if (openSealed && refs.length > 0) {
      // One request for the tile's audited entries; its problems are reported in entry order with
      // the tile's, and a failed read ends the run like a failed tile read.
      const from = startSize > tile * 256n ? startSize : tile * 256n;
      const keep = options.onSealed !== undefined;
      const check = fetchAndCheckSealed(
        client,
        from,
        tile * 256n + BigInt(width),
        refs,
        sealedBudget,
        keep,
      ).then(
        (c) => {
          if (c.bytes !== undefined) options.onSealed?.(c.bytes, c.claims);
          sealed.matched += c.opened;
          sealed.erased += c.claims.length;
          claims.push(...c.claims);
          tileValues = c.values;
          return c.problems;
        },
        naming(`sealed values of entries ${from}..${tile * 256n + BigInt(width) - 1n}`),
      );
      check.catch(() => undefined); // awaited in order by report(); an early end must not leave it unhandled
      tileProblem(check);
    }
    range = appendLeafHashes(range, leafHashes);
    if (tile === (size - 1n) / 256n && size % 256n !== 0n) {
      tail = [
        ...seen.slice(0, Number(startSize > tile * 256n ? startSize - tile * 256n : 0n)),
        ...leafHashes.map((h) => base64Encode(h)),
      ];
    }
    const after =
      toolRecords.length === 0
        ? undefined
        : () =>
            newWarnings.push(
              ...compareToolRecords(toolRecords, tileValues, toolState, toolStreams, toolDefinitions),
            );
    inFlight.push({ problems: tileProblems, done: range.size, ...(after !== undefined ? { after } : {}) });
    await report(window);
  }
  await report(0);
  const erasureCheck = await checkErasureClaims(client, claims, erasures, size);
  erasureCheck.problems.forEach(problem);
  book.compareServed(new Map(info.emitters.map((e) => [e.name, e.revoked === true]))).forEach(standing);

  const root = rootOfCompactRange(range);
  if (!bytesEqual(root, checkpoint.root)) {
    problem({
      code: 'ROOT_MISMATCH',
      message: `entries 0..${size - 1n} give root ${base64Encode(root)}, the signed checkpoint says ${base64Encode(checkpoint.root)}`,
    });
  }
  const next: AuditState = {
    version: 2,
    origin,
    size: size.toString(),
    root: base64Encode(checkpoint.root),
    range: rangeToState(range),
    tail,
    streams,
    emitters,
    keys: keyState,
    problems: state?.problems ?? [],
    erasures,
    erasureClaims: erasureCheck.pending,
    tools: toolState,
    toolServers: Object.fromEntries(toolStreams.servers),
    toolScopes: Object.fromEntries([...toolStreams.scopes].map(([k, v]) => [k, [...v]])),
    warnings: [...(state?.warnings ?? []), ...newWarnings],
  };
  return finish(next, newProblems, startSize);

  async function finish(
    s: AuditState | undefined,
    found: AuditProblem[],
    previousSize = startSizeOf(s),
  ): Promise<AuditReport> {
    const treeBroken = found.some((p) => TREE_PROBLEMS.has(p.code));
    const known = new Set((s?.problems ?? []).map(problemKey));
    const merged = [...(s?.problems ?? []), ...found.filter((p) => !known.has(problemKey(p)))];
    if (s !== undefined && !treeBroken && s.origin !== '') {
      await storage.saveState({ ...s, problems: merged });
    }
    // The operator emitter's stream lives as long as the log: never listed as unclosed.
    const operatorName = s?.keys?.operator?.name;
    const streamList = Object.entries(s?.streams ?? {}).filter(([, st]) => st.emitter !== operatorName);
    const open = streamList
      .filter(([, st]) => !st.closed)
      .map(([stream, st]) => ({ stream, emitter: st.emitter, lastIndex: st.lastIndex, lastSeq: st.lastSeq }));
    const unclosed: AuditProblem[] =
      options.failOnUnclosed === true
        ? open.map((o) => ({
            code: 'STREAM_UNCLOSED' as const,
            index: o.lastIndex,
            stream: o.stream,
            message: `stream ${o.stream} of ${o.emitter} has no stream.close (last seq ${o.lastSeq} at entry ${o.lastIndex})`,
          }))
        : [];
    const all = [...merged, ...unclosed];
    return {
      origin: s?.origin ?? '',
      size: s?.size ?? '0',
      root: s?.root ?? '',
      previousSize: previousSize.toString(),
      entriesChecked: (BigInt(s?.size ?? '0') - previousSize).toString(),
      emitters: s?.emitters ?? {},
      streams: { total: streamList.length, closed: streamList.length - open.length, open },
      newProblems: [...found, ...unclosed],
      problems: all,
      ok: all.length === 0,
      sealed,
      newWarnings: s === undefined || treeBroken ? [] : newWarnings,
      warnings: s?.warnings ?? [],
      toolDefinitions,
      erasures: Object.values(s?.erasures ?? {})
        .sort((a, b) => (BigInt(a.index) < BigInt(b.index) ? -1 : 1))
        .map(({ index, reason, by, target, count, time }) => ({ index, reason, by, target, count, time })),
    };
  }
}

/**
 * Chooses the operator key this run trusts: `--operator-key`, else the one earlier runs pinned, else
 * the independent list's key for the operator's name, else the one /v1/log presents (first use).
 * Returns the problems: a trusted operator the log no longer presents, a flag that contradicts the
 * pinned key.
 */
function trustOperator(
  keys: KeyBookState,
  options: AuditOptions,
  presented: { name: string; vkey: string } | undefined,
): AuditProblem[] {
  const problems: AuditProblem[] = [];
  const given = options.operatorKey !== undefined ? parseOperatorKey(options.operatorKey) : undefined;
  const pinned = keys.operator;
  if (given !== undefined && pinned !== undefined && given.vkey !== pinned.vkey) {
    problems.push({
      code: 'OPERATOR_KEY_CHANGED',
      message: `the operator key given (${given.vkey}) is not the one earlier runs trusted (${pinned.vkey})`,
    });
  }
  const listed = presented !== undefined ? options.emitterKeys?.get(presented.name) : undefined;
  const trusted =
    given ??
    pinned ??
    (listed !== undefined && presented !== undefined ? { name: presented.name, vkey: listed } : presented);
  if (trusted !== undefined && (presented?.vkey !== trusted.vkey || presented.name !== trusted.name)) {
    problems.push({
      code: 'OPERATOR_KEY_CHANGED',
      message:
        presented === undefined
          ? `the log presents no operator emitter; the trusted operator key is ${trusted.vkey}`
          : `the log presents operator key ${presented.vkey}; the trusted operator key is ${trusted.vkey}`,
    });
  }
  if (trusted !== undefined) keys.operator = trusted;
  return problems;
}

/** What the tool-definition check keeps per open stream (`<emitter>\0<stream>`). */
interface ToolStreams {
  /** The server a capture stream reaches (only streams whose stream.open names one). */
  servers: Map<string, StreamServer>;
  /** The scopes that end with the stream: its sessions', or its own. */
  scopes: Map<string, Set<string>>;
}

/** A record the tool-definition check reads: a stream's start or end, or a tools/list result. */
function isToolRecord(record: Record<string, unknown>): boolean {
  return (
    record['kind'] === 'stream.open' ||
    record['kind'] === 'stream.close' ||
    (record['kind'] === 'mcp.message' &&
      record['messageType'] === 'result' &&
      record['mcp.method.name'] === 'tools/list')
  );
}

/**
 * Compares the tools/list results of one tile (in entry order) with the definitions seen before, each
 * opened with the values the sealed check kept (`values`; undefined: nothing opened). Updates `state`,
 * `servers` and `summary`; returns the changes as warnings.
 */
function compareToolRecords(
  records: readonly { index: bigint; entry: Entry }[],
  values: ReadonlyMap<string, unknown> | undefined,
  state: ToolDefinitionState,
  streams: ToolStreams,
  summary: ToolDefinitionSummary,
): AuditWarning[] {
  const warnings: AuditWarning[] = [];
  for (const { index, entry } of records) {
    const opened = replaceSealed(entry.record, (ref) =>
      values?.has(ref.$sealed.sha256) === true ? { value: values.get(ref.$sealed.sha256) } : undefined,
    ) as Record<string, unknown>;
    const streamKey = `${entry.emitter}\u0000${String(entry.record['stream'])}`;
    if (entry.record['kind'] === 'stream.open') {
      const server = streamServerOf(opened);
      if (server.upstream !== undefined || server.command !== undefined)
        streams.servers.set(streamKey, server);
      continue;
    }
    if (entry.record['kind'] === 'stream.close') {
      // Nothing of the stream follows its close: its sessions' definitions are done with.
      for (const scope of streams.scopes.get(streamKey) ?? []) delete state[scope];
      streams.scopes.delete(streamKey);
      streams.servers.delete(streamKey);
      continue;
    }
    summary.lists++;
    const message = opened['message'];
    const tools = toolsOf(
      typeof message === 'object' && message !== null
        ? (message as Record<string, unknown>)['result']
        : undefined,
    );
    if (tools === undefined) {
      summary.sealed++;
      continue;
    }
    summary.checked++;
    const session = typeof entry.record['session'] === 'string' ? entry.record['session'] : '';
    const scope = toolScopeOf(entry.emitter, entry.record, streams.servers);
    if (scope.startsWith('session:') || scope.startsWith('stream:')) {
      let ending = streams.scopes.get(streamKey);
      if (ending === undefined) streams.scopes.set(streamKey, (ending = new Set()));
      ending.add(scope);
    }
    for (const c of compareToolList(state, scope, session, index.toString(), tools)) {
      warnings.push({
        code: 'TOOL_DEFINITION_CHANGED',
        index: c.toIndex,
        session: c.session,
        tool: c.tool,
        fields: c.fields,
        fromIndex: c.fromIndex,
        ...(c.fromSession !== undefined ? { fromSession: c.fromSession } : {}),
        message:
          `session ${c.session}: tool ${JSON.stringify(c.tool)} changed its ${c.fields.join(' and ')} ` +
          `between entries ${c.fromIndex} and ${c.toIndex}` +
          (c.fromSession !== undefined ? ` (the earlier definition in ${c.fromSession})` : ''),
      });
    }
  }
  return warnings;
}

function startSizeOf(s: AuditState | undefined): bigint {
  return s === undefined ? 0n : BigInt(s.size);
}

/**
 * Checks an entry's emitter signature over the record's canonical bytes (sliced from the entry):
 * its problem, if any, maybe once a check finishes.
 */
type SignatureCheck = (
  entry: Entry,
  record: Uint8Array,
  index: bigint,
  vkey: string,
) => PendingProblem | undefined;

/**
 * The signature check of `checkEntry` with the key the KeyBook chose: SIGNATURE_INVALID. Without a
 * verifier this is `verifyRecordSignature` inline; with one, the same steps (key type 0x01, canonical
 * base64, 64 bytes, over the record's canonical bytes) with the equation checked by the verifier.
 */
function signatureChecker(verifier: SignatureVerifier | undefined): SignatureCheck {
  const parsed = new Map<string, VerifierKey | undefined>();
  const keyOf = (vkey: string): VerifierKey | undefined => {
    if (!parsed.has(vkey)) {
      let key: VerifierKey | undefined;
      try {
        key = parseVerifierKey(vkey);
      } catch {
        key = undefined;
      }
      parsed.set(vkey, key);
    }
    return parsed.get(vkey);
  };
  return (entry, record, index, vkey) => {
    const invalid = (): AuditProblem => ({
      code: 'SIGNATURE_INVALID',
      index: index.toString(),
      message: `entry ${index}: the record's signature does not verify with ${entry.emitter}'s key`,
    });
    const key = keyOf(vkey);
    if (verifier === undefined || key === undefined || key.type !== 1) {
      try {
        verifyRecordSignature(entry.record, entry.sig, key ?? vkey);
        return undefined;
      } catch {
        return invalid();
      }
    }
    let signature: Uint8Array;
    try {
      signature = base64Decode(entry.sig);
    } catch {
      return invalid();
    }
    if (signature.length !== 64) return invalid();
    return verifier(signature, record, key.publicKey).then((ok) => (ok ? undefined : invalid()));
  };
}

/**
 * Records only the operator emitter may sign (access.read, log.erasure, hold.*, retention.set,
 * reader.*): one by another emitter is OPERATOR_RECORD_FORGED. The operator's log.erasure records
 * are kept (by index) for the erasure checks and the report.
 */
function checkOperatorRecord(
  index: bigint,
  entry: Entry,
  book: KeyBook,
  erasures: Record<string, ErasureInfo>,
  problem: (p: PendingProblem) => void,
): void {
  const kind = entry.record.kind;
  if (typeof kind !== 'string' || !OPERATOR_KINDS.has(kind)) return;
  const operator = book.state.operator?.name;
  if (entry.emitter !== operator) {
    problem({
      code: 'OPERATOR_RECORD_FORGED',
      index: index.toString(),
      message: `entry ${index}: a ${kind} record by ${entry.emitter}; only the log's operator emitter${operator === undefined ? '' : ` (${operator})`} signs them`,
    });
    return;
  }
  if (kind !== 'log.erasure') return;
  const info = erasureInfoOf(index, entry.record, entry.received);
  if (typeof info === 'string') {
    problem({ code: 'ENTRY_MALFORMED', index: index.toString(), message: `entry ${index}: ${info}` });
    return;
  }
  erasures[info.index] = info;
}

/**
 * Checks one entry: shape, emitter registration and signature, stream continuity, clock skew.
 * Returns the parsed entry (undefined when it does not parse).
 */
function checkEntry(
  index: bigint,
  bytes: Uint8Array,
  book: KeyBook,
  checkSignature: SignatureCheck,
  streams: Record<string, StreamState>,
  emitters: Record<string, number>,
  maxSkewMs: number,
  problem: (p: PendingProblem) => void,
): Entry | undefined {
  const at = index.toString();
  let entry: Entry;
  let record: Uint8Array;
  try {
    ({ entry, record } = parseEntryWithRecord(bytes));
  } catch (err) {
    problem({
      code: 'ENTRY_MALFORMED',
      index: at,
      message: `entry ${index} is malformed: ${(err as Error).message}`,
    });
    return;
  }
  emitters[entry.emitter] = (emitters[entry.emitter] ?? 0) + 1;
  if (book.isRegistryRecord(entry)) {
    book.applyRegistryRecord(entry, index).forEach(problem);
  } else {
    const decision = book.decide(entry.emitter, index);
    if (decision.problem !== undefined) problem(decision.problem);
    if (decision.vkey !== undefined) {
      const signatureProblem = checkSignature(entry, record, index, decision.vkey);
      if (signatureProblem !== undefined) problem(signatureProblem);
    } else if (decision.problem === undefined) {
      problem({
        code: 'EMITTER_UNKNOWN',
        index: at,
        message: `entry ${index} names emitter ${entry.emitter}, whose key is not known`,
      });
    }
  }
  const r = entry.record;
  const stream = r.stream;
  const seq = r.seq;
  if (typeof stream !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    problem({
      code: 'ENTRY_MALFORMED',
      index: at,
      message: `entry ${index}: record lacks a stream or a seq`,
    });
    return entry;
  }
  const time = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
  const received = Date.parse(entry.received);
  if (Number.isNaN(time) || Number.isNaN(received)) {
    problem({
      code: 'ENTRY_MALFORMED',
      index: at,
      stream,
      message: `entry ${index}: time or received is not RFC 3339`,
    });
  } else if (time - received > maxSkewMs) {
    // A record from the future: the emitter clock is ahead. (Late records are normal: spooled
    // records are shipped after a log outage.)
    problem({
      code: 'CLOCK_SKEW',
      index: at,
      stream,
      message: `entry ${index}: emitter time ${r.time as string} is ${Math.round((time - received) / 1000)} s after the log received it`,
    });
  }
  // recordHash(r): the base64 SHA-256 of the record's canonical bytes.
  const hash = base64Encode(sha256(record));
  const s = streams[stream];
  if (s === undefined) {
    if (seq !== 0) {
      problem({
        code: 'SEQ_GAP',
        index: at,
        stream,
        message: `entry ${index}: stream ${stream} starts at seq ${seq}; seq 0..${seq - 1} are missing`,
      });
    } else if (r.prev !== undefined) {
      problem({
        code: 'PREV_MISMATCH',
        index: at,
        stream,
        message: `entry ${index}: seq 0 of stream ${stream} has a prev`,
      });
    }
    streams[stream] = {
      emitter: entry.emitter,
      firstIndex: at,
      lastIndex: at,
      lastSeq: seq,
      lastHash: hash,
      lastTime: typeof r.time === 'string' ? r.time : '',
      closed: r.kind === 'stream.close',
    };
    return entry;
  }
  if (s.emitter !== entry.emitter) {
    problem({
      code: 'STREAM_EMITTER_CHANGED',
      index: at,
      stream,
      message: `entry ${index}: stream ${stream} began with emitter ${s.emitter}, now ${entry.emitter}`,
    });
  }
  if (s.closed) {
    problem({
      code: 'RECORD_AFTER_CLOSE',
      index: at,
      stream,
      message: `entry ${index}: stream ${stream} continues after stream.close at entry ${s.lastIndex}`,
    });
  }
  if (seq <= s.lastSeq) {
    problem({
      code: 'SEQ_DUPLICATE',
      index: at,
      stream,
      message: `entry ${index}: stream ${stream} seq ${seq} again (already at seq ${s.lastSeq}, entry ${s.lastIndex})`,
    });
    return entry;
  }
  if (seq > s.lastSeq + 1) {
    problem({
      code: 'SEQ_GAP',
      index: at,
      stream,
      message: `entry ${index}: stream ${stream} jumps from seq ${s.lastSeq} (entry ${s.lastIndex}) to ${seq}; ${seq - s.lastSeq - 1} record(s) missing`,
    });
  } else if (r.prev !== s.lastHash) {
    problem({
      code: 'PREV_MISMATCH',
      index: at,
      stream,
      message: `entry ${index}: prev of stream ${stream} seq ${seq} does not match seq ${s.lastSeq}`,
    });
  }
  const prevTime = Date.parse(s.lastTime);
  if (!Number.isNaN(prevTime) && !Number.isNaN(time) && prevTime - time > maxSkewMs) {
    problem({
      code: 'CLOCK_SKEW',
      index: at,
      stream,
      message: `entry ${index}: stream ${stream} time goes back ${Math.round((prevTime - time) / 1000)} s from seq ${s.lastSeq}`,
    });
  }
  s.lastIndex = at;
  s.lastSeq = seq;
  s.lastHash = hash;
  if (typeof r.time === 'string') s.lastTime = r.time;
  if (r.kind === 'stream.close') s.closed = true;
  return entry;
}
