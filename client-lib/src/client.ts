/**
 * HTTP client for a Vigil log (DESIGN.md "HTTP API") and, for the read side, any c2sp.org/tlog-tiles
 * log. Uses only `fetch`, so it runs in browsers too. Nothing here is trusted: callers verify what
 * they read (receipts with verifyReceipt, checkpoints with verifyCheckpoint / CheckpointStore).
 */
import { base64Decode } from './encoding.js';
import { readLimited } from './read-limited.js';
import { tilePath } from './tiles/path.js';

/** One submission as `POST /v1/entries` takes it (DESIGN.md "Contract details"). */
export interface Submission {
  emitter: string;
  record: Record<string, unknown>;
  sig: string;
  /** Blob bytes by lowercase hex SHA-256, base64. */
  blobs?: Record<string, string>;
}

/** One answer item of `POST /v1/entries`. */
export interface SubmitResult {
  index: bigint;
  leafHash: string;
  receipt: string;
  /** Base64 entry bytes, when the log sends them (saves a bundle fetch). */
  entry?: string;
}

/** `GET /v1/log`. */
export interface LogInfo {
  origin: string;
  vkey: string;
  witnesses: { name: string; vkey: string; url?: string }[];
  quorum: number;
  emitters: { name: string; vkey: string; revoked: boolean }[];
  /** The log's operator emitter (it signs the registry records); absent on logs older than it. */
  operator?: { name: string; vkey: string };
  limits: Record<string, unknown>;
}

/** Query of `GET /v1/search`. */
export interface SearchQuery {
  emitter?: string;
  stream?: string;
  session?: string;
  method?: string;
  tool?: string;
  since?: string;
  until?: string;
  limit?: number;
  after?: string;
}

/** One search result: the log's claim, to be verified by the caller. */
export interface SearchResult {
  index: bigint;
  /** The decoded entry as the log sent it. */
  entry: Record<string, unknown>;
  receipt: string;
}

/**
 * Sealed bytes S the log sent for some commitments, and the commitments it says were erased (hex ->
 * index of the log.erasure record). Unverified: open each S with `openSealed` against the ref the
 * entry carries; check each erasure against the log.erasure record at that index.
 */
export interface SealedAnswer {
  sealed: Map<string, Uint8Array>;
  erased: Map<string, bigint>;
}

/** `GET /v1/entries/<index>`: the entry, its leaf hash and a receipt (unverified). */
export interface EntryAnswer {
  index: bigint;
  leafHash: string;
  entry: Record<string, unknown>;
  receipt: string;
}

/** What `GET /v1/sealed/<hex>` gave: S, or the index of the log.erasure record that erased it. */
export type SealedValueAnswer = { bytes: Uint8Array } | { erased: bigint };

/** The message of every 401 READER_REQUIRED (the token itself never appears in an error). */
export const READER_REQUIRED_MESSAGE = 'this log needs a reader token (--reader-token or VIGIL_READER_TOKEN)';

/** Most bytes of a JSON answer (search, entry, /v1/log, sealed maps) unless the caller says otherwise. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Most bytes of a text answer (checkpoint, receipt) and of an error body. */
const MAX_TEXT_BYTES = 1024 * 1024;
/** Most bytes of an error body kept for the message. */
const MAX_ERROR_BYTES = 64 * 1024;
/** An entry bundle holds at most 256 entries of at most 65,535 bytes, each with a 2-byte length. */
const MAX_BUNDLE_BYTES = 256 * (65_535 + 2);
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A failed request to the log. `status` is 0 when no HTTP answer arrived (network error, timeout).
 * `code` is the log's UPPER_SNAKE code when it sent one. `retryAfterMs` comes from Retry-After.
 */
export class LogRequestError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterMs: number | undefined;
  readonly body: unknown;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { retryAfterMs?: number; body?: unknown; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'LogRequestError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.body = options.body;
  }

  /** Whether retrying the same request later may succeed (network, 408, 425, 429, 5xx). */
  get retryable(): boolean {
    return (
      this.status === 0 ||
      this.status === 408 ||
      this.status === 425 ||
      this.status === 429 ||
      this.status >= 500
    );
  }
}

/** Parses a Retry-After header (delta seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

export interface LogClientOptions {
  fetch?: typeof fetch;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /**
   * A reader token (`vigil_rt_...`) of this log, sent as `Authorization: Bearer` on the reader
   * endpoints only (sealed values, search, opened entries): never in a URL, never in an error, never
   * on a redirect (those requests refuse to follow one).
   */
  readerToken?: string;
  /** Most bytes of a JSON answer; default DEFAULT_MAX_RESPONSE_BYTES (64 MiB). */
  maxResponseBytes?: number;
}

/** Decimal-string check used on every size or index the log sends (STYLE.md section 9). */
function decimal(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)$/.test(v)) {
    throw new LogRequestError(200, 'RESPONSE_MALFORMED', `${what} is not a canonical decimal string`);
  }
  return BigInt(v);
}

/**
 * Client for one log at `baseUrl` (the tlog-tiles prefix; `…/checkpoint`, `…/tile/…`, `…/v1/…`).
 */
export class LogClient {
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  readonly #readerToken: string | undefined;
  private readonly maxResponseBytes: number;

  constructor(baseUrl: string, options: LogClientOptions = {}) {
    this.baseUrl = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.headers = options.headers ?? {};
    if (options.readerToken !== undefined && !/^[\x21-\x7e]+$/.test(options.readerToken))
      throw new LogRequestError(
        0,
        'READER_TOKEN_INVALID',
        'the reader token has spaces or non-ascii characters',
      );
    this.#readerToken = options.readerToken === '' ? undefined : options.readerToken;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** Whether a reader token was given (reader endpoints answer 401 without one). */
  get hasReaderToken(): boolean {
    return this.#readerToken !== undefined;
  }

  /**
   * Sends one request; throws LogRequestError for network errors and every non-2xx answer. With
   * `reader`, the reader token goes in the Authorization header and a redirect is refused (so the
   * token is never sent anywhere else); a 401 becomes READER_REQUIRED with READER_REQUIRED_MESSAGE.
   */
  async request(path: string, init: RequestInit = {}, options: { reader?: boolean } = {}): Promise<Response> {
    const url = new URL(path, this.baseUrl).toString();
    const reader = options.reader === true && this.#readerToken !== undefined;
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        ...init,
        headers: {
          ...this.headers,
          ...(init.headers as Record<string, string> | undefined),
          ...(reader ? { authorization: `Bearer ${this.#readerToken}` } : {}),
        },
        ...(reader ? { redirect: 'error' as const } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new LogRequestError(0, 'NETWORK_ERROR', `cannot reach ${url}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (res.ok) return res;
    let text = '';
    try {
      text = new TextDecoder().decode(await readLimited(res, MAX_ERROR_BYTES, `${url} error body`));
    } catch {
      // an error body too large or cut off: the status says enough
    }
    let body: unknown = text;
    let code = `HTTP_${res.status}`;
    let message = text.slice(0, 300);
    try {
      body = JSON.parse(text);
      const b = body as { code?: unknown; message?: unknown };
      if (typeof b.code === 'string') code = b.code;
      if (typeof b.message === 'string') message = b.message.slice(0, 300);
    } catch {
      // not JSON: keep the text
    }
    if (res.status === 401) {
      const why = reader ? 'the log refused the reader token (unknown or revoked); ' : '';
      throw new LogRequestError(401, 'READER_REQUIRED', `${url}: 401: ${why}${READER_REQUIRED_MESSAGE}`, {
        body,
      });
    }
    throw new LogRequestError(res.status, code, `${url}: ${res.status} ${code}: ${message}`, {
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), Date.now()),
      body,
    });
  }

  /** Reads a whole answer body, at most `maxBytes` (RESPONSE_TOO_LARGE past it). */
  private async bytes(res: Response, maxBytes: number, what: string): Promise<Uint8Array> {
    try {
      return await readLimited(res, maxBytes, what);
    } catch (err) {
      if (err instanceof LogRequestError) throw err;
      const code =
        (err as { code?: unknown }).code === 'RESPONSE_TOO_LARGE' ? 'RESPONSE_TOO_LARGE' : 'NETWORK_ERROR';
      throw new LogRequestError(res.status, code, `${what}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async text(path: string, maxBytes = MAX_TEXT_BYTES): Promise<string> {
    return new TextDecoder().decode(await this.bytes(await this.request(path), maxBytes, path));
  }

  private async json(
    path: string,
    init?: RequestInit,
    options: { reader?: boolean; maxBytes?: number } = {},
  ): Promise<unknown> {
    const res = await this.request(path, init, options);
    const text = new TextDecoder().decode(
      await this.bytes(res, options.maxBytes ?? this.maxResponseBytes, path.split('?')[0]!),
    );
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new LogRequestError(
        res.status,
        'RESPONSE_MALFORMED',
        `${path.split('?')[0]!}: response is not JSON`,
        {
          cause: err,
        },
      );
    }
  }

  /** `GET /v1/log`. */
  async logInfo(): Promise<LogInfo> {
    const b = (await this.json('v1/log')) as Partial<LogInfo>;
    if (typeof b.origin !== 'string' || typeof b.vkey !== 'string') {
      throw new LogRequestError(200, 'RESPONSE_MALFORMED', '/v1/log lacks origin or vkey');
    }
    return {
      origin: b.origin,
      vkey: b.vkey,
      witnesses: Array.isArray(b.witnesses) ? b.witnesses : [],
      quorum: typeof b.quorum === 'number' ? b.quorum : 0,
      emitters: Array.isArray(b.emitters) ? b.emitters : [],
      ...(typeof b.operator?.name === 'string' && typeof b.operator.vkey === 'string'
        ? { operator: { name: b.operator.name, vkey: b.operator.vkey } }
        : {}),
      limits: typeof b.limits === 'object' && b.limits !== null ? b.limits : {},
    };
  }

  /** `GET /checkpoint`: the signed note text (unverified). */
  async checkpoint(): Promise<string> {
    return this.text('checkpoint');
  }

  /** `GET /checkpoint/witnessed`. */
  async witnessedCheckpoint(): Promise<string> {
    return this.text('checkpoint/witnessed');
  }

  /** `POST /v1/entries`: up to 1,000 submissions; resolves once they are in a signed checkpoint. */
  async submit(entries: readonly Submission[]): Promise<{ entries: SubmitResult[]; checkpoint: string }> {
    const b = (await this.json('v1/entries', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entries }),
    })) as { entries?: unknown; checkpoint?: unknown };
    if (!Array.isArray(b.entries) || b.entries.length !== entries.length) {
      throw new LogRequestError(
        200,
        'RESPONSE_MALFORMED',
        `log answered ${String((b.entries as unknown[] | undefined)?.length)} results for ${entries.length} entries`,
      );
    }
    const results = b.entries.map((e: Record<string, unknown>, i: number): SubmitResult => {
      if (typeof e.receipt !== 'string' || typeof e.leafHash !== 'string') {
        throw new LogRequestError(200, 'RESPONSE_MALFORMED', `result ${i} lacks receipt or leafHash`);
      }
      return {
        index: decimal(e.index, `result ${i} index`),
        leafHash: e.leafHash,
        receipt: e.receipt,
        ...(typeof e.entry === 'string' ? { entry: e.entry } : {}),
      };
    });
    return { entries: results, checkpoint: typeof b.checkpoint === 'string' ? b.checkpoint : '' };
  }

  /**
   * `GET /tile/<L>/<N>[.p/<W>]`: `width` hashes of 32 bytes. Checks the length only; the caller
   * verifies the hashes against a verified checkpoint.
   */
  async readTile(level: number, index: bigint, width: number): Promise<Uint8Array> {
    const path = tilePath({ level, index, width });
    const bytes = await this.bytes(await this.request(path), width * 32, path);
    if (bytes.length !== width * 32) {
      throw new LogRequestError(
        200,
        'RESPONSE_MALFORMED',
        `${path} has ${bytes.length} bytes, want ${width * 32}`,
      );
    }
    return bytes;
  }

  /** `GET /tile/entries/<N>[.p/<W>]`: the raw bundle bytes (decode with decodeEntryBundle). */
  async readEntryBundle(index: bigint, width: number): Promise<Uint8Array> {
    const path = tilePath({ level: 'entries', index, width });
    return this.bytes(await this.request(path), MAX_BUNDLE_BYTES, path);
  }

  /** `GET /v1/receipt/<index>[?witnessed=1]`: tlog-proof@v1 text (unverified). */
  async receipt(index: bigint, options: { witnessed?: boolean } = {}): Promise<string> {
    return this.text(`v1/receipt/${index}${options.witnessed === true ? '?witnessed=1' : ''}`);
  }

  /**
   * `GET /v1/search` (reader): newest first. Every result must be verified by the caller. With
   * `open`, the answer also carries the sealed values of the results (one map for the whole answer).
   */
  async search(
    query: SearchQuery,
    options: { open?: boolean } = {},
  ): Promise<{ results: SearchResult[]; next?: string } & Partial<SealedAnswer>> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    if (options.open === true) params.set('open', '1');
    const b = (await this.json(`v1/search?${params.toString()}`, undefined, { reader: true })) as Record<
      string,
      unknown
    >;
    const list = (Array.isArray(b.entries) ? b.entries : Array.isArray(b.results) ? b.results : undefined) as
      Record<string, unknown>[] | undefined;
    if (list === undefined) throw new LogRequestError(200, 'RESPONSE_MALFORMED', '/v1/search lacks entries');
    const results = list.map((r, i): SearchResult => {
      if (typeof r.receipt !== 'string' || typeof r.entry !== 'object' || r.entry === null) {
        throw new LogRequestError(200, 'RESPONSE_MALFORMED', `search result ${i} lacks entry or receipt`);
      }
      return {
        index: decimal(r.index, `search result ${i} index`),
        entry: r.entry as Record<string, unknown>,
        receipt: r.receipt,
      };
    });
    return {
      results,
      ...(typeof b.next === 'string' ? { next: b.next } : {}),
      ...(options.open === true ? sealedAnswerOf(b, '/v1/search') : {}),
    };
  }

  /**
   * `GET /v1/entries/<index>`, public; with `open` (reader) also the sealed values of the entry.
   * Unverified: check the receipt and open each S against the entry's refs.
   */
  async entry(index: bigint, options: { open?: boolean } = {}): Promise<EntryAnswer & Partial<SealedAnswer>> {
    const open = options.open === true;
    const b = (await this.json(`v1/entries/${index}${open ? '?open=1' : ''}`, undefined, {
      reader: open,
    })) as Record<string, unknown>;
    if (
      typeof b.receipt !== 'string' ||
      typeof b.leafHash !== 'string' ||
      typeof b.entry !== 'object' ||
      b.entry === null
    )
      throw new LogRequestError(
        200,
        'RESPONSE_MALFORMED',
        `/v1/entries/${index} lacks entry, leafHash or receipt`,
      );
    const got = decimal(b.index, `/v1/entries/${index} index`);
    if (got !== index)
      throw new LogRequestError(200, 'RESPONSE_MALFORMED', `/v1/entries/${index} answered entry ${got}`);
    return {
      index,
      leafHash: b.leafHash,
      entry: b.entry as Record<string, unknown>,
      receipt: b.receipt,
      ...(open ? sealedAnswerOf(b, `/v1/entries/${index}`) : {}),
    };
  }

  /**
   * `GET /v1/sealed/<hex>` (reader): S, or the erasure index on 410 ERASED. `size` (the committed
   * size) bounds the read: a longer answer is RESPONSE_TOO_LARGE. 404 is SEALED_NOT_FOUND (thrown).
   */
  async sealed(hex: string, size?: number): Promise<SealedValueAnswer> {
    if (!HEX64.test(hex))
      throw new LogRequestError(0, 'REQUEST_MALFORMED', 'a commitment is 64 lowercase hex');
    let res: Response;
    try {
      res = await this.request(`v1/sealed/${hex}`, {}, { reader: true });
    } catch (err) {
      if (err instanceof LogRequestError && err.status === 410 && err.code === 'ERASED') {
        return { erased: decimal((err.body as { index?: unknown }).index, `410 for ${hex}: index`) };
      }
      throw err;
    }
    return { bytes: await this.bytes(res, size ?? this.maxResponseBytes, `/v1/sealed/${hex}`) };
  }

  /**
   * `GET /v1/sealed?start&end` (reader): S of every sealed ref in the entries [start, end) (end
   * exclusive, at most 1,000 entries), and the ones erased. `maxBytes` bounds the answer (an auditor
   * passes what the refs it holds allow).
   */
  async sealedRange(start: bigint, end: bigint, options: { maxBytes?: number } = {}): Promise<SealedAnswer> {
    if (start < 0n || end <= start || end - start > 1000n)
      throw new RangeError(`sealed range ${start}..${end} must hold 1..1000 entries`);
    const b = await this.json(`v1/sealed?start=${start}&end=${end}`, undefined, {
      reader: true,
      ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}),
    });
    return sealedAnswerOf(b as Record<string, unknown>, '/v1/sealed');
  }

  /**
   * `GET /v1/blobs/<hex>` (public): the blob bytes, read up to `size` and checked by the caller (this
   * only bounds the read).
   */
  async blob(hex: string, size: number): Promise<Uint8Array> {
    if (!HEX64.test(hex))
      throw new LogRequestError(0, 'REQUEST_MALFORMED', 'a blob name is 64 lowercase hex');
    return this.bytes(await this.request(`v1/blobs/${hex}`), size, `/v1/blobs/${hex}`);
  }
}

/**
 * The `sealed` / `erased` maps of an answer (each may be absent: nothing sealed). Names must be 64
 * lowercase hex, S canonical base64 and erasure indices canonical decimals, else RESPONSE_MALFORMED.
 */
function sealedAnswerOf(b: Record<string, unknown>, what: string): SealedAnswer {
  const map = (v: unknown, name: string): [string, unknown][] => {
    if (v === undefined) return [];
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new LogRequestError(200, 'RESPONSE_MALFORMED', `${what}: ${name} is not an object`);
    const items = Object.entries(v);
    for (const [hex] of items)
      if (!HEX64.test(hex))
        throw new LogRequestError(
          200,
          'RESPONSE_MALFORMED',
          `${what}: ${name} has a name that is not 64 hex`,
        );
    return items;
  };
  const sealed = new Map<string, Uint8Array>();
  for (const [hex, v] of map(b.sealed, 'sealed')) {
    try {
      if (typeof v !== 'string') throw new Error('not a string');
      sealed.set(hex, base64Decode(v));
    } catch (err) {
      throw new LogRequestError(200, 'RESPONSE_MALFORMED', `${what}: sealed ${hex} is not base64`, {
        cause: err,
      });
    }
  }
  const erased = new Map<string, bigint>();
  for (const [hex, v] of map(b.erased, 'erased')) erased.set(hex, decimal(v, `${what}: erased ${hex}`));
  return { sealed, erased };
}
