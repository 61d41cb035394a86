/**
 * An incremental parser for `text/event-stream` (WHATWG HTML "Server-sent events", section 9.2.6):
 * fed the bytes as they arrive, it returns each complete event. The proxy forwards the bytes
 * untouched and uses the events only to record the messages. Work is linear in the input: each chunk
 * is scanned once and a line is joined once, when it ends. One event holds at most `maxEventChars`
 * characters of data; past that the parser only counts (`oversized`) and, when given a hasher, feeds
 * the data's UTF-8 to it as it streams (a size and salted digest of what was not kept). Browser-safe.
 */
import type { JsonObject } from './types.js';

/** One dispatched event. `data` joins the data lines with `\n`; `id` is absent when none was set. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
  /**
   * Set when the data passed the parser's bound: `data` is then empty, `size` counts its characters
   * and `wire` is the hasher's digest of the data's UTF-8 (when the parser was given a hasher).
   */
  oversized?: { size: number; wire?: JsonObject };
}

/** Options of `SseParser`. */
export interface SseParserOptions {
  /** Most characters of data one event may hold (default 16 Mi). */
  maxEventChars?: number;
  /** Makes a hasher for the data of an event past the bound (mcp/wire.ts OversizeHasher). */
  oversizeHasher?: () => StreamHasher;
}

/** Takes the bytes of a message as they stream and gives its record's digest. */
export interface StreamHasher {
  update(bytes: Uint8Array): void;
  digest(): JsonObject;
}

/** Characters kept of an over-long line: enough for its field name. */
const PREFIX_CHARS = 16;

/** Parses a stream of SSE bytes into events (comments and unknown fields are dropped, as the spec says). */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private readonly maxEventChars: number;
  /** The line being read: its pieces (only a prefix once it is over-long) and its size. */
  private lineParts: string[] = [];
  private lineChars = 0;
  private lineOverLong = false;
  private afterCr = false;
  /** The event being read. `dataChars` counts its data; past the bound `data` is dropped. */
  private data: string[] = [];
  private dataChars = 0;
  private oversized = false;
  private eventType = '';
  private id: string | undefined;
  private retry: number | undefined;
  private sawField = false;
  private readonly makeHasher: (() => StreamHasher) | undefined;
  private readonly encoder = new TextEncoder();
  /** The hasher of the oversized event being read; whether the current over-long line feeds it. */
  private hasher: StreamHasher | undefined;
  private lineHashed = false;
  /** The start of an over-long line too short yet to tell its field (fewer than 6 characters). */
  private pendingLine: string | undefined;

  /** Requires `maxEventChars` >= 1 when given. */
  constructor(options: SseParserOptions = {}) {
    const max = options.maxEventChars ?? 16 * 1024 * 1024;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxEventChars is ${max}, want >= 1`);
    this.maxEventChars = max;
    this.makeHasher = options.oversizeHasher;
  }

  /** Feeds bytes; returns the events they completed. */
  push(chunk: Uint8Array): SseEvent[] {
    return this.feed(this.decoder.decode(chunk, { stream: true }));
  }

  /** Ends the stream; an event without its terminating blank line is discarded (spec). */
  end(): SseEvent[] {
    return this.feed(this.decoder.decode());
  }

  private feed(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    if (this.afterCr && text.charCodeAt(0) === 10) start = 1;
    if (text.length > 0) this.afterCr = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.append(text, start, i);
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
      const event = this.endLine();
      if (event !== undefined) events.push(event);
    }
    this.append(text, start, text.length);
    return events;
  }

  /** Adds `text[from, to)` to the current line, keeping only a prefix once the event is over its bound. */
  private append(text: string, from: number, to: number): void {
    if (to <= from) return;
    this.lineChars += to - from;
    if (this.lineOverLong) {
      // The prefix grows to PREFIX_CHARS whatever the chunks, so the field name is always known.
      const prefix = this.lineParts[0]!;
      if (prefix.length < PREFIX_CHARS)
        this.lineParts[0] = prefix + text.slice(from, Math.min(to, from + PREFIX_CHARS - prefix.length));
      if (this.pendingLine !== undefined) this.startHashing(this.pendingLine + text.slice(from, to));
      else if (this.lineHashed) this.hash(text.slice(from, to));
      return;
    }
    if (this.dataChars + this.lineChars <= this.maxEventChars) {
      this.lineParts.push(text.slice(from, to));
      return;
    }
    const line = this.lineParts.join('') + text.slice(from, to);
    this.lineParts = [line.slice(0, PREFIX_CHARS)];
    this.lineOverLong = true;
    this.startHashing(line);
  }

  /**
   * A line took its event past the bound: when it is a data line, the event's data so far (earlier
   * data lines, then this line's value) goes to the hasher, and the rest of the line as it comes.
   */
  private startHashing(line: string): void {
    if (this.makeHasher === undefined) return;
    // Until 6 characters are known, "data:" and "data: " (and other fields) cannot be told apart.
    this.pendingLine = line.length < 6 ? line : undefined;
    if (this.pendingLine !== undefined || !line.startsWith('data:')) return;
    this.startHashingData(line.slice(line.charCodeAt(5) === 32 ? 6 : 5));
  }

  /** Feeds the event's data so far and the first piece of this data line's value. */
  private startHashingData(value: string): void {
    if (this.makeHasher === undefined) return;
    if (this.hasher === undefined) {
      this.hasher = this.makeHasher();
      if (this.data.length > 0) this.hash(this.data.join('\n') + '\n');
    } else {
      this.hash('\n');
    }
    this.hash(value);
    this.lineHashed = true;
  }

  private hash(text: string): void {
    if (text.length > 0) this.hasher?.update(this.encoder.encode(text));
  }

  private endLine(): SseEvent | undefined {
    const line = this.lineParts.length === 1 ? this.lineParts[0]! : this.lineParts.join('');
    const chars = this.lineChars;
    const overLong = this.lineOverLong;
    this.lineParts = [];
    this.lineChars = 0;
    this.lineOverLong = false;
    // An over-long line that ended before its field could be told: a data line with an empty value.
    if (this.pendingLine === 'data' || this.pendingLine === 'data:') this.startHashingData('');
    this.pendingLine = undefined;
    this.lineHashed = false;
    if (line === '' && chars === 0) return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let valueStart = colon === -1 ? chars : colon + 1;
    if (line.charCodeAt(valueStart) === 32) valueStart++;
    this.sawField = true;
    if (overLong) {
      // Only data counts against the bound; an over-long event, id or retry value is dropped.
      if (field === 'data') this.overflow(chars - valueStart);
      return undefined;
    }
    const value = line.slice(valueStart);
    if (field === 'data') {
      this.dataChars += value.length;
      if (!this.oversized) this.data.push(value);
      else this.hash('\n' + value);
    } else if (field === 'event') this.eventType = value;
    else if (field === 'id' && !value.includes('\u0000')) this.id = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retry = Number(value);
    return undefined;
  }

  /** The event's data passed the bound: drop what was kept, count from now on. */
  private overflow(chars: number): void {
    this.oversized = true;
    this.data = [];
    this.dataChars += chars;
  }

  private dispatch(): SseEvent | undefined {
    if (!this.sawField) return undefined;
    const event: SseEvent = { event: this.eventType || 'message', data: this.data.join('\n') };
    if (this.oversized) {
      event.oversized = { size: this.dataChars };
      if (this.hasher !== undefined) event.oversized.wire = this.hasher.digest();
    }
    this.hasher = undefined;
    if (this.id !== undefined) event.id = this.id;
    if (this.retry !== undefined) event.retry = this.retry;
    this.data = [];
    this.dataChars = 0;
    this.oversized = false;
    this.eventType = '';
    // Unlike the spec's last-event-id buffer, `id` here is the id set by this event only.
    this.id = undefined;
    this.retry = undefined;
    this.sawField = false;
    return event;
  }
}
