/**
 * Salted commitments to the exact bytes of a message (DESIGN.md "Readers and sealed payloads": never
 * a hash of unsalted content), split so that no record and no submission outgrows the log's limits
 * (DESIGN.md "Large payloads"; server: entry <= 65,535 bytes, body <= its maxBodyBytes). Browser-safe.
 *
 * Three shapes, by size of the bytes B:
 * - B <= partBytes: `{"$sealed":{"sha256","size"}}`, S = canonical {"salt","value":"<base64 of B>"},
 *   S travels beside the record (its blobs).
 * - partBytes < B <= maxBytes: `{"$sealedParts":{"size":|B|,"parts":[{"sha256","size"},...]}}`. B is
 *   cut into chunks of partBytes; chunk k is sealed with its own salt into S_k, and each S_k travels
 *   beside its own `mcp.part` record written just before the record that lists it. A reader opens
 *   every S_k, decodes its base64 value and concatenates: B exactly.
 * - B > maxBytes: `{"$oversize":{"size":|B|,"salt":"<base64>","sha256":"<hex SHA-256 of S>"}}`: the
 *   bytes are not kept; S is never built (hashed as it is streamed), and whoever holds B can show
 *   it is the message by recomputing S with the recorded salt.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '../crypto.js';
import { base64Encode, hexEncode, utf8 } from '../encoding.js';
import { SALT_SIZE, sealBytes, type SealedRef } from '../sealed.js';
import type { JsonObject } from './types.js';

/** Raw bytes per sealed part: S_k is about 4/3 of it and a submission carries it base64 again. */
export const DEFAULT_PART_BYTES = 1024 * 1024;

/**
 * Largest message whose bytes are kept (in parts); beyond it only size and salted digest. Measured
 * peak RSS of `vigil mcp wrap` answering one message: 20 MiB 322 MiB, 63 MiB 752 MiB; 32 MiB keeps
 * the peak near 430 MiB (31 MiB: 434 MiB; 40 MiB, marker only: 290 MiB).
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/** The commitment for a record and what has to travel with it. */
export interface WireCommitment {
  /** The value for the record's field. */
  ref: JsonObject;
  /** Sealed bytes carried by the record itself (the single-part shape), keyed by hex SHA-256. */
  blobs: Record<string, Uint8Array>;
  /** Sealed parts, in order: each is written as its own `mcp.part` record before the record. */
  parts: { ref: SealedRef; bytes: Uint8Array }[];
}

/** Sizes that bound a commitment; `salt` is for tests (default: 16 random bytes each). */
export interface WireLimits {
  partBytes: number;
  maxBytes: number;
  salt?: () => Uint8Array;
}

/** Commits to `bytes` in the shape their size calls for (see the module comment). */
export function commitBytes(bytes: Uint8Array, limits: WireLimits): WireCommitment {
  const salt = limits.salt ?? (() => randomBytes(SALT_SIZE));
  if (bytes.length <= limits.partBytes) {
    const sealed = sealBytes(bytes, salt());
    return {
      ref: sealed.ref as unknown as JsonObject,
      blobs: { [sealed.ref.$sealed.sha256]: sealed.bytes },
      parts: [],
    };
  }
  if (bytes.length > limits.maxBytes) return { ref: oversize(bytes, salt()), blobs: {}, parts: [] };
  const parts: WireCommitment['parts'] = [];
  for (let at = 0; at < bytes.length; at += limits.partBytes) {
    const sealed = sealBytes(bytes.subarray(at, at + limits.partBytes), salt());
    parts.push({ ref: sealed.ref, bytes: sealed.bytes });
  }
  return {
    ref: { $sealedParts: { size: bytes.length, parts: parts.map((p) => ({ ...p.ref.$sealed })) } },
    blobs: {},
    parts,
  };
}

/**
 * The `$oversize` marker: SHA-256 of S = `{"salt":"<b64>","value":"<base64 of bytes>"}` (RFC 8785: a
 * base64 string needs no escaping), fed in slices of 3 * 2^16 bytes so that S is never held whole.
 */
function oversize(bytes: Uint8Array, salt: Uint8Array): JsonObject {
  const hasher = new OversizeHasher(salt);
  const step = 3 * 65536;
  for (let at = 0; at < bytes.length; at += step) hasher.update(bytes.subarray(at, at + step));
  return hasher.digest();
}

/**
 * Builds the `$oversize` marker of bytes fed as they stream (an answer too large to hold): the same
 * digest as `commitBytes` gives for the whole, whatever the pieces. Holds at most 2 bytes between
 * calls (base64 works on groups of 3).
 */
export class OversizeHasher {
  private readonly saltText: string;
  private readonly hash = sha256.create();
  private carry: Uint8Array = new Uint8Array(0);
  private size = 0;

  /** `salt`: 16 random bytes (SALT_SIZE). */
  constructor(salt: Uint8Array) {
    this.saltText = base64Encode(salt);
    this.hash.update(utf8(`{"salt":"${this.saltText}","value":"`));
  }

  /** Feeds the next bytes of the message. */
  update(bytes: Uint8Array): void {
    this.size += bytes.length;
    let data = bytes;
    if (this.carry.length > 0) {
      data = new Uint8Array(this.carry.length + bytes.length);
      data.set(this.carry);
      data.set(bytes, this.carry.length);
    }
    const whole = data.length - (data.length % 3);
    if (whole > 0) this.hash.update(utf8(base64Encode(data.subarray(0, whole))));
    this.carry = data.slice(whole);
  }

  /** The marker `{"$oversize":{size, salt, sha256}}`; the hasher is spent after it. */
  digest(): JsonObject {
    if (this.carry.length > 0) this.hash.update(utf8(base64Encode(this.carry)));
    this.hash.update(utf8('"}'));
    return { $oversize: { size: this.size, salt: this.saltText, sha256: hexEncode(this.hash.digest()) } };
  }
}
