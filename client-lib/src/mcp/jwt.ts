/**
 * Bearer-token principals for the proxy: validates a JWT access token (RFC 7519, RFC 9068) against a
 * public key file or a JWKS URL the operator trusts, else identifies the token by its SHA-256 only.
 * The token itself is never stored (MCP.md 1.11). Node only.
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
import type { Principal } from './types.js';

/** A token that was presented but did not validate; the proxy answers 401 invalid_token. */
export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

/** How tokens are validated. */
export interface JwtOptions {
  publicKeyFile?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Clock skew allowed on exp/nbf, seconds (default 60). */
  leewaySeconds?: number;
  /** Least time between two JWKS fetches caused by an unknown `kid`, milliseconds (default 30 s). */
  jwksCooldownMs?: number;
  fetch?: typeof fetch;
}

/** Asymmetric algorithms only (RFC 7518 section 3.1; EdDSA RFC 8037). `none` and HMAC never. */
const ALGORITHMS = [
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

/** Extracts the bearer token of an Authorization header value (RFC 6750 section 2.1), if any. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m?.[1];
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
      return res;
    } catch (err) {
      failedAt = Date.now();
      throw new JwksUnavailableError(`cannot fetch jwks: ${(err as Error).message}`, { cause: err });
    }
  }) as typeof fetch;
}

/** Resolves principals from Authorization headers. */
export class PrincipalResolver {
  private readonly options: JwtOptions;
  private staticKey: Promise<KeyObject> | undefined;
  private remoteKeys: JWTVerifyGetKey | undefined;

  constructor(options: JwtOptions) {
    this.options = options;
    if (options.publicKeyFile === undefined && options.jwksUrl !== undefined) {
      const cooldownMs = options.jwksCooldownMs ?? 30_000;
      this.remoteKeys = createRemoteJWKSet(new URL(options.jwksUrl), {
        cooldownDuration: cooldownMs,
        cacheMaxAge: 300_000,
        timeoutDuration: 10_000,
        [customFetch]: guardedFetch(options.fetch ?? fetch, cooldownMs),
      });
    }
  }

  /** Is a JWT key configured? Then a token that does not validate is rejected, not fingerprinted. */
  get validates(): boolean {
    return this.options.publicKeyFile !== undefined || this.options.jwksUrl !== undefined;
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
    const sub = claims['sub'];
    if (typeof sub !== 'string') throw new InvalidTokenError('token has no sub claim');
    const principal: Principal = { type: 'jwt', sub, tokenSha256 };
    const clientId = claims['client_id'] ?? claims['azp'];
    if (typeof clientId === 'string') principal.clientId = clientId;
    if (typeof claims['iss'] === 'string') principal.iss = claims['iss'];
    return principal;
  }

  private async verifyJwt(token: string): Promise<JWTPayload> {
    const options = {
      algorithms: ALGORITHMS,
      requiredClaims: ['exp'],
      clockTolerance: this.options.leewaySeconds ?? 60,
      ...(this.options.issuer === undefined ? {} : { issuer: this.options.issuer }),
      ...(this.options.audience === undefined ? {} : { audience: this.options.audience }),
    };
    try {
      if (this.remoteKeys !== undefined) return (await jwtVerify(token, this.remoteKeys, options)).payload;
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
