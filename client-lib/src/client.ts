/**
 * HTTP client for a Vigil log (DESIGN.md "HTTP API") and, for the read side, any c2sp.org/tlog-tiles
 * log. Uses only `fetch`, so it runs in browsers too. Nothing here is trusted: callers verify what
 * they read (receipts with verifyReceipt, checkpoints with verifyCheckpoint / CheckpointStore).
 */
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

  constructor(baseUrl: string, options: LogClientOptions = {}) {
    this.baseUrl = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.headers = options.headers ?? {};
  }

  /** Sends one request; throws LogRequestError for network errors and every non-2xx answer. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(path, this.baseUrl).toString();
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        ...init,
        headers: { ...this.headers, ...(init.headers as Record<string, string> | undefined) },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new LogRequestError(0, 'NETWORK_ERROR', `cannot reach ${url}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let body: unknown = text;
    let code = `HTTP_${res.status}`;
    let message = text.slice(0, 300);
    try {
      body = JSON.parse(text);
      const b = body as { code?: unknown; message?: unknown };
      if (typeof b.code === 'string') code = b.code;
      if (typeof b.message === 'string') message = b.message;
    } catch {
      // not JSON: keep the text
    }
    throw new LogRequestError(res.status, code, `${url}: ${res.status} ${code}: ${message}`, {
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), Date.now()),
      body,
    });
  }

  private async json(path: string, init?: RequestInit): Promise<unknown> {
    const res = await this.request(path, init);
    const text = await res.text();
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new LogRequestError(res.status, 'RESPONSE_MALFORMED', `${path}: response is not JSON`, {
        cause: err,
      });
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
    return (await this.request('checkpoint')).text();
  }

  /** `GET /checkpoint/witnessed`. */
  async witnessedCheckpoint(): Promise<string> {
    return (await this.request('checkpoint/witnessed')).text();
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
    const bytes = new Uint8Array(await (await this.request(path)).arrayBuffer());
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
    return new Uint8Array(await (await this.request(path)).arrayBuffer());
  }

  /** `GET /v1/receipt/<index>[?witnessed=1]`: tlog-proof@v1 text (unverified). */
  async receipt(index: bigint, options: { witnessed?: boolean } = {}): Promise<string> {
    return (
      await this.request(`v1/receipt/${index}${options.witnessed === true ? '?witnessed=1' : ''}`)
    ).text();
  }

  /** `GET /v1/search`: newest first. Every result must be verified by the caller. */
  async search(query: SearchQuery): Promise<{ results: SearchResult[]; next?: string }> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const b = (await this.json(`v1/search?${params.toString()}`)) as Record<string, unknown>;
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
    return { results, ...(typeof b.next === 'string' ? { next: b.next } : {}) };
  }
}
