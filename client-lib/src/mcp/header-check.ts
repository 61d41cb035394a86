/**
 * The 2026-07-28 mirrored headers (MCP.md 1.4, SEP-2243): `Mcp-Method` on every request and
 * notification, `Mcp-Name` (`params.name` or `params.uri`) on tools/call, resources/read and
 * prompts/get, each equal to the body. Intermediaries that act on the headers must not trust a
 * header the body contradicts, so the proxy checks them and records every disagreement on the
 * message's record (`http.mcpHeaderMismatch`); the server answers such a request itself (400,
 * -32020). Browser-safe.
 */
import type { ClassifiedMessage } from './message.js';
import type { HttpFacts } from './types.js';

/** The first revision whose requests must carry the mirrored headers. */
export const MIRRORED_HEADERS_SINCE = '2026-07-28';

/** Methods whose target is mirrored in `Mcp-Name`. */
const NAMED_METHODS = new Set(['tools/call', 'resources/read', 'prompts/get']);

/**
 * A header value as sent: plain visible ASCII, or `=?base64?<base64 of UTF-8>?=` for anything else
 * (SEP-2243). Undefined when the encoded form does not decode to what it claims.
 */
export function decodeHeaderValue(value: string): string | undefined {
  const m = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/.exec(value);
  if (m === null) return value;
  const bytes = Uint8Array.from(atob(m[1] as string), (c) => c.charCodeAt(0));
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Whether a protocol version string is a dated revision at or after 2026-07-28. */
function requiresMirroredHeaders(version: string | undefined): boolean {
  return version !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= MIRRORED_HEADERS_SINCE;
}

/**
 * The mirrored headers of a request that disagree with its body, as `<Header>: missing` (required by
 * the negotiated revision but absent), `<Header>: differs` (present, not equal to the body), or
 * `<Header>: undecodable`. Empty when they agree. `classified` is the body (one message; a batch or
 * an answer has no method to mirror: a header sent with one differs).
 */
export function headerMismatches(facts: HttpFacts, classified: ClassifiedMessage): string[] {
  const out: string[] = [];
  const required = requiresMirroredHeaders(facts.mcpProtocolVersion);
  const hasMethod = classified.type === 'request' || classified.type === 'notification';
  const check = (
    name: string,
    sent: string | undefined,
    expected: string | undefined,
    needed: boolean,
  ): void => {
    if (sent === undefined) {
      if (needed) out.push(`${name}: missing`);
      return;
    }
    const decoded = decodeHeaderValue(sent);
    if (decoded === undefined) out.push(`${name}: undecodable`);
    else if (decoded !== expected) out.push(`${name}: differs`);
  };
  check('Mcp-Method', facts.mcpMethod, hasMethod ? classified.method : undefined, required && hasMethod);
  const named = hasMethod && NAMED_METHODS.has(classified.method ?? '');
  const target = classified.method === 'resources/read' ? classified.uri : classified.name;
  if (named || facts.mcpName !== undefined) {
    check(
      'Mcp-Name',
      facts.mcpName,
      named ? target : undefined,
      required && named && classified.type === 'request',
    );
  }
  return out;
}
