/**
 * What capture seals in its records (DESIGN.md "Readers and sealed payloads"; contract "Capture"):
 * each confidential value of a record is replaced by a `{"$sealed":{"sha256","size"}}` commitment and
 * its sealed bytes S travel beside the record, in the same `blobs` map as blob bytes (the log tells
 * them apart by the reference). Browser-safe.
 *
 * Levels:
 * - `none`: records as they were before sealing (only the `wire` commitment is sealed);
 * - `payload` (default): the content is sealed, the facts needed for search and completeness checks
 *   stay clear (kind, direction, session, method, request id, tool/prompt name, resource URI,
 *   correlation, HTTP method/path/status/content type);
 * - `all`: `payload`, and tool names, prompt names and resource URIs too.
 */
import { randomBytes } from '../crypto.js';
import { SALT_SIZE, sealValue } from '../sealed.js';
import type { JsonObject, JsonValue } from './types.js';

/** How much of a record capture seals. */
export type SealLevel = 'none' | 'payload' | 'all';

/** The levels, for validating flags. */
export const SEAL_LEVELS: readonly SealLevel[] = ['none', 'payload', 'all'];

/** Is `text` a seal level? */
export function isSealLevel(text: unknown): text is SealLevel {
  return typeof text === 'string' && (SEAL_LEVELS as readonly string[]).includes(text);
}

/**
 * Record fields that are content wherever they appear: a message's raw text or bytes, a stderr line,
 * and the wrapped process's command line, working directory, environment names and spawn error (the
 * error names the command).
 */
const CONTENT_FIELDS = [
  'raw',
  'rawBase64',
  'line',
  'lineBase64',
  'command',
  'args',
  'cwd',
  'envNames',
  'error',
];

/** Fields sealed only under `all`: they say what was called, which payload keeps searchable. */
const NAME_FIELDS = ['gen_ai.tool.name', 'gen_ai.prompt.name', 'mcp.resource.uri'];

/**
 * HTTP facts that carry content: `origin` and `traceparent` are what the client sent, and
 * `authorizationSha256` is an unsalted digest of a secret (guessable from the secret, and a stable
 * identifier of it), so it is only kept sealed, salted.
 */
const HTTP_CONTENT = ['origin', 'traceparent', 'authorizationSha256'];

/** JSON-RPC members a sealed message keeps in clear (the contract: `jsonrpc`, `id`, `method`). */
function isClearMember(key: string, value: JsonValue): boolean {
  if (key === 'jsonrpc' || key === 'method') return typeof value === 'string';
  if (key === 'id') return value === null || typeof value === 'string' || typeof value === 'number';
  return false;
}

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Seals the record fields of one capturing process at one level. Each sealed value gets a salt of
 * its own (`salt`, default 16 random bytes), so equal values give unrelated commitments.
 */
export class RecordSealer {
  readonly level: SealLevel;
  private readonly salt: () => Uint8Array;

  constructor(level: SealLevel, salt?: () => Uint8Array) {
    if (!isSealLevel(level)) throw new TypeError(`seal must be none, payload or all, not ${String(level)}`);
    this.level = level;
    this.salt = salt ?? (() => randomBytes(SALT_SIZE));
  }

  /** Seals one value: returns its commitment and puts S into `blobs` under its SHA-256 hex. */
  seal(value: JsonValue, blobs: Record<string, Uint8Array>): JsonObject {
    const sealed = sealValue(value, this.salt());
    blobs[sealed.ref.$sealed.sha256] = sealed.bytes;
    return sealed.ref as unknown as JsonObject;
  }

  /**
   * The fields of a record with what this level seals replaced by commitments (S added to `blobs`).
   * `none` returns `fields` unchanged. Runs before `shrinkToFit`, so no content reaches a `$blob`
   * (public): a sealed value of any size is one commitment in the record.
   */
  sealFields(fields: JsonObject, blobs: Record<string, Uint8Array>): JsonObject {
    if (this.level === 'none') return fields;
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(fields)) {
      // A member left undefined (an optional fact not set) is not in the record's JSON at all.
      if (value === undefined) continue;
      if (key === 'message') out[key] = this.sealMessage(value, blobs);
      else if (key === 'principal' && isObject(value)) out[key] = this.sealPrincipal(value, blobs);
      else if (key === 'http' && isObject(value)) out[key] = this.sealHttp(value, blobs);
      else if (CONTENT_FIELDS.includes(key)) out[key] = this.seal(value, blobs);
      else if (this.level === 'all' && NAME_FIELDS.includes(key)) out[key] = this.seal(value, blobs);
      else out[key] = value;
    }
    return out;
  }

  /**
   * A JSON-RPC message keeps `jsonrpc`, `id` and `method`; every other member (`params`, `result`,
   * `error`, anything a lenient peer added) is sealed on its own. JSON that is not an object is
   * sealed whole.
   */
  private sealMessage(message: JsonValue, blobs: Record<string, Uint8Array>): JsonValue {
    if (!isObject(message)) return this.seal(message, blobs);
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(message)) {
      out[key] = isClearMember(key, value) ? value : this.seal(value, blobs);
    }
    return out;
  }

  /** A principal keeps its `type`; its other members are one sealed value, `claims`. */
  private sealPrincipal(principal: JsonObject, blobs: Record<string, Uint8Array>): JsonObject {
    const { type, ...claims } = principal;
    const out: JsonObject = {};
    if (type !== undefined) out['type'] = type;
    if (Object.keys(claims).length > 0) out['claims'] = this.seal(claims, blobs);
    return out;
  }

  private sealHttp(http: JsonObject, blobs: Record<string, Uint8Array>): JsonObject {
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(http)) {
      if (value === undefined) continue;
      const sealed = HTTP_CONTENT.includes(key) || (this.level === 'all' && key === 'mcpName');
      out[key] = sealed ? this.seal(value, blobs) : value;
    }
    return out;
  }
}
