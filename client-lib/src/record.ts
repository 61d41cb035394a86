import canonicalize from 'canonicalize';
import { getCryptoProvider, sha256 } from './crypto.js';
import { base64Decode, base64Encode, utf8, utf8Decode } from './encoding.js';
import { TlogError } from './errors.js';
import { parseSignerKey, parseVerifierKey, type VerifierKey } from './note/keys.js';

/** Largest entry (the tile entry-bundle limit). c2sp.org/tlog-tiles. */
export const MAX_ENTRY_SIZE = 65535;

/** A UTF-16 surrogate without its pair: such a string has no UTF-8 form, so RFC 8785 rejects it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkString(s: string, path: string): void {
  if (LONE_SURROGATE.test(s)) throw new TlogError('RECORD_INVALID', `lone utf-16 surrogate at ${path}`);
}

function checkJsonValue(value: unknown, path: string, depth: number): void {
  if (depth > 64) throw new TlogError('RECORD_INVALID', `json nested deeper than 64 at ${path}`);
  if (typeof value === 'string') return checkString(value, path);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TlogError('RECORD_INVALID', `non-canonical number at ${path}`);
    if (Number.isInteger(value) && Math.abs(value) > Number.MAX_SAFE_INTEGER) {
      throw new TlogError('RECORD_INVALID', `non-canonical number at ${path}`);
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkJsonValue(v, `${path}[${i}]`, depth + 1));
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null)
      throw new TlogError('RECORD_INVALID', `not a plain json object at ${path}`);
    for (const [k, v] of Object.entries(value)) {
      checkString(k, `${path} key`);
      if (v === undefined) throw new TlogError('RECORD_INVALID', `undefined value at ${path}.${k}`);
      checkJsonValue(v, `${path}.${k}`, depth + 1);
    }
    return;
  }
  throw new TlogError('RECORD_INVALID', `${typeof value} is not json at ${path}`);
}

/**
 * RFC 8785 canonical JSON of a JSON value. Rejects non-finite numbers and integers beyond
 * +-(2^53-1) ("non-canonical number"), undefined, bigint and non-plain objects with RECORD_INVALID.
 */
export function canonicalJson(value: unknown): string {
  checkJsonValue(value, '$', 0);
  const s = canonicalize(value);
  if (s === undefined) throw new TlogError('RECORD_INVALID', 'value has no json form');
  return s;
}

/** UTF-8 bytes of `canonicalJson(value)`. RFC 8785. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalJson(value));
}

function checkRecord(record: unknown): asserts record is Record<string, unknown> {
  if (record === null || typeof record !== 'object' || Array.isArray(record))
    throw new TlogError('RECORD_INVALID', 'record is not a json object');
}

/** base64 Ed25519 signature with `signerKey` over the record's canonical bytes. DESIGN.md "Records and entries". */
export function signRecord(record: object, signerKey: string): string {
  checkRecord(record);
  const k = parseSignerKey(signerKey);
  return base64Encode(getCryptoProvider().ed25519Sign(canonicalBytes(record), k.seed));
}

/**
 * Verifies a record signature (base64 Ed25519 over the canonical bytes) with an emitter vkey of type
 * 0x01. Throws SIGNATURE_INVALID (also for a malformed signature), RECORD_INVALID, KEY_MALFORMED.
 */
export function verifyRecordSignature(record: object, sig: string, verifierKey: string | VerifierKey): void {
  checkRecord(record);
  const key = typeof verifierKey === 'string' ? parseVerifierKey(verifierKey) : verifierKey;
  if (key.type !== 1) throw new TlogError('KEY_MALFORMED', `emitter key type ${key.type}, want 1`);
  let bytes: Uint8Array;
  try {
    bytes = base64Decode(sig);
  } catch (err) {
    throw new TlogError('SIGNATURE_INVALID', 'record signature is not canonical base64', { cause: err });
  }
  if (
    bytes.length !== 64 ||
    !getCryptoProvider().ed25519Verify(bytes, canonicalBytes(record), key.publicKey)
  ) {
    throw new TlogError('SIGNATURE_INVALID', `record signature by ${key.name} does not verify`);
  }
}

/** base64 SHA-256 of the record's canonical bytes (the `prev` of the next record). DESIGN.md "Records and entries". */
export function recordHash(record: object): string {
  checkRecord(record);
  return base64Encode(sha256(canonicalBytes(record)));
}

/** The fields of a log entry. DESIGN.md "Records and entries". */
export interface Entry {
  received: string;
  emitter: string;
  peer: string;
  record: Record<string, unknown>;
  sig: string;
}

function checkEntryFields(e: Entry): void {
  for (const f of ['received', 'emitter', 'peer', 'sig'] as const) {
    if (typeof e[f] !== 'string') throw new TlogError('RECORD_INVALID', `entry field ${f} is not a string`);
  }
  checkRecord(e.record);
}

/**
 * The entry bytes the tree commits to: canonical JSON of
 * `{"v":1,"received","emitter","peer","record","sig"}`, at most 65,535 bytes. DESIGN.md "Records and entries".
 */
export function formatEntry(e: Entry): Uint8Array {
  checkEntryFields(e);
  const bytes = canonicalBytes({
    v: 1,
    received: e.received,
    emitter: e.emitter,
    peer: e.peer,
    record: e.record,
    sig: e.sig,
  });
  if (bytes.length > MAX_ENTRY_SIZE)
    throw new TlogError('RECORD_INVALID', `entry has ${bytes.length} bytes, at most ${MAX_ENTRY_SIZE}`);
  return bytes;
}

/**
 * `formatEntry` for a record whose canonical JSON the caller has already made
 * (`canonicalJson(record)`, which checked it): the entry's keys sort as emitter, peer, received,
 * record, sig, v, and RFC 8785 writes a string as JSON.stringify does, so the entry is assembled
 * around that text instead of canonicalising the record a second time. Same bytes as formatEntry.
 */
export function formatEntryWithCanonicalRecord(
  e: Omit<Entry, 'record'>,
  canonicalRecord: string,
): Uint8Array {
  for (const f of ['received', 'emitter', 'peer', 'sig'] as const) {
    if (typeof e[f] !== 'string') throw new TlogError('RECORD_INVALID', `entry field ${f} is not a string`);
  }
  const s = JSON.stringify;
  const bytes = utf8(
    `{"emitter":${s(e.emitter)},"peer":${s(e.peer)},"received":${s(e.received)},"record":${canonicalRecord},"sig":${s(e.sig)},"v":1}`,
  );
  if (bytes.length > MAX_ENTRY_SIZE)
    throw new TlogError('RECORD_INVALID', `entry has ${bytes.length} bytes, at most ${MAX_ENTRY_SIZE}`);
  return bytes;
}

/**
 * Parses entry bytes: UTF-8 JSON object with exactly the entry fields, `v` 1, in canonical form,
 * at most 65,535 bytes. Throws RECORD_INVALID. DESIGN.md "Records and entries".
 */
export function parseEntry(bytes: Uint8Array): Entry {
  return parseEntryWithRecord(bytes).entry;
}

/**
 * `parseEntry`, also returning the record's canonical bytes: a view into `bytes`, not a copy. The
 * entry is canonical JSON with sorted keys, so its record sits between the `"record":` that follows
 * the three strings before it and the `,"sig":...,"v":1}` after it; RFC 8785 serialises a string as
 * JSON.stringify does. Saves the auditor a second canonicalisation per entry.
 */
export function parseEntryWithRecord(bytes: Uint8Array): { entry: Entry; record: Uint8Array } {
  if (bytes.length > MAX_ENTRY_SIZE)
    throw new TlogError('RECORD_INVALID', `entry has ${bytes.length} bytes, at most ${MAX_ENTRY_SIZE}`);
  const text = utf8Decode(bytes, 'RECORD_INVALID');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TlogError('RECORD_INVALID', 'entry is not json', { cause: err });
  }
  checkRecord(value);
  const keys = Object.keys(value).sort().join(',');
  if (keys !== 'emitter,peer,received,record,sig,v')
    throw new TlogError('RECORD_INVALID', `entry has fields ${keys}`);
  if (value.v !== 1) throw new TlogError('RECORD_INVALID', 'entry version is not 1');
  const e = value as unknown as Entry;
  checkEntryFields(e);
  if (canonicalJson(value) !== text) throw new TlogError('RECORD_INVALID', 'entry is not canonical json');
  const s = JSON.stringify;
  const head = utf8ByteLength(
    `{"emitter":${s(e.emitter)},"peer":${s(e.peer)},"received":${s(e.received)},"record":`,
  );
  const tail = utf8ByteLength(`,"sig":${s(e.sig)},"v":1}`);
  return {
    entry: { received: e.received, emitter: e.emitter, peer: e.peer, record: e.record, sig: e.sig },
    record: bytes.subarray(head, bytes.length - tail),
  };
}

function utf8ByteLength(text: string): number {
  return utf8(text).length;
}
