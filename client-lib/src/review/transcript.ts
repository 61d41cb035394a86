/**
 * `vigil transcript <session>`: a session in log order, each request beside its response, and the tool
 * definitions in effect for every `tools/call` (DESIGN.md "Forensic review"). Pure and browser-safe:
 * the caller fetched, verified and opened the records (records.ts); nothing here hides a failure.
 */
import { str, type OpenedRecord } from './records.js';
import {
  compareToolList,
  streamServerOf,
  toolScopeOf,
  toolsOf,
  type StreamServer,
  type ToolChange,
  type ToolDefinitionState,
} from './tool-definitions.js';

export type { ToolChange } from './tool-definitions.js';

/** One record of a transcript line, with both clocks and its verification. */
export interface TranscriptSide {
  index: string;
  emitter: string;
  received: string;
  time: string;
  /** Receipt verified against the policy. */
  verified: boolean;
  /** Why the receipt did not verify, or which sealed values failed to open against their commitment. */
  failure?: string;
  /** The JSON-RPC message as logged, with every value that opened in place of its commitment. */
  message?: unknown;
  /** Sealed paths not opened: `[sealed]` (no token), `[erased by entry N]`, FAILED or MISSING. */
  notOpened: string[];
  /** For records other than messages (stderr line, process start and exit): their own fields, opened. */
  fields?: Record<string, unknown>;
  /**
   * Who sent it, as the emitter recorded it (a message's `principal`, opened where a reader token
   * opened its claims): the OS user and process for stdio, the validated token's claims over HTTP.
   */
  principal?: unknown;
}

/** Fields every record or capture record has, left out of `fields`. */
const ENVELOPE = new Set(['v', 'stream', 'seq', 'prev', 'time', 'kind', 'session', 'transport', 'direction']);

export interface TranscriptItem {
  /** `call`: a request with (or without) its response; else a lone record. */
  type: 'call' | 'notification' | 'response' | 'stderr' | 'process' | 'other';
  kind: string;
  direction?: string;
  method?: string;
  tool?: string;
  request?: TranscriptSide;
  response?: TranscriptSide;
  /** The record itself for lone records. */
  record?: TranscriptSide;
  /** The response's JSON-RPC error (opened), when it is one. */
  error?: unknown;
  /** Response time minus request time on the log's clock, in ms. */
  latencyMs?: number;
  /**
   * For a tools/call: the tools/list result in effect, the newest from the same server before the call
   * (review/tool-definitions.ts); `session` names its session when that is another one (stateless);
   * `verified` is false when that result's receipt or sealed values did not verify.
   */
  definitions?: {
    index: string;
    definition?: unknown;
    sealed: boolean;
    session?: string;
    verified: boolean;
  };
  /** Tools whose definition changed in this tools/list result (on a tools/list call item). */
  toolChanges?: ToolChange[];
}

export interface Transcript {
  session: string;
  items: TranscriptItem[];
  /**
   * Every tool definition that changed, from the same server as the session's records, up to its last
   * record (for a stateful session: during the session).
   */
  toolChanges: ToolChange[];
  /** Records that failed verification or whose sealed values failed to open. */
  failed: number;
}

function side(r: OpenedRecord): TranscriptSide {
  const bad = r.sealed.filter((v) => v.state === 'failed' || v.state === 'missing');
  const failures = [
    ...(r.failure !== undefined ? [`receipt: ${r.failure}`] : []),
    ...bad.map((v) => `${v.path}: ${v.state === 'failed' ? `FAILED: ${v.error ?? ''}` : 'MISSING'}`),
    ...(r.wire !== undefined && !r.wire.opened && r.wire.why.includes('FAILED')
      ? [`message: ${r.wire.why}`]
      : []),
  ];
  return {
    index: r.index.toString(),
    emitter: r.emitter,
    received: r.received,
    time: str(r.record, 'time') ?? '',
    verified: r.failure === undefined,
    ...(failures.length > 0 ? { failure: failures.join('; ') } : {}),
    ...(r.opened['message'] !== undefined ? { message: r.opened['message'] } : {}),
    ...(r.record['kind'] === 'mcp.message' && r.opened['principal'] !== undefined
      ? { principal: r.opened['principal'] }
      : {}),
    ...(r.record['kind'] !== 'mcp.message'
      ? { fields: Object.fromEntries(Object.entries(r.opened).filter(([k]) => !ENVELOPE.has(k))) }
      : {}),
    notOpened: [
      ...r.sealed
        .filter((v) => v.state !== 'opened')
        .map((v) =>
          v.state === 'sealed'
            ? `${v.path}: [sealed]`
            : v.state === 'erased'
              ? `${v.path}: [erased by entry ${v.erasure ?? '?'}]`
              : `${v.path}: ${v.state.toUpperCase()}`,
        ),
      ...(r.wire !== undefined && !r.wire.opened ? [`message: ${r.wire.why}`] : []),
    ],
  };
}

function member(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)[key]
    : undefined;
}

const correlationKey = (r: OpenedRecord): string | undefined => {
  const c = r.record['correlation'];
  const requester = member(c, 'requester');
  const id = member(c, 'id');
  if (typeof requester !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return undefined;
  return `${r.emitter}\u0000${requester}\u0000${typeof id}\u0000${String(id)}`;
};

/**
 * The transcript of `session` from its records (any order; sorted by index). Requests and responses are
 * joined by (emitter, requester, JSON-RPC id with its type); a response without its request stands
 * alone. Every record keeps its verification state: a FAILED record is shown, never dropped.
 *
 * `records` may hold records of other sessions (the tools/list results of the same stateless server,
 * its `stream.open`): they count for the tool definitions in effect (review/tool-definitions.ts) and
 * are not shown.
 */
export function buildTranscript(session: string, records: readonly OpenedRecord[]): Transcript {
  const sorted = [...records].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  const items: TranscriptItem[] = [];
  const open = new Map<string, TranscriptItem>();
  /** What each emitter's stream reaches, from its stream.open (stateless scopes). */
  const servers = new Map<string, StreamServer>();
  /** The newest tools/list result per scope, and the definitions last seen per scope. */
  const lists = new Map<
    string,
    {
      index: string;
      session: string;
      tools: Map<string, Record<string, unknown>> | undefined;
      verified: boolean;
    }
  >();
  const state: ToolDefinitionState = {};
  const changesAt = new Map<string, ToolChange[]>();
  const allChanges: { scope: string; change: ToolChange }[] = [];
  const scopes = new Set<string>();
  let last: bigint | undefined;
  let failed = 0;
  for (const r of sorted) {
    const kind = str(r.record, 'kind') ?? '';
    const type = str(r.record, 'messageType');
    const method = str(r.record, 'mcp.method.name');
    const recordSession = str(r.record, 'session') ?? '';
    if (kind === 'stream.open' && typeof r.record['stream'] === 'string')
      servers.set(`${r.emitter}\u0000${r.record['stream']}`, streamServerOf(r.opened));
    const scope = kind === 'mcp.message' ? toolScopeOf(r.emitter, r.record, servers) : undefined;
    if (scope !== undefined && method === 'tools/list' && type === 'result') {
      const tools = toolsOf(member(r.opened['message'], 'result'));
      const index = r.index.toString();
      const verified =
        r.failure === undefined && !r.sealed.some((v) => v.state === 'failed' || v.state === 'missing');
      lists.set(scope, { index, session: recordSession, tools, verified });
      if (tools !== undefined) {
        const changes = compareToolList(state, scope, recordSession, index, tools);
        if (changes.length > 0) changesAt.set(index, changes);
        for (const change of changes) allChanges.push({ scope, change });
      }
    }
    if (recordSession !== session) continue;
    if (scope !== undefined) scopes.add(scope);
    last = r.index;
    const s = side(r);
    if (s.failure !== undefined) failed++;
    // A part of a large message is shown through the message that lists it; a failed part stays.
    if (kind === 'mcp.part' && s.failure === undefined) continue;
    const tool = str(r.record, 'gen_ai.tool.name');
    const direction = str(r.record, 'direction');
    const base = {
      kind,
      ...(direction !== undefined ? { direction } : {}),
      ...(method !== undefined && method !== '' ? { method } : {}),
      ...(tool !== undefined ? { tool } : {}),
    };
    const key = correlationKey(r);
    if (kind === 'mcp.message' && type === 'request') {
      const item: TranscriptItem = { type: 'call', ...base, request: s };
      if (method === 'tools/call') {
        const list = scope !== undefined ? lists.get(scope) : undefined;
        if (list !== undefined) {
          const def = tool !== undefined ? list.tools?.get(tool) : undefined;
          item.definitions = {
            index: list.index,
            sealed: list.tools === undefined,
            verified: list.verified,
            ...(def !== undefined ? { definition: def } : {}),
            ...(list.session !== session ? { session: list.session } : {}),
          };
        }
      }
      items.push(item);
      if (key !== undefined) open.set(key, item);
      continue;
    }
    if (kind === 'mcp.message' && (type === 'result' || type === 'error')) {
      const item = key !== undefined ? open.get(key) : undefined;
      const error = member(r.opened['message'], 'error');
      if (item !== undefined && item.response === undefined) {
        if (key !== undefined) open.delete(key);
        item.response = s;
        if (error !== undefined) item.error = error;
        const t0 = Date.parse(item.request!.received);
        const t1 = Date.parse(r.received);
        if (!Number.isNaN(t0) && !Number.isNaN(t1)) item.latencyMs = t1 - t0;
        const changes = changesAt.get(s.index);
        if (item.method === 'tools/list' && changes !== undefined) item.toolChanges = changes;
        continue;
      }
      items.push({ type: 'response', ...base, record: s, ...(error !== undefined ? { error } : {}) });
      continue;
    }
    items.push({
      type:
        type === 'notification'
          ? 'notification'
          : kind === 'mcp.stderr'
            ? 'stderr'
            : kind.startsWith('mcp.process.')
              ? 'process'
              : 'other',
      ...base,
      record: s,
    });
  }
  const toolChanges = allChanges
    .filter(({ scope, change }) => scopes.has(scope) && last !== undefined && BigInt(change.toIndex) <= last)
    .map(({ change }) => change);
  return { session, items, toolChanges, failed };
}
