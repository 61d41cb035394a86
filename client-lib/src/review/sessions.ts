/**
 * `vigil sessions`: one summary per session seen in a set of verified records (DESIGN.md "Forensic
 * review"). Pure and browser-safe.
 */
import { str, type ReviewRecord } from './records.js';
import { isInWindow, timeOn, type ReviewClock } from './time.js';

export interface SessionSummary {
  session: string;
  emitters: string[];
  transports: string[];
  /** Principal types (`stdio`, `jwt`, `sdk`, ...): the type is never sealed, its claims are. */
  principals: string[];
  /** First and last record on each clock (ISO strings as logged). */
  firstReceived: string;
  lastReceived: string;
  firstTime: string;
  lastTime: string;
  /** Records of the session in the window. */
  records: number;
  /** Client-to-server and server-to-client requests. */
  requests: number;
  errors: number;
  /** Tool names called (`gen_ai.tool.name` of `tools/call` requests), in order of first call. */
  tools: string[];
  /** Methods of the session's requests (`mcp.method.name`), in order of first use. */
  methods: string[];
  /**
   * What the session reached, from the `stream.open` of its capture streams when that record is in
   * the set: the proxy's upstream URL, the wrapper's command (or `[sealed command]`).
   */
  servers: string[];
  /**
   * How the session ended, when a record says so: `exit <code>` / `signal <name>` (the wrapped
   * process), `DELETE <status>` (the HTTP session ended by its client); undefined: still open, or
   * its end is outside the window.
   */
  ended?: string;
  /** Records whose receipt did not verify: the summary then rests on unproven records. */
  failed: number;
  firstIndex: string;
  lastIndex: string;
}

export interface SessionFilter {
  clock: ReviewClock;
  since?: Date;
  until?: Date;
  emitter?: string;
  /** Keep sessions with a request of this method, a call of this tool, or a principal of this type. */
  method?: string;
  tool?: string;
  principal?: string;
}

/**
 * Summaries of the sessions with at least one record in the window, on the chosen clock, ordered by
 * their first record on that clock. Records without a `session` (stream records, registry) are skipped.
 */
export function summarizeSessions(records: readonly ReviewRecord[], filter: SessionFilter): SessionSummary[] {
  const by = new Map<string, SessionSummary & { sortKey: number }>();
  const sorted = [...records].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  // What each capture stream reaches, from its stream.open (no session of its own).
  const servers = new Map<string, string>();
  for (const r of sorted) {
    if (r.record['kind'] !== 'stream.open' || typeof r.record['stream'] !== 'string') continue;
    const upstream = str(r.record, 'upstream');
    const command = r.record['command'];
    const server =
      upstream ??
      (typeof command === 'string'
        ? [command, ...(Array.isArray(r.record['args']) ? (r.record['args'] as unknown[]) : [])].join(' ')
        : command !== undefined
          ? '[sealed command]'
          : undefined);
    if (server !== undefined) servers.set(`${r.emitter}\u0000${r.record['stream']}`, server);
  }
  for (const r of sorted) {
    const session = str(r.record, 'session');
    if (session === undefined) continue;
    if (filter.emitter !== undefined && r.emitter !== filter.emitter) continue;
    const t = timeOn(filter.clock, r.received, r.record['time']);
    if (!isInWindow(t, filter.since, filter.until)) continue;
    const time = str(r.record, 'time') ?? '';
    let s = by.get(session);
    if (s === undefined) {
      s = {
        session,
        emitters: [],
        transports: [],
        principals: [],
        firstReceived: r.received,
        lastReceived: r.received,
        firstTime: time,
        lastTime: time,
        records: 0,
        requests: 0,
        errors: 0,
        tools: [],
        methods: [],
        servers: [],
        failed: 0,
        firstIndex: r.index.toString(),
        lastIndex: r.index.toString(),
        sortKey: t!,
      };
      by.set(session, s);
    }
    const add = (list: string[], v: string | undefined) => {
      if (v !== undefined && !list.includes(v)) list.push(v);
    };
    add(s.emitters, r.emitter);
    add(s.transports, str(r.record, 'transport'));
    const p = r.record['principal'];
    if (typeof p === 'object' && p !== null) add(s.principals, str(p as Record<string, unknown>, 'type'));
    if (r.received < s.firstReceived) s.firstReceived = r.received;
    if (r.received > s.lastReceived) s.lastReceived = r.received;
    if (time !== '' && (s.firstTime === '' || time < s.firstTime)) s.firstTime = time;
    if (time > s.lastTime) s.lastTime = time;
    s.sortKey = Math.min(s.sortKey, t!);
    s.records++;
    s.lastIndex = r.index.toString();
    const type = str(r.record, 'messageType');
    if (type === 'request') s.requests++;
    if (type === 'error' || r.record['error.type'] !== undefined) s.errors++;
    if (type === 'request') add(s.methods, str(r.record, 'mcp.method.name'));
    if (type === 'request' && str(r.record, 'mcp.method.name') === 'tools/call')
      add(s.tools, str(r.record, 'gen_ai.tool.name'));
    if (r.failure !== undefined) s.failed++;
    const server = servers.get(`${r.emitter}\u0000${String(r.record['stream'])}`);
    add(s.servers, server);
    const kind = r.record['kind'];
    if (kind === 'mcp.process.exit') {
      const signal = str(r.record, 'signal');
      const code = r.record['code'];
      s.ended = signal !== undefined ? `signal ${signal}` : `exit ${typeof code === 'number' ? code : '?'}`;
    }
    const http = r.record['http'];
    if (kind === 'mcp.http.response' && typeof http === 'object' && http !== null) {
      const h = http as Record<string, unknown>;
      if (h['method'] === 'DELETE') s.ended = `DELETE ${typeof h['status'] === 'number' ? h['status'] : '?'}`;
    }
  }
  return [...by.values()]
    .filter(
      (s) =>
        (filter.method === undefined || s.methods.includes(filter.method)) &&
        (filter.tool === undefined || s.tools.includes(filter.tool)) &&
        (filter.principal === undefined || s.principals.includes(filter.principal)),
    )
    .sort((a, b) => a.sortKey - b.sortKey || a.session.localeCompare(b.session))
    .map(({ sortKey: _, ...s }) => s);
}
