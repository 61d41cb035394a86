/**
 * Reconciling two perspectives of the same MCP sessions (DESIGN.md "vigil reconcile"): e.g. a client
 * application's `auditTransport` and the server-side wrapper or proxy. Lists requests seen by one
 * side only, and requests whose parameters or answers differ. Pure and browser-safe.
 */
import canonicalize from 'canonicalize';
import type { JsonObject, JsonValue } from './types.js';

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
  request?: string;
  response?: string;
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
 * for a batch member the `wire` of the batch's first member),
 * which cannot be compared without opening them: it still counts as present, with its method, and its
 * content as the same placeholder on both sides.
 */
function sealedStandIn(r: JsonObject): JsonObject | undefined {
  const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
  // A batch's members share the commitment on its first member's record (capture.ts).
  if (!isObject(r['wire']) && !isObject(r['batch'])) return undefined;
  const sealed = '(sealed, not compared)';
  if (r['messageType'] === 'request') return { method: r['mcp.method.name'] ?? null, params: sealed };
  if (r['messageType'] === 'error') return { error: sealed };
  return { result: sealed };
}

/** Groups one side's `mcp.message` records into sessions of request/answer pairs. */
function perspective(records: JsonObject[]): Perspective {
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
    if (typeof r['gen_ai.tool.name'] === 'string') ex.tool = r['gen_ai.tool.name'];
    if (type === 'request') {
      ex.method = String(message['method'] ?? ex.method);
      ex.request = requestText(message);
      if (session.startsWith('exchange:')) orphans.push({ session, key, exchange: ex });
    } else {
      ex.response = responseText(message);
    }
  }
  // Records made by earlier versions of the proxy hold an HTTP initialize under its exchange (no
  // session id yet) and its answer in the session the server then assigned (the proxy now files both
  // under the session): join such a request to the session holding its unpaired answer.
  for (const o of orphans) {
    for (const [session, map] of sessions) {
      const ex = map.get(o.key);
      if (session === o.session || ex === undefined || ex.request !== undefined || ex.response === undefined)
        continue;
      ex.request = o.exchange.request as string;
      ex.method = o.exchange.method;
      const from = sessions.get(o.session);
      from?.delete(o.key);
      if (from?.size === 0) sessions.delete(o.session);
      break;
    }
  }
  return sessions;
}

/**
 * Pairs the sessions of A and B (same name first, e.g. a shared Mcp-Session-Id; else the B session
 * sharing the most identical requests) and compares every request and answer.
 */
export function reconcile(a: JsonObject[], b: JsonObject[]): ReconcileReport {
  const pa = perspective(a);
  const pb = perspective(b);
  const findings: ReconcileFinding[] = [];
  const pairs: { a: string; b: string; requests: number }[] = [];
  const unpairedB = new Set(pb.keys());
  const overlap = (x: Map<string, Exchange>, y: Map<string, Exchange>): number => {
    let n = 0;
    for (const [k, ex] of x) if (ex.request !== undefined && y.get(k)?.request === ex.request) n++;
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
      if (ea.request === undefined) continue;
      const eb = mb.get(k);
      compared++;
      requests++;
      if (eb?.request === undefined) finding('missing_in_b', ea, sa, sb);
      else if (eb.request !== ea.request) finding('request_differs', ea, sa, sb);
      else if (ea.response !== eb.response) {
        if (ea.response === undefined) finding('response_missing_in_a', ea, sa, sb);
        else if (eb.response === undefined) finding('response_missing_in_b', ea, sa, sb);
        else finding('response_differs', ea, sa, sb);
      }
    }
    for (const [k, eb] of mb) {
      if (eb.request !== undefined && ma.get(k)?.request === undefined) finding('missing_in_a', eb, sa, sb);
    }
    if (sb !== undefined) pairs.push({ a: sa, b: sb, requests });
  }
  for (const sb of unpairedB) {
    for (const eb of (pb.get(sb) as Map<string, Exchange>).values()) {
      if (eb.request !== undefined) finding('missing_in_a', eb, undefined, sb);
    }
  }
  return { findings, sessions: pairs, requestsCompared: compared };
}

/** Reads records from JSON lines: bare records, `{record}` submissions/entries, or `{entry:{record}}` search results. */
export function recordsFromJsonLines(text: string): JsonObject[] {
  const out: JsonObject[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const v = JSON.parse(line) as JsonValue;
    out.push(...recordsOf(v));
  }
  return out;
}

function recordsOf(v: JsonValue): JsonObject[] {
  if (Array.isArray(v)) return v.flatMap(recordsOf);
  if (typeof v !== 'object' || v === null) return [];
  if (typeof v['kind'] === 'string') return [v];
  if (typeof v['record'] === 'object' && v['record'] !== null) return recordsOf(v['record']);
  if (typeof v['entry'] === 'object' && v['entry'] !== null) return recordsOf(v['entry']);
  if (Array.isArray(v['records'])) return recordsOf(v['records']);
  return [];
}
