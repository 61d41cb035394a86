/**
 * DPoP proofs (RFC 9449) for the proxy: a request presenting a sender-constrained access token (one
 * with `cnf.jkt`) must carry a `DPoP` header holding a proof made with that key for this request.
 * Checked as RFC 9449 section 4.3 lists: exactly one proof; a JWT with `typ: dpop+jwt`, an asymmetric
 * `alg`, and a public `jwk` in its header whose signature verifies; `jti`, `htm`, `htu` and `iat`
 * present; `htm`/`htu` equal to this request's method and URI (query and fragment ignored); `iat`
 * fresh; `ath` the hash of the presented token; the `jwk`'s RFC 7638 thumbprint equal to `cnf.jkt`;
 * a `jti` not seen before within the freshness window. Validation is jose's. Node only.
 */
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors as joseErrors, type JWK, jwtVerify } from 'jose';
import { ALGORITHMS } from './jwt.js';

/** Why a request's DPoP proof was not accepted: `DPOP_PROOF_MISSING` or `DPOP_PROOF_INVALID`. */
export class DpopProofError extends Error {
  override readonly name = 'DpopProofError';
  readonly code: 'DPOP_PROOF_MISSING' | 'DPOP_PROOF_INVALID';
  constructor(code: DpopProofError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/** The request a proof must match. */
export interface DpopRequest {
  /** HTTP method (`htm`). */
  method: string;
  /** The URI the client sent the request to (`htu`), as the client sees the proxy. */
  url: string;
  /** The access token presented with it (`ath` is its SHA-256). */
  accessToken: string;
  /** The token's `cnf.jkt`. */
  jkt: string;
}

/** Options of `DpopVerifier`. */
export interface DpopOptions {
  /** Oldest `iat` accepted, seconds before now (default 300). */
  maxAgeSeconds?: number;
  /** Clock skew allowed on `iat`, seconds (default 60). */
  leewaySeconds?: number;
  /** Most proof ids remembered against replay (default 100,000; the oldest are forgotten first). */
  replayCacheSize?: number;
}

const base64url = (bytes: Buffer): string => bytes.toString('base64url');

/**
 * Whether `htu` names the same URI as `url`, ignoring query and fragment (RFC 9449 section 4.3 step
 * 9), after URL normalisation (scheme and host case, default port, dot segments).
 */
export function isSameTarget(htu: string, url: string): boolean {
  let a: URL;
  let b: URL;
  try {
    a = new URL(htu);
    b = new URL(url);
  } catch {
    return false;
  }
  return a.protocol === b.protocol && a.host === b.host && a.pathname === b.pathname;
}

/** Verifies DPoP proofs and remembers their ids (state owned here: the replay cache). */
export class DpopVerifier {
  private readonly maxAgeSeconds: number;
  private readonly leewaySeconds: number;
  private readonly replayCacheSize: number;
  /** `jkt` + `jti` -> when it may be forgotten (ms); insertion ordered, so the oldest goes first. */
  private readonly seen = new Map<string, number>();

  constructor(options: DpopOptions = {}) {
    this.maxAgeSeconds = options.maxAgeSeconds ?? 300;
    this.leewaySeconds = options.leewaySeconds ?? 60;
    this.replayCacheSize = options.replayCacheSize ?? 100_000;
  }

  /**
   * Verifies `proof` (the `DPoP` header value, undefined when absent) against `request`; returns
   * nothing or throws `DpopProofError`. Requires a non-empty `request.jkt`.
   */
  async verify(proof: string | undefined, request: DpopRequest): Promise<void> {
    if (request.jkt.length === 0) throw new DpopProofError('DPOP_PROOF_INVALID', 'empty cnf.jkt');
    if (proof === undefined || proof.length === 0)
      throw new DpopProofError('DPOP_PROOF_MISSING', 'no DPoP proof for a sender-constrained token');
    // Node joins repeated headers with ", "; a compact JWS never holds a comma.
    if (proof.includes(',')) throw new DpopProofError('DPOP_PROOF_INVALID', 'more than one DPoP header');
    let payload: Record<string, unknown>;
    let jwk: JWK;
    try {
      const verified = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ALGORITHMS,
        requiredClaims: ['jti', 'htm', 'htu', 'iat'],
        maxTokenAge: this.maxAgeSeconds,
        clockTolerance: this.leewaySeconds,
      });
      payload = verified.payload as Record<string, unknown>;
      jwk = verified.protectedHeader.jwk as JWK;
    } catch (err) {
      if (err instanceof joseErrors.JOSEError)
        throw new DpopProofError('DPOP_PROOF_INVALID', `proof does not validate: ${err.code}`);
      throw err;
    }
    if ((await calculateJwkThumbprint(jwk, 'sha256')) !== request.jkt)
      throw new DpopProofError('DPOP_PROOF_INVALID', 'proof key is not the key the token is bound to');
    if (payload['htm'] !== request.method)
      throw new DpopProofError('DPOP_PROOF_INVALID', `htm is not ${request.method}`);
    if (typeof payload['htu'] !== 'string' || !isSameTarget(payload['htu'], request.url))
      throw new DpopProofError('DPOP_PROOF_INVALID', 'htu is not this request uri');
    const ath = base64url(createHash('sha256').update(request.accessToken, 'ascii').digest());
    if (payload['ath'] !== ath)
      throw new DpopProofError('DPOP_PROOF_INVALID', 'ath does not match the access token');
    if (typeof payload['jti'] !== 'string' || payload['jti'].length === 0)
      throw new DpopProofError('DPOP_PROOF_INVALID', 'jti is not a string');
    this.remember(`${request.jkt}\u0000${payload['jti']}`);
  }

  /** Records a proof id; throws when it was seen within the freshness window (a replay). */
  private remember(key: string): void {
    const now = Date.now();
    for (const [k, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(k);
    }
    const until = this.seen.get(key);
    if (until !== undefined && until > now)
      throw new DpopProofError('DPOP_PROOF_INVALID', 'proof was already used (jti replayed)');
    // Past this, the iat check refuses the proof anyway.
    this.seen.set(key, now + (this.maxAgeSeconds + 2 * this.leewaySeconds) * 1000);
    if (this.seen.size > this.replayCacheSize) this.seen.delete(this.seen.keys().next().value as string);
  }
}
