/**
 * Bearer-token principals for the proxy: validates a JWT access token (RFC 7519, RFC 9068) against a
 * public key file or a JWKS URL the operator trusts, else identifies the token by its SHA-256 only.
 * The token itself is never stored (MCP.md 1.11). Node only.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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
  fetch?: typeof fetch;
}

const ALGORITHMS: Record<string, { hash: string | null; dsaEncoding?: 'ieee-p1363'; pss?: boolean }> = {
  RS256: { hash: 'sha256' },
  RS384: { hash: 'sha384' },
  RS512: { hash: 'sha512' },
  PS256: { hash: 'sha256', pss: true },
  ES256: { hash: 'sha256', dsaEncoding: 'ieee-p1363' },
  ES384: { hash: 'sha384', dsaEncoding: 'ieee-p1363' },
  EdDSA: { hash: null },
};

const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Extracts the bearer token of an Authorization header value (RFC 6750 section 2.1), if any. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m?.[1];
}

/** Resolves principals from Authorization headers. */
export class PrincipalResolver {
  private readonly options: JwtOptions;
  private staticKey: KeyObject | undefined;
  private jwks: { at: number; keys: Map<string, KeyObject>; all: KeyObject[] } | undefined;

  constructor(options: JwtOptions) {
    this.options = options;
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

  private async verifyJwt(token: string): Promise<Record<string, unknown>> {
    const parts = token.split('.');
    if (parts.length !== 3) throw new InvalidTokenError('token is not a JWS compact serialisation');
    const [h, p, s] = parts as [string, string, string];
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new InvalidTokenError('token header or payload is not JSON');
    }
    const alg = typeof header['alg'] === 'string' ? ALGORITHMS[header['alg']] : undefined;
    if (alg === undefined)
      throw new InvalidTokenError(`token algorithm ${String(header['alg'])} is not accepted`);
    const keys = await this.keysFor(typeof header['kid'] === 'string' ? header['kid'] : undefined);
    const data = Buffer.from(`${h}.${p}`);
    const signature = Buffer.from(s, 'base64url');
    const ok = keys.some((key) => {
      try {
        const k =
          alg.pss === true
            ? { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }
            : alg.dsaEncoding
              ? { key, dsaEncoding: alg.dsaEncoding }
              : key;
        return verify(alg.hash, data, k, signature);
      } catch {
        return false;
      }
    });
    if (!ok) throw new InvalidTokenError('token signature does not verify');
    const now = Date.now() / 1000;
    const leeway = this.options.leewaySeconds ?? 60;
    if (typeof claims['exp'] === 'number' && now > claims['exp'] + leeway)
      throw new InvalidTokenError('token expired');
    if (typeof claims['nbf'] === 'number' && now < claims['nbf'] - leeway)
      throw new InvalidTokenError('token not yet valid');
    if (this.options.issuer !== undefined && claims['iss'] !== this.options.issuer) {
      throw new InvalidTokenError('token issuer is not trusted');
    }
    if (this.options.audience !== undefined) {
      const aud = claims['aud'];
      const auds = Array.isArray(aud) ? aud : [aud];
      if (!auds.includes(this.options.audience))
        throw new InvalidTokenError('token audience is not this server');
    }
    return claims;
  }

  private async keysFor(kid: string | undefined): Promise<KeyObject[]> {
    if (this.options.publicKeyFile !== undefined) {
      this.staticKey ??= createPublicKey(await readFile(this.options.publicKeyFile, 'utf8'));
      return [this.staticKey];
    }
    const url = this.options.jwksUrl as string;
    const fresh = this.jwks !== undefined && Date.now() - this.jwks.at < 300_000;
    if (!fresh || (kid !== undefined && !this.jwks?.keys.has(kid))) {
      const res = await (this.options.fetch ?? fetch)(url);
      if (!res.ok) throw new InvalidTokenError(`cannot fetch JWKS ${url}: HTTP ${res.status}`);
      const body = (await res.json()) as { keys?: Record<string, unknown>[] };
      const keys = new Map<string, KeyObject>();
      const all: KeyObject[] = [];
      for (const jwk of body.keys ?? []) {
        try {
          const key = createPublicKey({ key: jwk as never, format: 'jwk' });
          all.push(key);
          if (typeof jwk['kid'] === 'string') keys.set(jwk['kid'], key);
        } catch {
          // A key we cannot read cannot validate anything; the others still can.
        }
      }
      this.jwks = { at: Date.now(), keys, all };
    }
    const jwks = this.jwks as { keys: Map<string, KeyObject>; all: KeyObject[] };
    if (kid !== undefined) {
      const key = jwks.keys.get(kid);
      return key === undefined ? [] : [key];
    }
    return jwks.all;
  }
}
