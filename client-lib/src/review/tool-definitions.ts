/**
 * Tool definitions in effect (DESIGN.md "Forensic review"): for every `tools/call`, the newest
 * `tools/list` result from the same server before it, and every tool whose description or input
 * schema changed. One detection for `vigil transcript` (review/transcript.ts) and `vigil audit`
 * (audit/auditor.ts). Pure and browser-safe.
 *
 * "The same server" (the scope of a definition):
 * - a record with a session (an `Mcp-Session-Id`, or the stdio stream of one wrapped process before
 *   the 2026-07-28 revision) is scoped by its emitter and session: a stateful server's tool list is
 *   per session, and the two perspectives of one session (client-side and server-side emitters) are
 *   compared each with itself, as before;
 * - a stateless record (2026-07-28: no sessions) has only its own HTTP exchange (`exchange:N`, the
 *   proxy's session for a request without `Mcp-Session-Id`) or one wrapped process, so it is scoped by
 *   the server its emitter reaches: the upstream URL of the proxy's `stream.open` (kept clear), or the
 *   wrapped command and arguments of the wrapper's `stream.open` (sealed: known only once opened).
 *   The emitter stays in the key: `http://127.0.0.1:3001/mcp` on two hosts is two servers. When the
 *   `stream.open` is not at hand (not fetched, or its command still sealed), the scope is the emitter's
 *   stream: one proxy or wrapper run, which reaches one server.
 */
import { sha256 } from '../crypto.js';
import { hexEncode, utf8 } from '../encoding.js';
import { canonicalJson } from '../record.js';

/** The first protocol revision without sessions (MCP.md section 1). */
export const STATELESS_REVISION = '2026-07-28';

/** The fields of a definition that are compared; a change to either is flagged. */
export const TOOL_FIELDS = ['description', 'inputSchema'] as const;

/** A definition of a tool that differs from an earlier one of the same server. */
export interface ToolChange {
  tool: string;
  /** What changed: `description`, `inputSchema`, or both. */
  fields: string[];
  /** Index of the tools/list result that had the earlier definition, and of the one that changed it. */
  fromIndex: string;
  toIndex: string;
  /** The session of the tools/list result that changed it. */
  session: string;
  /** The earlier definition's session, when another one (stateless servers: another exchange). */
  fromSession?: string;
}

/** The server a capture stream reaches, from its `stream.open` record (values opened where sealed). */
export interface StreamServer {
  upstream?: string;
  /**
   * Hex SHA-256 of the JSON of the wrapped command and its arguments, when opened: a digest, since the
   * command line is sealed content and scopes are kept in the audit's state file.
   */
  command?: string;
}

/** The last definition seen of a tool: digests only (what a state file may keep; never the text). */
export interface KnownTool {
  index: string;
  session: string;
  /** Hex SHA-256 of the canonical JSON of each of TOOL_FIELDS (null when absent). */
  digests: Record<string, string>;
}

/** Scope key -> tool name -> its last definition. Plain JSON, so the audit keeps it between runs. */
export type ToolDefinitionState = Record<string, Record<string, KnownTool>>;

function member(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)[key]
    : undefined;
}

/** The server a `stream.open` record names (`upstream`, or `command` + `args` once opened). */
export function streamServerOf(open: Record<string, unknown>): StreamServer {
  const out: StreamServer = {};
  const upstream = open['upstream'];
  if (typeof upstream === 'string') out.upstream = upstream;
  const command = open['command'];
  const args = open['args'];
  if (typeof command === 'string' && (args === undefined || Array.isArray(args))) {
    const rest = (args ?? []) as unknown[];
    if (rest.every((a) => typeof a === 'string'))
      out.command = hexEncode(sha256(utf8(JSON.stringify([command, ...rest]))));
  }
  return out;
}

/** Whether a capture record belongs to no session: a 2026-07-28 exchange or process. */
export function isStateless(record: Record<string, unknown>): boolean {
  if (typeof record['mcp.session.id'] === 'string') return false;
  const session = record['session'];
  if (typeof session === 'string' && session.startsWith('exchange:')) return true;
  const version = record['mcp.protocol.version'];
  // Revisions are dates: a later one sorts after.
  return typeof version === 'string' && version >= STATELESS_REVISION;
}

/**
 * The scope of a record's tool definitions (see the module comment): `session:`, `upstream:`,
 * `command:` or `stream:` followed by the emitter and what names the server. `servers` maps an
 * emitter's stream (`<emitter>\0<stream>`) to what its `stream.open` names.
 */
export function toolScopeOf(
  emitter: string,
  record: Record<string, unknown>,
  servers: ReadonlyMap<string, StreamServer>,
): string {
  const session = typeof record['session'] === 'string' ? record['session'] : '';
  if (!isStateless(record)) return `session:${emitter}\u0000${session}`;
  const stream = typeof record['stream'] === 'string' ? record['stream'] : '';
  const server = servers.get(`${emitter}\u0000${stream}`);
  if (server?.upstream !== undefined) return `upstream:${emitter}\u0000${server.upstream}`;
  if (server?.command !== undefined) return `command:${emitter}\u0000${server.command}`;
  return `stream:${emitter}\u0000${stream}`;
}

/** Tool definitions of an opened tools/list result, by name (undefined when still sealed). */
export function toolsOf(result: unknown): Map<string, Record<string, unknown>> | undefined {
  const tools = member(result, 'tools');
  if (!Array.isArray(tools)) return undefined;
  const out = new Map<string, Record<string, unknown>>();
  for (const t of tools) {
    const name = member(t, 'name');
    if (typeof name === 'string') out.set(name, t as Record<string, unknown>);
  }
  return out;
}

function digestOf(value: unknown): string {
  let text: string;
  try {
    text = canonicalJson(value ?? null);
  } catch {
    // Not representable in canonical JSON (it came through JSON.parse, so hardly): compare as text.
    text = `!${JSON.stringify(value) ?? ''}`;
  }
  return hexEncode(sha256(utf8(text)));
}

/**
 * Compares one opened tools/list result (`tools`, by name) at entry `index` of `session` with the
 * definitions last seen in `scope`, records it in `state` and returns the tools that changed. A tool
 * that appears or disappears is not a change of definition (the list itself says so).
 */
export function compareToolList(
  state: ToolDefinitionState,
  scope: string,
  session: string,
  index: string,
  tools: ReadonlyMap<string, Record<string, unknown>>,
): ToolChange[] {
  // Tool names come from the server: a prototype-less map, so `__proto__` is a name like any other
  // (a state read back from JSON gets one again).
  let known = state[scope];
  if (known === undefined || Object.getPrototypeOf(known) !== null)
    known = state[scope] = Object.assign(Object.create(null) as Record<string, KnownTool>, known ?? {});
  const changes: ToolChange[] = [];
  for (const [name, def] of tools) {
    const digests = Object.fromEntries(TOOL_FIELDS.map((f) => [f, digestOf(def[f])]));
    const before = known[name];
    if (before !== undefined) {
      const fields = TOOL_FIELDS.filter((f) => before.digests[f] !== digests[f]);
      if (fields.length > 0)
        changes.push({
          tool: name,
          fields,
          fromIndex: before.index,
          toIndex: index,
          session,
          ...(before.session !== session ? { fromSession: before.session } : {}),
        });
    }
    known[name] = { index, session, digests };
  }
  return changes;
}
