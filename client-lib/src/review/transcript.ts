/**
 * `vigil transcript <session>`: a session in log order, each request beside its response, and the tool
 * definitions in effect for every `tools/call` (DESIGN.md "Forensic review"). Pure and browser-safe:
 * the caller fetched, verified and opened the records (records.ts); nothing here hides a failure.
 */
import { canonicalJson } from '../record.js';
import { str, type OpenedRecord } from './records.js';

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
}

/** Fields every record or capture record has, left out of `fields`. */
const ENVELOPE = new Set(['v', 'stream', 'seq', 'prev', 'time', 'kind', 'session', 'transport', 'direction']);

/** A definition of a tool that differs from an earlier one of the same session. */
export interface ToolChange {
  tool: string;
  /** What changed: `description`, `inputSchema`, or both. */
  fields: string[];
  /** Index of the tools/list result that had the earlier definition, and of the one that changed it. */
  fromIndex: string;
  toIndex: string;
}

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
  /** For a tools/call: the tools/list result in effect (the newest of the session before the call). */
  definitions?: { index: string; definition?: unknown; sealed: boolean };
  /** Tools whose definition changed in this tools/list result (on a tools/list call item). */
  toolChanges?: ToolChange[];
}

export interface Transcript {
  session: string;
  items: TranscriptItem[];
  /** Every tool definition that changed during the session. */
  toolChanges: ToolChange[];
  /** Records that failed verification or whose sealed values failed to open. */
  failed: number;
}

function side(r: OpenedRecord): TranscriptSide {
  const bad = r.sealed.filter((v) => v.state === 'failed' || v.state === 'missing');
  const failures = [
    ...(r.failure !== undefined ? [`receipt: ${r.failure}`] : []),
    ...bad.map((v) => `${v.path}: ${v.state === 'failed' ? `FAILED: ${v.error ?? ''}` : 'MISSING'}`),
  ];
  return {
    index: r.index.toString(),
    emitter: r.emitter,
    received: r.received,
    time: str(r.record, 'time') ?? '',
    verified: r.failure === undefined,
    ...(failures.length > 0 ? { failure: failures.join('; ') } : {}),
    ...(r.opened['message'] !== undefined ? { message: r.opened['message'] } : {}),
    ...(r.record['kind'] !== 'mcp.message'
      ? { fields: Object.fromEntries(Object.entries(r.opened).filter(([k]) => !ENVELOPE.has(k))) }
      : {}),
    notOpened: r.sealed
      .filter((v) => v.state !== 'opened')
      .map((v) =>
        v.state === 'sealed'
          ? `${v.path}: [sealed]`
          : v.state === 'erased'
            ? `${v.path}: [erased by entry ${v.erasure ?? '?'}]`
            : `${v.path}: ${v.state.toUpperCase()}`,
      ),
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

/** Tool definitions of an opened tools/list result, by name (undefined when still sealed). */
function toolsOf(result: unknown): Map<string, Record<string, unknown>> | undefined {
  const tools = member(result, 'tools');
  if (!Array.isArray(tools)) return undefined;
  const out = new Map<string, Record<string, unknown>>();
  for (const t of tools) {
    const name = member(t, 'name');
    if (typeof name === 'string') out.set(name, t as Record<string, unknown>);
  }
  return out;
}

function same(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a ?? null) === canonicalJson(b ?? null);
  } catch {
    return false;
  }
}

/**
 * The transcript of `session` from its records (any order; sorted by index). Requests and responses are
 * joined by (emitter, requester, JSON-RPC id with its type); a response without its request stands
 * alone. Every record keeps its verification state: a FAILED record is shown, never dropped.
 */
export function buildTranscript(session: string, records: readonly OpenedRecord[]): Transcript {
  const sorted = records
    .filter((r) => r.record['session'] === session)
    .sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  const items: TranscriptItem[] = [];
  const open = new Map<string, TranscriptItem>();
  const toolChanges: ToolChange[] = [];
  /** The newest tools/list result per emitter (the server perspective it describes). */
  const lists = new Map<string, { index: string; tools: Map<string, Record<string, unknown>> | undefined }>();
  /** The last definition seen of each tool, per emitter, with the index of its tools/list result. */
  const known = new Map<string, { index: string; def: Record<string, unknown> }>();
  let failed = 0;
  for (const r of sorted) {
    const s = side(r);
    if (s.failure !== undefined) failed++;
    const kind = str(r.record, 'kind') ?? '';
    const type = str(r.record, 'messageType');
    const method = str(r.record, 'mcp.method.name');
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
        const list = lists.get(r.emitter);
        if (list !== undefined) {
          const def = tool !== undefined ? list.tools?.get(tool) : undefined;
          item.definitions = {
            index: list.index,
            sealed: list.tools === undefined,
            ...(def !== undefined ? { definition: def } : {}),
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
        if (item.method === 'tools/list' && type === 'result') {
          const tools = toolsOf(member(r.opened['message'], 'result'));
          lists.set(r.emitter, { index: s.index, tools });
          const changes: ToolChange[] = [];
          for (const [name, def] of tools ?? []) {
            const k = `${r.emitter}\u0000${name}`;
            const before = known.get(k);
            if (before !== undefined) {
              const fields = ['description', 'inputSchema'].filter((f) => !same(before.def[f], def[f]));
              if (fields.length > 0)
                changes.push({ tool: name, fields, fromIndex: before.index, toIndex: s.index });
            }
            known.set(k, { index: s.index, def });
          }
          if (changes.length > 0) {
            item.toolChanges = changes;
            toolChanges.push(...changes);
          }
        }
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
  return { session, items, toolChanges, failed };
}
