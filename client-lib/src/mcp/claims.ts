/**
 * Principals from token claims, shared by the proxy's JWT validation (mcp/jwt.ts) and the SDK's
 * `authInfo` (mcp/audit-transport.ts), so both record the same fields: iss, sub, aud, client_id (or
 * azp), resource, the RFC 8693 `act` chain and the RFC 9449 `cnf.jkt`. Browser-safe.
 */
import type { Principal } from './types.js';

/** The `jwt` principal of validated `claims` holding a string `sub`; undefined without one. */
export function claimsPrincipal(
  claims: Record<string, unknown>,
  tokenSha256: string,
): Extract<Principal, { type: 'jwt' }> | undefined {
  const sub = claims['sub'];
  if (typeof sub !== 'string') return undefined;
  const principal: Extract<Principal, { type: 'jwt' }> = { type: 'jwt', sub, tokenSha256 };
  const clientId = claims['client_id'] ?? claims['azp'];
  if (typeof clientId === 'string') principal.clientId = clientId;
  if (typeof claims['iss'] === 'string') principal.iss = claims['iss'];
  const aud = stringOrStrings(claims['aud']);
  if (aud !== undefined) principal.aud = aud;
  const resource = stringOrStrings(claims['resource']);
  if (resource !== undefined) principal.resource = resource;
  const act = actorChain(claims['act']);
  if (act !== undefined) principal.act = act;
  const cnf = claims['cnf'];
  if (typeof cnf === 'object' && cnf !== null && !Array.isArray(cnf)) {
    const jkt = (cnf as Record<string, unknown>)['jkt'];
    if (typeof jkt === 'string') principal.cnfJkt = jkt;
  }
  return principal;
}

/** A string claim, or an array of strings (`aud`, RFC 7519 section 4.1.3); else undefined. */
export function stringOrStrings(claim: unknown): string | string[] | undefined {
  if (typeof claim === 'string') return claim;
  if (Array.isArray(claim) && claim.every((x) => typeof x === 'string')) return claim as string[];
  return undefined;
}

/** Deepest `act` nesting kept (a chain of delegations longer than this is cut, not refused). */
const MAX_ACTORS = 16;

/**
 * The RFC 8693 section 4.1 delegation chain: `act` holds the current actor, whose own `act` the one
 * before it, and so on; returned as a list, the current actor first, each with its string claims.
 */
export function actorChain(claim: unknown): Record<string, string>[] | undefined {
  const chain: Record<string, string>[] = [];
  let actor = claim;
  while (typeof actor === 'object' && actor !== null && !Array.isArray(actor) && chain.length < MAX_ACTORS) {
    const claims: Record<string, string> = {};
    for (const [k, v] of Object.entries(actor)) if (k !== 'act' && typeof v === 'string') claims[k] = v;
    chain.push(claims);
    actor = (actor as Record<string, unknown>)['act'];
  }
  return chain.length > 0 ? chain : undefined;
}
