/**
 * Streams out (DESIGN.md "Forensic review", "Streams out"): the pure part of
 * `vigil export --follow --jsonl [--otlp URL]`. One verified record becomes one JSON line; MCP
 * requests are paired with their responses into one span each, named and attributed per the MCP
 * semantic conventions (MCP.md section 4). Pure and browser-safe: the caller (cli/follow.ts) fetched
 * and verified the records; nothing here decides that a record is verified.
 */
import { sha256 } from '../crypto.js';
import { hexEncode, utf8 } from '../encoding.js';
import { TlogError } from '../errors.js';
import { verifyCheckpoint, type Policy } from '../policy/index.js';
import { str, type OpenedRecord } from './records.js';

/**
 * One line of `vigil export --follow --jsonl`. Every line is a record that was proven included in a
 * checkpoint satisfying the policy, whose emitter signature held and whose sealed values matched
 * their commitments: `verified` is always true (a record that fails is never written).
 */
export interface FollowLine {
  /** Leaf index, decimal. */
  index: string;
  /** The log's origin (of the checkpoint the record was proven in). */
  origin: string;
  /** The log's clock. */
  received: string;
  /** The emitter's clock (the record's `time`), or null. */
  time: string | null;
  emitter: string;
  kind: string | null;
  session: string | null;
  /** `client_to_server` or `server_to_client` for MCP messages, else null. */
  direction: string | null;
  /** `mcp.method.name` (requests, notifications, and responses matched to their request). */
  method: string | null;
  /** `gen_ai.tool.name` of a tools/call, or `gen_ai.prompt.name` of a prompts/get. */
  tool: string | null;
  /** `jsonrpc.request.id` (a string) of requests and responses. */
  id: string | null;
  /** The record as logged, with every sealed value that opened in place of its commitment. */
  record: Record<string, unknown>;
  /** Every sealed value: `opened`, `sealed` (no reader token) or `erased`. */
  sealed: { sha256: string; state: string }[];
  verified: true;
}

/** The JSONL line of a verified record (throws RangeError if it is not: failed or a value failed). */
export function followLine(r: OpenedRecord, origin: string): FollowLine {
  if (r.failure !== undefined) throw new RangeError(`entry ${r.index} did not verify: ${r.failure}`);
  const bad = r.sealed.find((v) => v.state === 'failed' || v.state === 'missing');
  if (bad !== undefined) throw new RangeError(`entry ${r.index}: sealed value ${bad.path} is ${bad.state}`);
  const rec = r.record;
  const nul = (v: string | undefined): string | null => v ?? null;
  return {
    index: r.index.toString(),
    origin,
    received: r.received,
    time: nul(str(rec, 'time')),
    emitter: r.emitter,
    kind: nul(str(rec, 'kind')),
    session: nul(str(rec, 'session')),
    direction: nul(str(rec, 'direction')),
    method: str(rec, 'mcp.method.name') || null,
    tool: nul(str(rec, 'gen_ai.tool.name') ?? str(rec, 'gen_ai.prompt.name')),
    id: nul(str(rec, 'jsonrpc.request.id')),
    record: r.opened,
    sealed: r.sealed.map((v) => ({ sha256: v.sha256, state: v.state })),
    verified: true,
  };
}

/**
 * The newest checkpoint that satisfies `policy`: the log's latest (`/checkpoint`) when its
 * cosignatures already meet the quorum, else the newest one the log holds that meets it
 * (`/checkpoint/witnessed`): witnesses cosign after the log signs, so the latest is often short of
 * the quorum for a moment. Any other failure (a bad log signature, another origin) returns the latest
 * as it is, for the caller's verification to reject: the stream stops on it rather than looking away.
 */
export async function checkpointForPolicy(
  latest: () => Promise<string>,
  witnessed: () => Promise<string>,
  policy: Policy,
): Promise<string> {
  const note = await latest();
  try {
    verifyCheckpoint(note, policy);
    return note;
  } catch (err) {
    if (err instanceof TlogError && err.code === 'QUORUM_NOT_MET') return witnessed();
    return note;
  }
}

/** A request waiting for its response, as kept in the follow state file (JSON). */
export interface PendingRequest {
  key: string;
  index: string;
  time: string;
  received: string;
  emitter: string;
  method: string;
  /** Span attributes taken from the request (method, tool, ids, session, transport). */
  attributes: Record<string, string>;
}

/** Requests kept waiting for their response at most (the oldest is dropped past it). */
export const MAX_PENDING_REQUESTS = 10_000;

/** One OpenTelemetry span for an MCP request/response pair (OTLP, MCP semantic conventions). */
export interface McpSpan {
  /** `{mcp.method.name} {target}`, the target being the tool or prompt name when there is one. */
  name: string;
  /** 32 and 16 hex digits, derived from the log origin and the request's index: a span sent again
   * after a restart carries the same ids, so a backend can drop the duplicate. */
  traceId: string;
  spanId: string;
  /** Start and end: the emitter clocks (`time`) of the request and the response, in ms since the epoch. */
  startMs: number;
  endMs: number;
  /** True for a JSON-RPC error response or a tool result with isError (`error.type` set). */
  error: boolean;
  attributes: Record<string, string | number>;
}

/** Pairing state: requests waiting, oldest first (Map keeps insertion order). */
export interface Pairing {
  pending: Map<string, PendingRequest>;
  /** Requests dropped because more than MAX_PENDING_REQUESTS were waiting. */
  dropped: number;
}

function member(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)[key]
    : undefined;
}

/**
 * The pairing key of an MCP request or response: (emitter, session, requester, JSON-RPC id with its
 * type), as the capture correlates them (DESIGN.md "MCP capture", "Correlation keys").
 */
export function pairingKey(r: OpenedRecord): string | undefined {
  if (r.record['kind'] !== 'mcp.message') return undefined;
  const c = r.record['correlation'];
  const requester = member(c, 'requester');
  const id = member(c, 'id');
  if (typeof requester !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return undefined;
  const session = str(r.record, 'session') ?? '';
  return [r.emitter, session, requester, typeof id, String(id)].join('\u0000');
}

/** Copies the clear fields a span takes from a request record. */
function requestAttributes(r: OpenedRecord, origin: string): Record<string, string> {
  const a: Record<string, string> = { 'vigil.log.origin': origin, 'vigil.emitter': r.emitter };
  const copy = (from: string, to = from): void => {
    const v = str(r.record, from);
    if (v !== undefined && v !== '') a[to] = v;
  };
  copy('mcp.method.name');
  copy('gen_ai.tool.name');
  copy('gen_ai.prompt.name');
  copy('mcp.resource.uri');
  copy('jsonrpc.request.id');
  copy('mcp.session.id');
  copy('mcp.protocol.version');
  copy('session', 'vigil.session');
  copy('direction', 'vigil.direction');
  if (a['mcp.method.name'] === 'tools/call') a['gen_ai.operation.name'] = 'execute_tool';
  const transport = str(r.record, 'transport');
  // MCP.md section 4: network.transport is `pipe` for stdio, `tcp` for HTTP.
  if (transport === 'stdio') a['network.transport'] = 'pipe';
  else if (transport === 'streamable-http' || transport === 'http+sse') a['network.transport'] = 'tcp';
  return a;
}

/** Hex of the first `bytes` bytes of SHA-256(origin NUL index NUL what). */
function idOf(origin: string, index: string, what: string, bytes: number): string {
  return hexEncode(sha256(utf8(`${origin}\u0000${index}\u0000${what}`)).subarray(0, bytes));
}

/**
 * Feeds one verified record (in index order) to the pairing: a request is kept waiting; a response
 * whose request is waiting makes a span (and frees the request); anything else returns undefined. At
 * most MAX_PENDING_REQUESTS (or `max`) requests wait; past that the oldest is dropped and counted.
 */
export function pairRecord(
  pairing: Pairing,
  r: OpenedRecord,
  origin: string,
  max = MAX_PENDING_REQUESTS,
): McpSpan | undefined {
  const key = pairingKey(r);
  if (key === undefined) return undefined;
  const type = str(r.record, 'messageType');
  if (type === 'request') {
    pairing.pending.delete(key); // a reused id: the newer request is the one its response answers
    pairing.pending.set(key, {
      key,
      index: r.index.toString(),
      time: str(r.record, 'time') ?? r.received,
      received: r.received,
      emitter: r.emitter,
      method: str(r.record, 'mcp.method.name') ?? '',
      attributes: requestAttributes(r, origin),
    });
    while (pairing.pending.size > max) {
      const oldest = pairing.pending.keys().next().value as string;
      pairing.pending.delete(oldest);
      pairing.dropped++;
    }
    return undefined;
  }
  if (type !== 'result' && type !== 'error') return undefined;
  const request = pairing.pending.get(key);
  if (request === undefined) return undefined;
  pairing.pending.delete(key);
  const attributes: Record<string, string | number> = {
    ...request.attributes,
    'vigil.request.index': request.index,
    'vigil.response.index': r.index.toString(),
  };
  const errorType = str(r.record, 'error.type');
  if (errorType !== undefined) {
    attributes['error.type'] = errorType;
    const code = member(member(r.opened['message'], 'error'), 'code');
    if (typeof code === 'number') attributes['rpc.response.status_code'] = String(code);
    else if (/^-?[0-9]+$/.test(errorType)) attributes['rpc.response.status_code'] = errorType;
  }
  const target = request.attributes['gen_ai.tool.name'] ?? request.attributes['gen_ai.prompt.name'];
  const startMs = Date.parse(request.time);
  const endTime = str(r.record, 'time') ?? r.received;
  const endMs = Date.parse(endTime);
  return {
    name: target !== undefined ? `${request.method} ${target}` : request.method,
    traceId: idOf(origin, request.index, 'trace', 16),
    spanId: idOf(origin, request.index, 'span', 8),
    startMs: Number.isNaN(startMs) ? Date.parse(request.received) : startMs,
    endMs: Number.isNaN(endMs) ? Date.parse(r.received) : Math.max(endMs, startMs || 0),
    error: errorType !== undefined,
    attributes,
  };
}
