/**
 * The capture core shared by the stdio wrapper, the HTTP proxy and `auditTransport`: turns each
 * JSON-RPC message into an `mcp.message` record, correlates requests with responses, records requests
 * that never got an answer, and decides when a message may be forwarded (audit modes, DESIGN.md "MCP
 * capture"). Browser-safe.
 */
import { randomBytes } from '../crypto.js';
import { SALT_SIZE } from '../sealed.js';
import { base64Encode, hexEncode, isUtf8, utf8 } from '../encoding.js';
import {
  DEFAULT_FIELDS_BUDGET,
  type ClassifiedMessage,
  classifyMessage,
  parseMessage,
  shrinkToFit,
} from './message.js';
import { insertMeta, RECEIPT_META_KEY, RECEIPTS_META_KEY } from './receipt-meta.js';
import { RecordSealer, type SealLevel } from './seal.js';
import type {
  AuditMode,
  Direction,
  HttpFacts,
  JsonObject,
  JsonValue,
  McpTransportName,
  Principal,
  RecordAck,
  RecordOptions,
  RecordSink,
  Side,
} from './types.js';
import {
  commitBytes,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_PART_BYTES,
  OversizeHasher,
  type WireLimits,
} from './wire.js';

/** Record kinds written by capture (besides `stream.open`/`stream.close`, which the emitter writes). */
export const MCP_KINDS = {
  message: 'mcp.message',
  unanswered: 'mcp.unanswered',
  stderr: 'mcp.stderr',
  processStart: 'mcp.process.start',
  processExit: 'mcp.process.exit',
  /** An HTTP request forwarded without a message in it (a GET stream, a DELETE, an empty POST). */
  httpRequest: 'mcp.http.request',
  /** The answer to an HTTP request that carried no message (a DELETE's status, a refused GET). */
  httpResponse: 'mcp.http.response',
  /** An HTTP request the proxy refused without forwarding it (401: no token, invalid token or proof). */
  httpRefused: 'mcp.http.refused',
  /**
   * A message larger than the proxy holds: forwarded unchanged, recorded by its size and an
   * `$oversize` marker (size and salted digest, hashed as it streamed, mcp/wire.ts).
   */
  oversized: 'mcp.message.oversized',
  /** One sealed part of a large message or stderr line (mcp/wire.ts), written before its record. */
  part: 'mcp.part',
} as const;

/** JSON-RPC error code of the answer to a request that was refused because the log was unreachable. */
export const AUDIT_UNAVAILABLE_CODE = -32000;

/** Where a message was seen: the session it belongs to and the facts of its carrier. */
export interface MessageContext {
  /**
   * The correlation scope: the `Mcp-Session-Id` when there is one, else the stdio stream (wrapper run,
   * SDK transport) or the single HTTP exchange of a stateless (2026-07-28) request.
   */
  session: string;
  /** The `Mcp-Session-Id`, when the session is one (OTel `mcp.session.id`). */
  mcpSessionId?: string;
  protocolVersion?: string;
  principal?: Principal;
  http?: HttpFacts;
  /** true when the message was made up by the capturing side (the refusal of sync mode). */
  synthesized?: boolean;
  /** What to seal in this message's records, when not the capture's own level (`auditTransport`). */
  seal?: SealLevel;
}

/** Options of `createCapture`. */
export interface CaptureOptions {
  sink: RecordSink;
  transport: McpTransportName;
  /** `sync` (default): client-to-server requests wait for the log's acknowledgement. */
  mode?: AuditMode;
  /** Milliseconds a sync-mode request waits for the log before it is refused (default 5,000). */
  syncTimeoutMs?: number;
  /** Budget of one record's fields in canonical JSON bytes (default `DEFAULT_FIELDS_BUDGET`). */
  fieldsBudget?: number;
  /** Called for a record that could not be written when nobody awaits it. */
  onError?: (error: unknown) => void;
  /**
   * Raw bytes per sealed part of a large message (default 1 MiB): each part is a record of its own,
   * so one message never makes a record or a submission the log refuses (mcp/wire.ts).
   */
  partBytes?: number;
  /** Largest message whose bytes are kept (default 32 MiB); a larger one gets a `$oversize` marker. */
  maxMessageBytes?: number;
  /** Salt source for tests (default: 16 random bytes per sealed value). */
  salt?: () => Uint8Array;
  /**
   * What records seal (mcp/seal.ts): `payload` (default) the content of messages, stderr lines,
   * process command lines and principal claims; `all` tool, prompt and resource names too; `none`
   * nothing but the `wire` commitment.
   */
  seal?: SealLevel;
  /**
   * Sync mode only: hand the log's receipts back to the client (`decorate`). Answers are then
   * emitted acknowledged too (without waiting for them), so their receipts can follow.
   */
  receipts?: boolean;
}

/**
 * A record acknowledged by the log, waiting for the next message to the client: an answer's, or
 * (`request: true`) the request's of a call answered by a JSON-RPC error, which has no `_meta`.
 */
interface AnswerReceipt {
  id: string | number;
  index: string;
  receipt: string;
  request?: true;
}

/** What `observe` returns: the classified message and when it may be forwarded. */
export interface Observation {
  classified: ClassifiedMessage;
  /**
   * Resolves when the message may be forwarded, rejects when it must not be (sync mode: the log did
   * not acknowledge a gated client-to-server message in time, see `isGated`; spool mode: a
   * client-to-server message could not be spooled). Already resolved when nothing waits. For a batch
   * it covers the records of every member; `refusalOf` gives the answer to send instead.
   */
  gate: Promise<void>;
}

interface Pending {
  method: string;
  name?: string;
  cancelled: boolean;
  /** The call this request is a round of, or a task request of (`correlation.call`). */
  call?: CallRef;
  /** MRTR: method, name or uri and arguments, to find the retry of an `input_required` round. */
  round?: string;
}

/** The first request of a call: its session and id (`correlation.call`). */
type CallRef = { session: string; id: string | number };

/** Requests whose answers start a handshake (`mcp.handshake`): legacy `initialize`, modern `server/discover`. */
const HANDSHAKES: Record<string, string> = { initialize: 'initialize', 'server/discover': 'discover' };

/** Most open MRTR rounds and known tasks a capture remembers (the oldest are forgotten first). */
const MAX_LINKS = 10_000;

const isObj = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a retry must repeat of an MRTR round: method, name or uri, arguments (MCP.md 1.10). */
function roundOf(method: string | undefined, params: unknown): string | undefined {
  if (method !== 'tools/call' && method !== 'prompts/get' && method !== 'resources/read') return undefined;
  if (!isObj(params)) return undefined;
  return JSON.stringify([method, params['name'] ?? null, params['uri'] ?? null, params['arguments'] ?? null]);
}

/** The task a message is about: `params.taskId`, or the related-task `_meta` (MCP.md 1.9). */
function taskIdOf(params: unknown): string | undefined {
  if (!isObj(params)) return undefined;
  if (typeof params['taskId'] === 'string') return params['taskId'];
  const meta = params['_meta'];
  const related = isObj(meta) ? meta['io.modelcontextprotocol/related-task'] : undefined;
  return isObj(related) && typeof related['taskId'] === 'string' ? related['taskId'] : undefined;
}

/** Remembers `key` -> `value` in a bounded map (insertion order: the oldest goes first). */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_LINKS) map.delete(map.keys().next().value as string);
}

/** The JSON type and value of an id, as a map key. */
const idKey = (requester: Side, id: string | number): string => `${requester}:${typeof id}:${String(id)}`;

const requesterOf = (direction: Direction, type: 'request' | 'response'): Side =>
  (direction === 'client_to_server') === (type === 'request') ? 'client' : 'server';

/** The capture state of one capturing process (wrapper, proxy, audited transport). */
export class McpCapture {
  readonly mode: AuditMode;
  private readonly sink: RecordSink;
  private readonly transport: McpTransportName;
  private readonly budget: number;
  private readonly syncTimeoutMs: number;
  private readonly onError: (error: unknown) => void;
  private readonly wireLimits: WireLimits;
  /** One sealer per level (the capture's own, and the others a context may ask for). */
  private readonly sealers: Record<SealLevel, RecordSealer>;
  /** The level records get when their context names none. */
  readonly seal: SealLevel;
  /** Open requests per session; owned by this object, touched only in `observe`/`endSession`. */
  private readonly pending = new Map<string, Map<string, Pending>>();
  private readonly versions = new Map<string, string>();
  /** `--receipts`: whether receipts are handed back (sync mode only). */
  readonly receipts: boolean;
  /** Receipts of acknowledged client requests per session, by correlation key, until answered. */
  private readonly requestReceipts = new Map<string, Map<string, RecordAck>>();
  /** Receipts of answers' records per session, for the next message to the client. */
  private readonly answerReceipts = new Map<string, AnswerReceipt[]>();
  /**
   * MRTR rounds answered `input_required`, by round and request state, naming the call's first
   * request. Capture-wide: in the modern era each HTTP exchange is its own session.
   */
  private readonly rounds = new Map<string, CallRef>();
  /** Tasks by id (`io.modelcontextprotocol/tasks`), naming the request that created them. */
  private readonly tasks = new Map<string, CallRef>();

  constructor(options: CaptureOptions) {
    this.sink = options.sink;
    this.transport = options.transport;
    this.mode = options.mode ?? 'sync';
    this.budget = options.fieldsBudget ?? DEFAULT_FIELDS_BUDGET;
    this.syncTimeoutMs = options.syncTimeoutMs ?? 5000;
    this.onError = options.onError ?? (() => {});
    this.wireLimits = {
      partBytes: options.partBytes ?? DEFAULT_PART_BYTES,
      maxBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    };
    if (options.salt !== undefined) this.wireLimits.salt = options.salt;
    this.seal = options.seal ?? 'payload';
    this.receipts = options.receipts === true && this.mode === 'sync';
    const salt = options.salt;
    const sealer = (level: SealLevel): RecordSealer => new RecordSealer(level, salt);
    this.sealers = { none: sealer('none'), payload: sealer('payload'), all: sealer('all') };
    if (this.sealers[this.seal] === undefined)
      throw new TypeError(`seal must be none, payload or all, not ${String(this.seal)}`);
  }

  /** The sealer for a level (default: the capture's own). */
  sealerFor(level: SealLevel | undefined = this.seal): RecordSealer {
    return this.sealers[level];
  }

  /**
   * Records one message given as text (a stdio line without its terminator, an HTTP body, SSE data);
   * a batch as one record per member. `wire` are the exact bytes it came as (a stdio line with its
   * terminator, an HTTP body); default the UTF-8 of `text`. The record commits to them salted
   * (`wire`); bytes that are not UTF-8 are recorded as base64 (`rawBase64`), never through a lossy
   * decoding.
   */
  observeText(direction: Direction, text: string, context: MessageContext, wire?: Uint8Array): Observation {
    return this.observeClassified(direction, parseMessage(text), context, text, wire ?? utf8(text));
  }

  /**
   * Records one message given as a parsed value (an SDK transport's view). The value is recorded as
   * it goes on the wire, i.e. as JSON.stringify writes it: SDK objects carry `undefined` members (a
   * request without params has `params: undefined`) that JSON drops and RFC 8785 refuses.
   */
  observeValue(direction: Direction, value: JsonValue, context: MessageContext): Observation {
    const raw = JSON.stringify(value) ?? 'null';
    return this.observeClassified(direction, parseMessage(raw), context, raw, utf8(raw));
  }

  private observeClassified(
    direction: Direction,
    classified: ClassifiedMessage,
    context: MessageContext,
    raw: string,
    wire: Uint8Array,
  ): Observation {
    // A batch is recorded member by member (each request found by its method and tool, answers
    // correlated); an empty batch stays one raw record. The batch's bytes are committed to once: the
    // first member's record carries `wire` (and its sealed bytes or parts), and every member names
    // the batch by a random id, so a reviewer ties the members together and checks them against the
    // one commitment. No digest of unsalted content is recorded.
    const members = classified.type === 'batch' ? (classified.message as JsonValue[]) : [];
    const batchId = members.length > 0 ? hexEncode(randomBytes(16)) : undefined;
    const entries =
      batchId === undefined
        ? [{ classified, batch: undefined }]
        : members.map((m, index) => ({
            classified: classifyMessage(m),
            batch: { id: batchId, index, size: members.length },
          }));
    const content: Content = wire.length > this.budget ? 'sealed' : isUtf8(wire) ? 'text' : 'base64';
    if (content === 'sealed' && classified.message !== undefined && classified.type !== 'batch') {
      // Its parsed form is not recorded (see messageFields): do not keep it alive while it ships. A
      // batch keeps its members: each is classified and a refusal names their ids.
      const { message: _message, ...facts } = classified;
      classified = facts;
    }
    const commitment = commitBytes(wire, this.wireLimits);
    const parts = this.writeParts(context.session, commitment.parts);
    const needsAck = this.mode === 'sync' && direction === 'client_to_server' && isGated(classified);
    // A large request has its parts to ship first: one more second for each MiB of it.
    const timeoutMs = this.syncTimeoutMs + Math.floor(wire.length / (1024 * 1024)) * 1000;
    // `--receipts`: a single answer to the client is emitted acknowledged too (not waited for), and
    // both receipts are kept for `decorate`.
    const single = classified.type !== 'batch' && classified.id !== undefined && classified.id !== null;
    const receiptOf =
      this.receipts && single
        ? needsAck && classified.type === 'request'
          ? 'request'
          : direction === 'server_to_client' && (classified.type === 'result' || classified.type === 'error')
            ? 'answer'
            : undefined
        : undefined;
    const ackOptions =
      needsAck || receiptOf !== undefined
        ? { acknowledged: true, ...(timeoutMs > this.syncTimeoutMs ? { timeoutMs } : {}) }
        : { acknowledged: false };
    const writes = entries.map((entry) => {
      const first = entry.batch === undefined || entry.batch.index === 0;
      const fields = this.messageFields(
        direction,
        entry.classified,
        context,
        { raw, wire, content },
        first,
        entry.batch,
      );
      const blobs: Record<string, Uint8Array> = {};
      // Sealed before anything moves to a (public) blob: content is never in a `$blob`.
      const sealed = this.sealerFor(context.seal).sealFields(fields, blobs);
      if (first) {
        sealed['wire'] = commitment.ref;
        Object.assign(blobs, commitment.blobs);
      }
      // Small messages keep their content in the record (sealed, or with large values moved to
      // blobs under `none`); a message over the budget is carried by its sealed parts alone, never
      // parsed apart and re-serialised.
      const bounded = shrinkToFit(sealed, this.budget, blobs) as JsonObject;
      const options = Object.keys(blobs).length > 0 ? { blobs } : {};
      const write = this.sink.record(bounded, { ...options, ...ackOptions });
      if (receiptOf === undefined) return write.then(() => undefined);
      const id = classified.id as string | number;
      return write.then((ack) => {
        if (ack === undefined) return;
        if (receiptOf === 'request') {
          this.receiptMap(context.session).set(idKey('client', id), ack);
        } else {
          let list = this.answerReceipts.get(context.session);
          if (list === undefined) this.answerReceipts.set(context.session, (list = []));
          list.push({ id, index: ack.index, receipt: ack.receipt });
        }
      });
    });
    const written = allOf(
      parts,
      Promise.all(writes).then(() => undefined),
    );
    if (needsAck) return { classified, gate: withTimeout(written, timeoutMs) };
    // Spool mode: what the client sends is durable before the server sees it (nothing runs that the
    // spool does not hold). What the server sends is forwarded at once and made durable by the next
    // group fsync: losing it in a crash loses a record of an answer, never of an action.
    if (this.mode === 'spool' && direction === 'client_to_server') return { classified, gate: written };
    written.catch(this.onError);
    return { classified, gate: Promise.resolve() };
  }

  /**
   * A hasher for a message too large to hold (the proxy's answers past its body bound): fed as the
   * bytes stream, it gives the `$oversize` marker (size and salted digest) for the record's `wire`.
   */
  oversizeHasher(): OversizeHasher {
    return new OversizeHasher(this.wireLimits.salt?.() ?? randomBytes(SALT_SIZE));
  }

  /**
   * Writes the `mcp.part` records of a commitment, in order, before the record that lists them (the
   * sink keeps call order). Each carries one sealed part beside it.
   */
  private writeParts(session: string, parts: ReturnType<typeof commitBytes>['parts']): Promise<void>[] {
    return parts.map((part, index) =>
      this.write(
        {
          kind: MCP_KINDS.part,
          transport: this.transport,
          session,
          index,
          of: parts.length,
          part: part.ref as unknown as JsonObject,
        },
        { blobs: { [part.ref.$sealed.sha256]: part.bytes }, acknowledged: false },
      ),
    );
  }

  /** The `mcp.message` fields of a message, and the correlation bookkeeping it implies. */
  private messageFields(
    direction: Direction,
    classified: ClassifiedMessage,
    context: MessageContext,
    { raw, wire, content }: { raw: string; wire: Uint8Array; content: Content },
    first: boolean,
    batch?: { id: string; index: number; size: number },
  ): JsonObject {
    const fields: JsonObject = {
      kind: MCP_KINDS.message,
      transport: this.transport,
      direction,
      session: context.session,
      messageType: classified.type,
    };
    if (context.mcpSessionId !== undefined) fields['mcp.session.id'] = context.mcpSessionId;
    this.learnVersion(classified, context);
    const version = context.protocolVersion ?? this.versions.get(context.session);
    if (version !== undefined) fields['mcp.protocol.version'] = version;
    const sessionPending = this.sessionPending(context.session);
    if (classified.type === 'request' || classified.type === 'notification') {
      fields['mcp.method.name'] = classified.method ?? '';
      if (classified.method === 'tools/call' && classified.name !== undefined) {
        fields['gen_ai.tool.name'] = classified.name;
      }
      if (classified.method === 'prompts/get' && classified.name !== undefined) {
        fields['gen_ai.prompt.name'] = classified.name;
      }
      if (classified.uri !== undefined) fields['mcp.resource.uri'] = classified.uri;
    }
    const message = isObj(classified.message) ? classified.message : undefined;
    const params = message?.['params'];
    if (classified.type === 'request' && classified.id !== undefined && classified.id !== null) {
      const requester = requesterOf(direction, 'request');
      fields['jsonrpc.request.id'] = String(classified.id);
      const correlation: JsonObject = { requester, id: classified.id };
      fields['correlation'] = correlation;
      const entry: Pending = { method: classified.method ?? '', cancelled: false };
      if (classified.name !== undefined) entry.name = classified.name;
      const handshake = HANDSHAKES[entry.method];
      if (handshake !== undefined) fields['mcp.handshake'] = handshake;
      const round = requester === 'client' ? roundOf(classified.method, params) : undefined;
      if (round !== undefined) {
        entry.round = round;
        // A retry carries the answers and echoes the request state: it continues that call.
        if (isObj(params) && isObj(params['inputResponses'])) {
          const key = `${round}\u0000${JSON.stringify(params['requestState'] ?? null)}`;
          const call = this.rounds.get(key);
          if (call !== undefined) {
            this.rounds.delete(key);
            entry.call = call;
          }
        }
      }
      const taskId = entry.method.startsWith('tasks/') ? taskIdOf(params) : undefined;
      if (taskId !== undefined) {
        fields['mcp.task.id'] = taskId;
        const call = this.tasks.get(taskId);
        if (call !== undefined) entry.call = call;
      }
      if (entry.call !== undefined) correlation['call'] = entry.call;
      sessionPending.set(idKey(requester, classified.id), entry);
    } else if (classified.type === 'notification' && taskIdOf(params) !== undefined) {
      const taskId = taskIdOf(params) as string;
      fields['mcp.task.id'] = taskId;
      const call = this.tasks.get(taskId);
      if (call !== undefined) fields['correlation'] = { call };
    } else if (classified.type === 'notification' && classified.method === 'notifications/cancelled') {
      const params = (classified.message as JsonObject)['params'];
      const requestId =
        typeof params === 'object' && params !== null ? (params as JsonObject)['requestId'] : null;
      if (typeof requestId === 'string' || typeof requestId === 'number') {
        // Cancellation names a request of the same direction as the notification (MCP cancellation).
        const requester = requesterOf(direction, 'request');
        fields['correlation'] = { requester, id: requestId };
        const entry = sessionPending.get(idKey(requester, requestId));
        if (entry !== undefined) entry.cancelled = true;
      }
    } else if (classified.type === 'result' || classified.type === 'error') {
      const id = classified.id;
      if (id !== undefined && id !== null) {
        const requester = requesterOf(direction, 'response');
        fields['jsonrpc.request.id'] = String(id);
        fields['correlation'] = { requester, id };
        const key = idKey(requester, id);
        const request = sessionPending.get(key);
        fields['matched'] = request !== undefined;
        if (request !== undefined) {
          sessionPending.delete(key);
          this.linkAnswer(context.session, id, request, message?.['result'], fields);
          fields['mcp.method.name'] = request.method;
          if (request.method === 'tools/call' && request.name !== undefined) {
            fields['gen_ai.tool.name'] = request.name;
          }
        }
      }
      const errorType = errorTypeOf(classified);
      if (errorType !== undefined) fields['error.type'] = errorType;
    }
    if (context.principal !== undefined) fields['principal'] = context.principal as unknown as JsonObject;
    if (context.http !== undefined) fields['http'] = dropUndefined(context.http as unknown as JsonObject);
    if (context.synthesized === true) fields['synthesized'] = true;
    if (batch !== undefined) fields['batch'] = batch;
    if (content === 'sealed') {
      // The content is in the sealed parts of `wire`; the clear fields above still say what it was.
    } else if (content === 'base64') {
      // Not UTF-8: the exact bytes as base64, once (on a batch's first member), never a lossy decoding.
      if (first) fields['rawBase64'] = base64Encode(wire);
    } else if (classified.message !== undefined && (classified.type !== 'batch' || batch !== undefined)) {
      fields['message'] = classified.message;
    } else {
      fields['raw'] = raw;
    }
    return fields;
  }

  /** Writes a record whose acknowledgement (if any) nobody needs. */
  private write(fields: JsonObject, options?: RecordOptions): Promise<void> {
    return this.sink.record(fields, options).then(() => undefined);
  }

  private receiptMap(session: string): Map<string, RecordAck> {
    let map = this.requestReceipts.get(session);
    if (map === undefined) {
      map = new Map();
      this.requestReceipts.set(session, map);
    }
    return map;
  }

  /**
   * `--receipts`: the text of a server-to-client message as the client gets it. A result answering a
   * client request carries the request record's receipt in `result._meta["io.vigil/receipt"]`; a
   * result, request or notification carries the receipts of earlier answers' records acknowledged
   * since the last one in `_meta["io.vigil/receipts"]` (`[{id, index, receipt}]`; `request: true` for
   * the request of a call answered by an error). Everything else
   * in the text stays byte for byte; `text` itself when there is nothing to add (or receipts are off).
   * Call it after `observeText` recorded the message as the server sent it.
   */
  decorate(session: string, classified: ClassifiedMessage, text: string): string {
    if (!this.receipts) return text;
    const type = classified.type;
    if (type === 'error' && classified.id !== undefined && classified.id !== null) {
      // A JSON-RPC error has no `_meta`: its request's receipt follows on the next message to the
      // client, in the receipts list, marked as a request's.
      const key = idKey('client', classified.id);
      const ack = this.requestReceipts.get(session)?.get(key);
      if (ack !== undefined) {
        this.requestReceipts.get(session)!.delete(key);
        let list = this.answerReceipts.get(session);
        if (list === undefined) this.answerReceipts.set(session, (list = []));
        list.push({ id: classified.id, index: ack.index, receipt: ack.receipt, request: true });
      }
    }
    if (type !== 'result' && type !== 'request' && type !== 'notification') return text;
    const members: Record<string, JsonValue> = {};
    let key: string | undefined;
    if (type === 'result' && classified.id !== undefined && classified.id !== null) {
      key = idKey('client', classified.id);
      const ack = this.requestReceipts.get(session)?.get(key);
      if (ack !== undefined) members[RECEIPT_META_KEY] = ack.receipt;
    }
    const answers = this.answerReceipts.get(session) ?? [];
    if (answers.length > 0) {
      members[RECEIPTS_META_KEY] = answers.map((a) => ({
        id: a.id,
        index: a.index,
        receipt: a.receipt,
        ...(a.request === true ? { request: true } : {}),
      }));
    }
    if (Object.keys(members).length === 0) return text;
    const out = insertMeta(text, type === 'result' ? 'result' : 'params', members);
    if (out === undefined) return text;
    if (key !== undefined) this.requestReceipts.get(session)?.delete(key);
    if (answers.length > 0) this.answerReceipts.delete(session);
    return out;
  }

  /**
   * The links an answer makes: `mcp.handshake` like its request; an `input_required` result opens
   * the next round of the call (MRTR), a result holding a task names the request that created it.
   */
  private linkAnswer(
    session: string,
    id: string | number,
    request: Pending,
    result: JsonValue | undefined,
    fields: JsonObject,
  ): void {
    const handshake = HANDSHAKES[request.method];
    if (handshake !== undefined) fields['mcp.handshake'] = handshake;
    const call = request.call ?? { session, id };
    if (request.call !== undefined) (fields['correlation'] as JsonObject)['call'] = request.call;
    if (!isObj(result)) return;
    if (result['resultType'] === 'input_required' && request.round !== undefined) {
      remember(this.rounds, `${request.round}\u0000${JSON.stringify(result['requestState'] ?? null)}`, call);
    }
    const task = result['task'];
    if (isObj(task) && typeof task['taskId'] === 'string') {
      fields['mcp.task.id'] = task['taskId'];
      if (!request.method.startsWith('tasks/')) remember(this.tasks, task['taskId'], call);
    }
  }

  private sessionPending(session: string): Map<string, Pending> {
    let map = this.pending.get(session);
    if (map === undefined) {
      map = new Map();
      this.pending.set(session, map);
    }
    return map;
  }

  private learnVersion(classified: ClassifiedMessage, context: MessageContext): void {
    const message = classified.message;
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return;
    if (context.protocolVersion !== undefined) {
      this.versions.set(context.session, context.protocolVersion);
      return;
    }
    const result = message['result'];
    if (
      classified.type === 'result' &&
      typeof result === 'object' &&
      result !== null &&
      !Array.isArray(result)
    ) {
      const v = result['protocolVersion'];
      if (typeof v === 'string') this.versions.set(context.session, v);
    }
    const params = message['params'];
    if (typeof params === 'object' && params !== null && !Array.isArray(params)) {
      const meta = params['_meta'];
      if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) {
        const v = meta['io.modelcontextprotocol/protocolVersion'];
        if (typeof v === 'string') this.versions.set(context.session, v);
      }
    }
  }

  /**
   * Moves the open requests of `from` into `to`: an HTTP `initialize` is sent before the server
   * assigns its `Mcp-Session-Id`, so it is recorded under its exchange and answered in the session.
   */
  moveSession(from: string, to: string): void {
    const map = this.pending.get(from);
    if (map === undefined || from === to) return;
    this.pending.delete(from);
    const target = this.sessionPending(to);
    for (const [k, v] of map) target.set(k, v);
    const version = this.versions.get(from);
    if (version !== undefined && !this.versions.has(to)) this.versions.set(to, version);
    const receipts = this.requestReceipts.get(from);
    this.requestReceipts.delete(from);
    for (const [k, v] of receipts ?? []) this.receiptMap(to).set(k, v);
    const answers = this.answerReceipts.get(from);
    this.answerReceipts.delete(from);
    if (answers !== undefined)
      this.answerReceipts.set(to, [...(this.answerReceipts.get(to) ?? []), ...answers]);
    this.versions.delete(from);
  }

  /** Requests of a session that have not been answered yet, as correlation keys. */
  openRequests(session: string): { requester: Side; id: string | number; method: string }[] {
    const out: { requester: Side; id: string | number; method: string }[] = [];
    for (const [key, p] of this.pending.get(session) ?? []) {
      const [requester, type, ...rest] = key.split(':');
      const text = rest.join(':');
      out.push({
        requester: requester as Side,
        id: type === 'number' ? Number(text) : text,
        method: p.method,
      });
    }
    return out;
  }

  /**
   * Ends a session or stream: records every request still without an answer as `mcp.unanswered`
   * (reason `cancelled` when a cancellation was seen, else the given reason) and forgets the session.
   */
  async endSession(session: string, reason: string, seal?: SealLevel): Promise<void> {
    const map = this.pending.get(session);
    this.pending.delete(session);
    this.versions.delete(session);
    this.requestReceipts.delete(session);
    this.answerReceipts.delete(session);
    if (map === undefined) return;
    const writes: Promise<void>[] = [];
    for (const [key, p] of map) {
      const [requester, type, ...rest] = key.split(':');
      const text = rest.join(':');
      const id = type === 'number' ? Number(text) : text;
      const fields: JsonObject = {
        kind: MCP_KINDS.unanswered,
        transport: this.transport,
        session,
        reason: p.cancelled ? 'cancelled' : reason,
        correlation: { requester: requester ?? '', id },
        'jsonrpc.request.id': text,
        'mcp.method.name': p.method,
      };
      if (p.method === 'tools/call' && p.name !== undefined) fields['gen_ai.tool.name'] = p.name;
      const blobs: Record<string, Uint8Array> = {};
      const sealed = this.sealerFor(seal).sealFields(fields, blobs);
      const options = Object.keys(blobs).length > 0 ? { blobs } : {};
      writes.push(this.write(sealed, { ...options, acknowledged: false }));
    }
    await Promise.all(writes);
  }

  /**
   * Records one stderr line of a stdio server: `line` as text when it is UTF-8 and small, else
   * `lineBase64` (not UTF-8) or, over the budget, `lineWire` (its sealed parts, mcp/wire.ts).
   */
  stderrLine(session: string, text: string, bytes: Uint8Array): Promise<void> {
    const fields: JsonObject = { kind: MCP_KINDS.stderr, session };
    if (bytes.length > this.budget) {
      const commitment = commitBytes(bytes, this.wireLimits);
      const parts = this.writeParts(session, commitment.parts);
      fields['lineWire'] = commitment.ref;
      const options = Object.keys(commitment.blobs).length > 0 ? { blobs: commitment.blobs } : {};
      return allOf(parts, this.write({ transport: this.transport, ...fields }, options));
    }
    if (isUtf8(bytes)) fields['line'] = text;
    else fields['lineBase64'] = base64Encode(bytes);
    return this.event(fields);
  }

  /**
   * Records a non-message event (stderr line, process start or exit, an HTTP request without a
   * message) without waiting for the log, sealed at the capture's level.
   */
  event(fields: JsonObject): Promise<void> {
    const blobs: Record<string, Uint8Array> = {};
    const sealed = this.sealerFor().sealFields({ transport: this.transport, ...fields }, blobs);
    const bounded = shrinkToFit(sealed, this.budget, blobs) as JsonObject;
    return this.write(bounded, Object.keys(blobs).length > 0 ? { blobs, acknowledged: false } : {});
  }

  /** Ends every open session with `reason`, then closes the sink. */
  async close(reason = 'stream_end'): Promise<void> {
    for (const session of [...this.pending.keys()]) await this.endSession(session, reason);
    await this.sink.close();
  }
}

/** Creates the capture state for one capturing process. */
export function createCapture(options: CaptureOptions): McpCapture {
  return new McpCapture(options);
}

/**
 * Whether the server could act on a client-to-server message, so that sync mode forwards it only
 * after the log acknowledged its record: a request, a batch holding anything gated, and anything that
 * is neither a notification nor an answer (not JSON, or JSON that is not JSON-RPC: a lenient server
 * may still act on it, so it is not let through unlogged).
 */
export function isGated(classified: ClassifiedMessage): boolean {
  switch (classified.type) {
    case 'notification':
    case 'result':
    case 'error':
      return false;
    case 'batch':
      return (classified.message as JsonValue[]).some((m) => isGated(classifyMessage(m)));
    default:
      return true;
  }
}

/**
 * The JSON-RPC error answering a client-to-server request that sync mode refused to forward because
 * the log did not acknowledge its record. Same id as the request; `null` when the message had no
 * usable id (JSON-RPC 2.0 section 5).
 */
export function refusalFor(id: string | number | null, reason: string): JsonObject {
  return {
    jsonrpc: '2.0',
    id,
    error: {
      code: AUDIT_UNAVAILABLE_CODE,
      message: `audit log unavailable: the request was not forwarded (${reason})`,
      data: { vigil: 'AUDIT_LOG_UNAVAILABLE' },
    },
  };
}

/**
 * The answer to a gated message that was not forwarded: the refusal of a request, an array of
 * refusals for a batch (one per gated member, JSON-RPC 2.0 section 6), undefined for what gets no
 * answer (notifications and answers).
 */
export function refusalOf(classified: ClassifiedMessage, reason: string): JsonValue | undefined {
  if (classified.type === 'batch') {
    const out = (classified.message as JsonValue[])
      .map((m) => classifyMessage(m))
      .filter((m) => isGated(m))
      .map((m) => refusalFor(m.type === 'request' ? (m.id ?? null) : null, reason));
    return out.length > 0 ? out : undefined;
  }
  if (!isGated(classified)) return undefined;
  return refusalFor(classified.type === 'request' ? (classified.id ?? null) : null, reason);
}

/** OTel `error.type`: the JSON-RPC error code, or `tool_error` for a tool result with `isError`. */
function errorTypeOf(classified: ClassifiedMessage): string | undefined {
  const message = classified.message as JsonObject;
  if (classified.type === 'error') {
    const error = message['error'];
    if (
      typeof error === 'object' &&
      error !== null &&
      !Array.isArray(error) &&
      typeof error['code'] === 'number'
    ) {
      return String(error['code']);
    }
    return 'error';
  }
  const result = message['result'];
  if (typeof result === 'object' && result !== null && !Array.isArray(result) && result['isError'] === true) {
    return 'tool_error';
  }
  return undefined;
}

/**
 * How a message's content is kept in its record: as JSON (`message`, or `raw` when not JSON), as
 * base64 of bytes that are not UTF-8 (`rawBase64`), or only sealed in `wire` (over the budget).
 */
type Content = 'text' | 'base64' | 'sealed';

/** Resolves when every part and then the record are written; rejects with the first failure. */
function allOf(parts: Promise<void>[], record: Promise<void>): Promise<void> {
  if (parts.length === 0) return record;
  return Promise.all([...parts, record]).then(() => undefined);
}

function dropUndefined(o: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** Error of a gate that timed out waiting for the log. */
export class AuditUnavailableError extends Error {
  readonly code = 'AUDIT_UNAVAILABLE';
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new AuditUnavailableError(`log did not acknowledge within ${ms} ms`)),
      ms,
    );
    p.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(new AuditUnavailableError(`log did not acknowledge: ${String(err)}`, { cause: err }));
      },
    );
  });
}
