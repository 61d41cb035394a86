/**
 * Bearer-token principals for the proxy: validates a JWT access token (RFC 7519, RFC 9068) against a
 * public key file, a JWKS URL, or the JWKS an OpenID issuer publishes (OIDC Discovery 1.0 section 4),
 * all of which the operator trusts; else identifies the token by its SHA-256 only. The token itself is
 * never stored (MCP.md 1.11): the principal holds its validated claims (iss, sub, aud, resource,
 * client_id or azp, the RFC 8693 `act` chain, the RFC 9449 `cnf.jkt`). Node only.
 *
 * Key material is fetched over https only (http only from a loopback host), with bounded reads: at
 * most 64 KiB of discovery document and 1 MiB of JWKS.
 *
 * Validation is jose's (a maintained JOSE implementation): the header's `alg` must be one we accept
 * and must match the key's type and curve (an ES256 header over an RSA key is refused), `exp` must be
 * present and numeric, and a remote JWKS is re-fetched for an unknown `kid` at most once per cooldown
 * (30 s), with concurrent misses sharing one fetch.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { claimsPrincipal } from './claims.js';
import type { Principal } from './types.js';

/** A token that was presented but did not validate; the proxy answers 401 invalid_token. */
export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

/** A key source the proxy refuses to use (not https, not loopback, not a URL): a setup error. */
export class JwtConfigError extends Error {
  override readonly name = 'JwtConfigError';
}

/** How tokens are validated. */
export interface JwtOptions {
  publicKeyFile?: string;
  jwksUrl?: string;
  /**
   * An OpenID issuer: its `jwks_uri` comes from `<issuer>/.well-known/openid-configuration` (fetched
   * on the first token, again after a failure only once the cooldown passed); tokens must name it
   * as `iss` unless `issuer` says otherwise.
   */
  oidcIssuer?: string;
  issuer?: string;
  audience?: string;
  /** Clock skew allowed on exp/nbf, seconds (default 60). */
  leewaySeconds?: number;
  /** Least time between two JWKS fetches caused by an unknown `kid`, milliseconds (default 30 s). */
  jwksCooldownMs?: number;
  fetch?: typeof fetch;
}

/** Largest OpenID discovery document read, bytes. */
export const MAX_DISCOVERY_BYTES = 64 * 1024;
/** Largest JWKS read, bytes. */
export const MAX_JWKS_BYTES = 1024 * 1024;

/** Asymmetric algorithms only (RFC 7518 section 3.1; EdDSA RFC 8037). `none` and HMAC never. */
export const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
  'Ed25519',
];

const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * Extracts the access token of an Authorization header value, if any: the `Bearer` scheme (RFC 6750
 * section 2.1) or the `DPoP` scheme of a sender-constrained token (RFC 9449 section 7.1).
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m?.[1];
}

/**
 * Requires `url` to be an https URL, or http on a loopback host (a local issuer in development and
 * tests); `what` names the setting in the error. Throws `JwtConfigError`.
 */
export function verifyKeySourceUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new JwtConfigError(`${what} is not a URL: ${url}`);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) return parsed;
  throw new JwtConfigError(`${what} must be https (http only on a loopback host): ${url}`);
}

function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  );
}

/** Reads a response body up to `max` bytes; throws when it is larger (the rest is not read). */
async function readBounded(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) {
    await res.body?.cancel();
    throw new Error(`${what} is ${declared} bytes, more than ${max}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > max) {
        await reader.cancel();
        throw new Error(`${what} is more than ${max} bytes`);
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks);
}

/**
 * The `jwks_uri` of an OpenID issuer (OIDC Discovery 1.0 sections 4 and 4.3): the document at
 * `<issuer>/.well-known/openid-configuration` must name exactly that issuer, and its `jwks_uri` must
 * pass `verifyKeySourceUrl`. Redirects are not followed.
 */
export async function discoverJwksUri(issuer: string, fetchImpl: typeof fetch): Promise<URL> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const res = await fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`${url} answered ${res.status}`);
  }
  const text = new TextDecoder().decode(await readBounded(res, MAX_DISCOVERY_BYTES, url));
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`${url} is not JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new Error(`${url} is not an object`);
  const { issuer: named, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  if (named !== issuer) throw new Error(`${url} names issuer ${JSON.stringify(named)}, not ${issuer}`);
  if (typeof jwksUri !== 'string') throw new Error(`${url} has no jwks_uri`);
  return verifyKeySourceUrl(jwksUri, 'the discovered jwks_uri');
}

class JwksUnavailableError extends Error {}

/**
 * jose waits out its cooldown only after a successful JWKS fetch. This fetch also remembers a failed
 * one (network error or non-200) and refuses to fetch again within `cooldownMs`, so tokens with
 * random key IDs cannot make the proxy hammer a JWKS endpoint that is down.
 */
function guardedFetch(inner: typeof fetch, cooldownMs: number): typeof fetch {
  let failedAt = -Infinity;
  return (async (url: Parameters<typeof fetch>[0], init?: RequestInit) => {
    if (Date.now() - failedAt < cooldownMs)
      throw new JwksUnavailableError('jwks fetch failed recently; not retried before the cooldown');
    try {
      const res = await inner(url, init);
      if (res.status !== 200) failedAt = Date.now();
      // Bounded: a key set is small; a larger answer is refused, not held.
      const bytes = await readBounded(res, MAX_JWKS_BYTES, 'jwks');
      return new Response(bytes, { status: res.status, statusText: res.statusText, headers: res.headers });
    } catch (err) {
      failedAt = Date.now();
      throw new JwksUnavailableError(`cannot fetch jwks: ${(err as Error).message}`, { cause: err });
    }
  }) as typeof fetch;
}

/** Resolves principals from Authorization headers. */
export class PrincipalResolver {
  private readonly options: JwtOptions;
  private readonly cooldownMs: number;
  private staticKey: Promise<KeyObject> | undefined;
  private remoteKeys: JWTVerifyGetKey | undefined;
  /**
   * OIDC discovery state (owned here): `discovery` is the one fetch in flight or done;
   * a failure clears it and sets `discoveryFailedAt`, so a down issuer is asked again only after the
   * cooldown: idle -> discovering -> (keys | failed -> idle after cooldown).
   */
  private discovery: Promise<JWTVerifyGetKey> | undefined;
  private discoveryFailedAt = -Infinity;

  /** Throws `JwtConfigError` for a JWKS URL or issuer that is not https (or loopback http). */
  constructor(options: JwtOptions) {
    this.options = options;
    this.cooldownMs = options.jwksCooldownMs ?? 30_000;
    if (options.publicKeyFile === undefined && options.jwksUrl !== undefined) {
      this.remoteKeys = this.remoteKeySet(verifyKeySourceUrl(options.jwksUrl, '--jwks'));
    } else if (options.publicKeyFile === undefined && options.oidcIssuer !== undefined) {
      verifyKeySourceUrl(options.oidcIssuer, '--oidc-issuer');
    }
  }

  private remoteKeySet(url: URL): JWTVerifyGetKey {
    return createRemoteJWKSet(url, {
      cooldownDuration: this.cooldownMs,
      cacheMaxAge: 300_000,
      timeoutDuration: 10_000,
      [customFetch]: guardedFetch(this.options.fetch ?? fetch, this.cooldownMs),
    });
  }

  /** The issuer's key set, discovered on first use (OIDC Discovery 1.0). */
  private async discoveredKeys(issuer: string): Promise<JWTVerifyGetKey> {
    if (this.discovery === undefined) {
      if (Date.now() - this.discoveryFailedAt < this.cooldownMs)
        throw new JwksUnavailableError('issuer discovery failed recently; not retried before the cooldown');
      this.discovery = discoverJwksUri(issuer, this.options.fetch ?? fetch).then((url) =>
        this.remoteKeySet(url),
      );
    }
    try {
      return await this.discovery;
    } catch (err) {
      this.discovery = undefined;
      this.discoveryFailedAt = Date.now();
      throw new JwksUnavailableError(`issuer discovery failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Is a JWT key configured? Then a token that does not validate is rejected, not fingerprinted. */
  get validates(): boolean {
    return (
      this.options.publicKeyFile !== undefined ||
      this.options.jwksUrl !== undefined ||
      this.options.oidcIssuer !== undefined
    );
  }

  /**
   * The principal of a request: anonymous without a token; the validated `sub`/`client_id` when a
   * key is configured (throws `InvalidTokenError` when the token does not validate); else the token's
   * SHA-256.
   */
  async resolve(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    if (token === undefined) {
      if (authorization !== undefined && this.validates)
        throw new InvalidTokenError('authorization is not a bearer token');
      return authorization === undefined
        ? { type: 'anonymous' }
        : { type: 'token', tokenSha256: sha256Hex(authorization) };
    }
    const tokenSha256 = sha256Hex(token);
    if (!this.validates) return { type: 'token', tokenSha256 };
    const claims = await this.verifyJwt(token);
    const principal = claimsPrincipal(claims, tokenSha256);
    if (principal === undefined) throw new InvalidTokenError('token has no sub claim');
    return principal;
  }

  private async verifyJwt(token: string): Promise<JWTPayload> {
    const issuer = this.options.issuer ?? this.options.oidcIssuer;
    const options = {
      algorithms: ALGORITHMS,
      requiredClaims: ['exp'],
      clockTolerance: this.options.leewaySeconds ?? 60,
      ...(issuer === undefined ? {} : { issuer }),
      ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
    };
    try {
      if (this.remoteKeys !== undefined) return (await jwtVerify(token, this.remoteKeys, options)).payload;
      if (this.options.publicKeyFile === undefined && this.options.oidcIssuer !== undefined) {
        const keys = await this.discoveredKeys(this.options.oidcIssuer);
        return (await jwtVerify(token, keys, options)).payload;
      }
      this.staticKey ??= readFile(this.options.publicKeyFile!, 'utf8').then((pem) => createPublicKey(pem));
      return (await jwtVerify(token, await this.staticKey, options)).payload;
    } catch (err) {
      if (err instanceof joseErrors.JOSEError)
        throw new InvalidTokenError(`token does not validate: ${err.code}`);
      if (err instanceof JwksUnavailableError) throw new InvalidTokenError(err.message);
      throw err;
    }
  }
}
