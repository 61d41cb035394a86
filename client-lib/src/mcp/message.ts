/**
 * Building `mcp.message` records: classification of a JSON-RPC message, the OpenTelemetry MCP
 * attribute names, and moving values too large for one log entry into blobs. Browser-safe.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';
import type { JsonObject, JsonValue } from './types.js';

/** What a parsed line or body is. `invalid`: not JSON at all; `other`: JSON but not JSON-RPC. */
export type MessageType = 'request' | 'notification' | 'result' | 'error' | 'batch' | 'invalid' | 'other';

/** A classified message: its parsed value (absent when not JSON) and the facts capture needs. */
export interface ClassifiedMessage {
  type: MessageType;
  message?: JsonValue;
  method?: string;
  /** The JSON-RPC id with its JSON type (`1` and `"1"` differ); absent for notifications. */
  id?: string | number | null;
  /** `params.name` of tools/call and prompts/get. */
  name?: string;
  /** `params.uri` of resources/*. */
  uri?: string;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Classifies a parsed JSON value as a JSON-RPC 2.0 message (JSON-RPC 2.0 section 4-5). A value is a
 * request when it has a string `method` and an `id` member (of any value: a lenient server may answer
 * an id of null or of the wrong type), a notification with a method and no id member, a result or
 * error by those members. Arrays are `batch`: capture records each member as
 * its own message (2025-03-26 allowed batches and servers built then still act on them).
 */
export function classifyMessage(value: JsonValue): ClassifiedMessage {
  if (Array.isArray(value)) return { type: 'batch', message: value };
  if (!isObject(value)) return { type: 'other', message: value };
  const id = value['id'];
  const hasId = typeof id === 'string' || typeof id === 'number';
  const method = value['method'];
  if (typeof method === 'string') {
    const params = value['params'];
    // Only a message without an `id` member is a notification (JSON-RPC 2.0 section 4.1); one whose
    // id is null or not a string or number is still a request, with no id to correlate (`null`).
    const isRequest = 'id' in value;
    const out: ClassifiedMessage = { type: isRequest ? 'request' : 'notification', message: value, method };
    if (isRequest) out.id = hasId ? id : null;
    if (isObject(params)) {
      if (typeof params['name'] === 'string') out.name = params['name'];
      if (typeof params['uri'] === 'string') out.uri = params['uri'];
    }
    return out;
  }
  if ('result' in value && hasId) return { type: 'result', message: value, id };
  if ('error' in value && (hasId || id === null || id === undefined)) {
    return { type: 'error', message: value, id: hasId ? id : null };
  }
  return { type: 'other', message: value };
}

/**
 * Parses one stdio line or HTTP body (UTF-8 text without its line terminator) and classifies it.
 * Text that is not JSON is `invalid` and carries no `message`.
 */
export function parseMessage(text: string): ClassifiedMessage {
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    return { type: 'invalid' };
  }
  return classifyMessage(value);
}

/** Bytes of a canonical JSON value (RFC 8785). */
export function canonicalBytes(value: JsonValue): Uint8Array {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return new TextEncoder().encode(text);
}

/** SHA-256 hex of bytes or of a string's UTF-8 bytes. */
export function sha256Hex(data: Uint8Array | string): string {
  return bytesToHex(sha256(typeof data === 'string' ? new TextEncoder().encode(data) : data));
}

/** A value moved out of a record: DESIGN.md "Large payloads". */
export interface BlobRef {
  $blob: { sha256: string; size: number };
}

/** Is this value a blob reference? */
export function isBlobRef(value: unknown): value is BlobRef {
  if (!isObject(value) || Object.keys(value).length !== 1) return false;
  const inner = value['$blob'];
  return isObject(inner) && typeof inner['sha256'] === 'string' && typeof inner['size'] === 'number';
}

/**
 * Budget of a record's kind-specific fields in canonical JSON bytes. An entry is at most 65,535 bytes
 * (tlog-tiles bundle limit); the entry envelope, the common record fields, the signature and JSON
 * escaping of non-ASCII by other encoders need the rest.
 */
export const DEFAULT_FIELDS_BUDGET = 48 * 1024;

const jsonSize = (v: JsonValue): number => canonicalBytes(v).length;

/**
 * Replaces the largest values inside `value` by blob references until its canonical JSON fits in
 * `maxBytes`, collecting the moved bytes (each the canonical JSON of the moved value) in `blobs`.
 * Containers are shrunk from the inside first so the record keeps its shape (method, id, the small
 * members) and only the bulky leaves move. The blob bytes are canonical JSON, so a reader gets the
 * original value back with `JSON.parse` and the tree commits to it through the hash.
 */
export function shrinkToFit(
  value: JsonValue,
  maxBytes: number,
  blobs: Record<string, Uint8Array>,
): JsonValue {
  const size = jsonSize(value);
  if (size <= maxBytes) return value;
  if (value === null || typeof value !== 'object' || isBlobRef(value)) return toBlob(value, blobs);
  const entries: [string | number, JsonValue][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value);
  const sized = entries.map(([k, v]) => ({ k, v, size: jsonSize(v) })).sort((a, b) => b.size - a.size);
  const out: JsonValue = Array.isArray(value) ? [...value] : { ...value };
  let total = size;
  for (const child of sized) {
    const excess = total - maxBytes;
    if (excess <= 0) break;
    // A blob reference costs about 100 bytes; shrinking a container by less than that is pointless.
    const replacement =
      typeof child.v === 'object' && child.v !== null && child.size - excess > 160
        ? shrinkToFit(child.v, child.size - excess, blobs)
        : toBlob(child.v, blobs);
    (out as Record<string | number, JsonValue>)[child.k] = replacement;
    total = total - child.size + jsonSize(replacement);
  }
  return total <= maxBytes ? out : toBlob(out, blobs);
}

function toBlob(value: JsonValue, blobs: Record<string, Uint8Array>): JsonValue {
  const bytes = canonicalBytes(value);
  const hex = sha256Hex(bytes);
  blobs[hex] = bytes;
  return { $blob: { sha256: hex, size: bytes.length } };
}

/**
 * Puts a value back together from its blob references (the inverse of `shrinkToFit`). `getBlob`
 * returns the bytes for a hash; they are checked against it.
 */
export async function resolveBlobs(
  value: JsonValue,
  getBlob: (sha256: string) => Promise<Uint8Array> | Uint8Array,
): Promise<JsonValue> {
  if (isBlobRef(value)) {
    const bytes = await getBlob(value.$blob.sha256);
    if (sha256Hex(bytes) !== value.$blob.sha256 || bytes.length !== value.$blob.size) {
      throw new Error(`blob ${value.$blob.sha256} does not match its hash or size`);
    }
    return resolveBlobs(JSON.parse(new TextDecoder().decode(bytes)) as JsonValue, getBlob);
  }
  if (Array.isArray(value)) return Promise.all(value.map((v) => resolveBlobs(v, getBlob)));
  if (isObject(value)) {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = await resolveBlobs(v, getBlob);
    return out;
  }
  return value;
}
