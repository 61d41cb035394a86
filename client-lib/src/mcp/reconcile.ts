/**
 * Reconciling two perspectives of the same MCP sessions (DESIGN.md "vigil reconcile"): e.g. a client
 * application's `auditTransport` and the server-side wrapper or proxy. Lists requests seen by one
 * side only, and requests whose parameters or answers differ. Pure and browser-safe.
 *
 * Sealed content (mcp/seal.ts) has a salt of its own on each side, so two commitments to the same
 * params never match: without a way to open them, requests are compared by their clear facts
 * (method, id, tool, message type, error type); given `open`, the opened values are compared.
 */
import canonicalize from 'canonicalize';
import { base64Decode } from '../encoding.js';
import { isSealedRef, openSealed, type SealedRef } from '../sealed.js';
import type { JsonObject, JsonValue } from './types.js';

/** Options of `reconcile`. */
export interface ReconcileOptions {
  /**
   * Opens a sealed value (returns the value, or throws when its S is not at hand): e.g. from the
   * reader API, or `openerFromSealed` over the S a file carried. A value that does not open is
   * compared by its clear facts only.
   */
  open?: (ref: SealedRef) => unknown;
}

/** One problem found. `a`/`b` are the two inputs; sessions are each side's own session names. */
export interface ReconcileFinding {
  problem:
    | 'missing_in_a'
    | 'missing_in_b'
    | 'request_differs'
    | 'response_differs'
    | 'response_missing_in_a'
    | 'response_missing_in_b';
  sessionA?: string;
  sessionB?: string;
  requester: string;
  id: string | number;
  method: string;
  tool?: string;
}

/** The result: findings plus how sessions were paired. */
export interface ReconcileReport {
  findings: ReconcileFinding[];
  sessions: { a: string; b: string; requests: number }[];
  requestsCompared: number;
}

interface Exchange {
  requester: string;
  id: string | number;
  method: string;
  tool?: string;
  /** Canonical text of the request's method and params; undefined while sealed (or over budget). */
  request?: string;
  /** Canonical text of the request's clear facts (method, tool): set once the request was seen. */
  requestFacts?: string;
  response?: string;
  responseFacts?: string;
}

type Perspective = Map<string, Map<string, Exchange>>;

const keyOf = (requester: string, id: string | number): string => `${requester}:${typeof id}:${String(id)}`;

/** Canonical text of what a request asks (method and params) or of what an answer says. */
function requestText(message: JsonObject): string {
  return canonicalize({ method: message['method'] ?? null, params: message['params'] ?? null }) ?? '';
}
function responseText(message: JsonObject): string {
  return (
    canonicalize(
      'error' in message ? { error: message['error'] ?? null } : { result: message['result'] ?? null },
    ) ?? ''
  );
}

/**
 * A message over the capture budget is in the record only as its sealed bytes (`wire`, mcp/wire.ts, or
 * for a batch member the `wire` of the batch's first member), which are not opened here: it still
 * counts as present, compared by its clear facts.
 */
function sealedStandIn(r: JsonObject): JsonObject | undefined {
  const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
  // A batch's members share the commitment on its first member's record (capture.ts).
  if (!isObject(r['wire']) && !isObject(r['batch'])) return undefined;
  return { method: r['mcp.method.name'] ?? null };
}

/** Sentinel: a sealed value that could not be opened. */
const UNOPENED = Symbol('unopened');

/**
 * `value` with every sealed commitment replaced by its opened value, or UNOPENED when one of them
 * cannot be opened (no `open`, or its S is missing or does not match).
 */
function opened(value: JsonValue | undefined, open: ReconcileOptions['open']): JsonValue | typeof UNOPENED {
  if (value === undefined) return null;
  if (isSealedRef(value)) {
    if (open === undefined) return UNOPENED;
    try {
      // The opened value is JSON (canonical JSON in S): it may hold refs of its own only as data.
      return open(value) as JsonValue;
    } catch {
      return UNOPENED;
    }
  }
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    for (const v of value) {
      const o = opened(v, open);
      if (o === UNOPENED) return UNOPENED;
      out.push(o);
    }
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const o = opened(v, open);
      if (o === UNOPENED) return UNOPENED;
      out[k] = o;
    }
    return out;
  }
  return value;
}

/** Groups one side's `mcp.message` records into sessions of request/answer pairs. */
function perspective(records: JsonObject[], open: ReconcileOptions['open']): Perspective {
  const sessions: Perspective = new Map();
  const orphans: { session: string; key: string; exchange: Exchange }[] = [];
  for (const r of records) {
    if (r['kind'] !== 'mcp.message') continue;
    const message = r['message'] ?? sealedStandIn(r);
    const correlation = r['correlation'] as JsonObject | undefined;
    if (
      typeof message !== 'object' ||
      message === null ||
      Array.isArray(message) ||
      correlation === undefined
    )
      continue;
    const id = correlation['id'];
    const requester = correlation['requester'];
    if ((typeof id !== 'string' && typeof id !== 'number') || typeof requester !== 'string') continue;
    const type = r['messageType'];
    if (type !== 'request' && type !== 'result' && type !== 'error') continue;
    const session = String(r['session']);
    let map = sessions.get(session);
    if (map === undefined) {
      map = new Map();
      sessions.set(session, map);
    }
    const key = keyOf(requester, id);
    let ex = map.get(key);
    if (ex === undefined) {
      ex = { requester, id, method: String(r['mcp.method.name'] ?? '') };
      map.set(key, ex);
    }
    const tool = opened(r['gen_ai.tool.name'], open);
    if (typeof tool === 'string') ex.tool = tool;
    // Content compared only when every sealed part of it opened (a stand-in has none to compare).
    const content = r['message'] === undefined ? UNOPENED : opened(message, open);
    const full =
      typeof content === 'object' && content !== null && !Array.isArray(content) ? content : undefined;
    if (type === 'request') {
      ex.method = String(message['method'] ?? ex.method);
      if (full !== undefined) ex.request = requestText(full);
      else delete ex.request;
      ex.requestFacts = canonicalize({ method: ex.method, tool: ex.tool ?? null }) ?? '';
      if (session.startsWith('exchange:')) orphans.push({ session, key, exchange: ex });
    } else {
      if (full !== undefined) ex.response = responseText(full);
      else delete ex.response;
      ex.responseFacts = canonicalize({ type, error: r['error.type'] ?? null }) ?? '';
    }
  }
  // Records made by earlier versions of the proxy hold an HTTP initialize under its exchange (no
  // session id yet) and its answer in the session the server then assigned (the proxy now files both
  // under the session): join such a request to the session holding its unpaired answer.
  for (const o of orphans) {
    for (const [session, map] of sessions) {
      const ex = map.get(o.key);
      if (
        session === o.session ||
        ex === undefined ||
        ex.requestFacts !== undefined ||
        ex.responseFacts === undefined
      )
        continue;
      if (o.exchange.request !== undefined) ex.request = o.exchange.request;
      ex.requestFacts = o.exchange.requestFacts as string;
      ex.method = o.exchange.method;
      if (o.exchange.tool !== undefined && ex.tool === undefined) ex.tool = o.exchange.tool;
      const from = sessions.get(o.session);
      from?.delete(o.key);
      if (from?.size === 0) sessions.delete(o.session);
      break;
    }
  }
  return sessions;
}

/** Were both seen, and do they agree: by content when both sides have it, else by clear facts. */
function sameRequest(x: Exchange, y: Exchange | undefined): boolean {
  if (y?.requestFacts === undefined || x.requestFacts === undefined) return false;
  if (x.request !== undefined && y.request !== undefined) return x.request === y.request;
  return x.requestFacts === y.requestFacts;
}
function sameResponse(x: Exchange, y: Exchange): boolean {
  if (x.responseFacts === undefined || y.responseFacts === undefined)
    return x.responseFacts === y.responseFacts;
  if (x.response !== undefined && y.response !== undefined) return x.response === y.response;
  return x.responseFacts === y.responseFacts;
}

/**
 * Pairs the sessions of A and B (same name first, e.g. a shared Mcp-Session-Id; else the B session
 * sharing the most identical requests) and compares every request and answer. Sealed content is
 * compared opened when `options.open` opens it, else by the clear facts of each message.
 */
export function reconcile(a: JsonObject[], b: JsonObject[], options: ReconcileOptions = {}): ReconcileReport {
  const pa = perspective(a, options.open);
  const pb = perspective(b, options.open);
  const findings: ReconcileFinding[] = [];
  const pairs: { a: string; b: string; requests: number }[] = [];
  const unpairedB = new Set(pb.keys());
  const overlap = (x: Map<string, Exchange>, y: Map<string, Exchange>): number => {
    let n = 0;
    for (const [k, ex] of x) if (sameRequest(ex, y.get(k))) n++;
    return n;
  };
  const pairing = new Map<string, string | undefined>();
  for (const [sa, ma] of pa) {
    if (unpairedB.has(sa)) {
      pairing.set(sa, sa);
      unpairedB.delete(sa);
      continue;
    }
    let best: string | undefined;
    let bestScore = 0;
    for (const sb of unpairedB) {
      const score = overlap(ma, pb.get(sb) as Map<string, Exchange>);
      if (score > bestScore) {
        best = sb;
        bestScore = score;
      }
    }
    if (best !== undefined) unpairedB.delete(best);
    pairing.set(sa, best);
  }
  let compared = 0;
  const finding = (
    problem: ReconcileFinding['problem'],
    ex: Exchange,
    sessionA?: string,
    sessionB?: string,
  ): void => {
    const f: ReconcileFinding = { problem, requester: ex.requester, id: ex.id, method: ex.method };
    if (ex.tool !== undefined) f.tool = ex.tool;
    if (sessionA !== undefined) f.sessionA = sessionA;
    if (sessionB !== undefined) f.sessionB = sessionB;
    findings.push(f);
  };
  for (const [sa, ma] of pa) {
    const sb = pairing.get(sa);
    const mb = sb === undefined ? new Map<string, Exchange>() : (pb.get(sb) as Map<string, Exchange>);
    let requests = 0;
    for (const [k, ea] of ma) {
      if (ea.requestFacts === undefined) continue;
      const eb = mb.get(k);
      compared++;
      requests++;
      if (eb?.requestFacts === undefined) finding('missing_in_b', ea, sa, sb);
      else if (!sameRequest(ea, eb)) finding('request_differs', ea, sa, sb);
      else if (!sameResponse(ea, eb)) {
        if (ea.responseFacts === undefined) finding('response_missing_in_a', ea, sa, sb);
        else if (eb.responseFacts === undefined) finding('response_missing_in_b', ea, sa, sb);
        else finding('response_differs', ea, sa, sb);
      }
    }
    for (const [k, eb] of mb) {
      if (eb.requestFacts !== undefined && ma.get(k)?.requestFacts === undefined)
        finding('missing_in_a', eb, sa, sb);
    }
    if (sb !== undefined) pairs.push({ a: sa, b: sb, requests });
  }
  for (const sb of unpairedB) {
    for (const eb of (pb.get(sb) as Map<string, Exchange>).values()) {
      if (eb.requestFacts !== undefined) finding('missing_in_a', eb, undefined, sb);
    }
  }
  return { findings, sessions: pairs, requestsCompared: compared };
}

/** Reads records from JSON lines: bare records, `{record}` submissions/entries, or `{entry:{record}}` search results. */
export function recordsFromJsonLines(text: string): JsonObject[] {
  return jsonDocuments(text).flatMap(recordsOf);
}

/**
 * The JSON values of a file: one document (`vigil search --json` prints one indented object) or JSON
 * lines.
 */
function jsonDocuments(text: string): JsonValue[] {
  try {
    return [JSON.parse(text) as JsonValue];
  } catch {
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as JsonValue);
  }
}

function recordsOf(v: JsonValue): JsonObject[] {
  if (Array.isArray(v)) return v.flatMap(recordsOf);
  if (typeof v !== 'object' || v === null) return [];
  if (typeof v['kind'] === 'string') return [v];
  // A result of `vigil search --json`: refused unless the CLI verified it; its `opened` record holds
  // the values that opened and matched their commitments.
  if (v['verified'] === false)
    throw new Error(`search result ${String(v['index'])} failed verification: its file cannot be trusted`);
  if (Array.isArray(v['results'])) return recordsOf(v['results']);
  if (typeof v['opened'] === 'object' && v['opened'] !== null && !Array.isArray(v['opened'])) {
    if (typeof v['opened']['kind'] === 'string') return [v['opened']];
  }
  if (typeof v['record'] === 'object' && v['record'] !== null) return recordsOf(v['record']);
  if (typeof v['entry'] === 'object' && v['entry'] !== null) return recordsOf(v['entry']);
  if (Array.isArray(v['records'])) return recordsOf(v['records']);
  return [];
}

/**
 * The sealed bytes S carried in JSON lines, keyed by hex SHA-256: the `blobs` map of a submission or
 * spool item and the `sealed` map of a reader's answer (`?open=1`), both base64. Bytes that are not
 * S of a sealed commitment are simply never asked for.
 */
export function sealedFromJsonLines(text: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const collect = (v: JsonValue): void => {
    if (Array.isArray(v)) {
      v.forEach(collect);
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    for (const key of ['blobs', 'sealed']) {
      const map = v[key];
      if (typeof map !== 'object' || map === null || Array.isArray(map)) continue;
      for (const [hex, b64] of Object.entries(map)) {
        if (typeof b64 === 'string' && /^[0-9a-f]{64}$/.test(hex))
          out.set(hex, base64Decode(b64, 'ENCODING_INVALID'));
      }
    }
    for (const key of ['entry', 'record', 'results']) {
      const inner = v[key];
      if (typeof inner === 'object' && inner !== null) collect(inner);
    }
  };
  jsonDocuments(text).forEach(collect);
  return out;
}

/** An `open` for `reconcile` from S at hand (`sealedFromJsonLines`): checks each S against its ref. */
export function openerFromSealed(sealed: Map<string, Uint8Array>): (ref: SealedRef) => unknown {
  return (ref) => {
    const bytes = sealed.get(ref.$sealed.sha256);
    if (bytes === undefined) throw new Error(`sealed value ${ref.$sealed.sha256} is not at hand`);
    return openSealed(ref, bytes);
  };
}
