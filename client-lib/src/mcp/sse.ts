/**
 * An incremental parser for `text/event-stream` (WHATWG HTML "Server-sent events", section 9.2.6):
 * fed the bytes as they arrive, it returns each complete event. The proxy forwards the bytes
 * untouched and uses the events only to record the messages. Browser-safe.
 */

/** One dispatched event. `data` joins the data lines with `\n`; `id` is absent when none was set. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
}

/** Parses a stream of SSE bytes into events (comments and unknown fields are dropped, as the spec says). */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private data: string[] = [];
  private eventType = '';
  private id: string | undefined;
  private retry: number | undefined;
  private sawField = false;
  private afterCr = false;

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
    let s = this.pending + text;
    this.pending = '';
    if (this.afterCr && s.startsWith('\n')) s = s.slice(1);
    this.afterCr = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = s.slice(start, i);
      if (c === 13) {
        if (i + 1 < s.length) {
          if (s.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
      const event = this.line(line);
      if (event !== undefined) events.push(event);
    }
    this.pending = s.slice(start);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      if (!this.sawField) return undefined;
      const event: SseEvent = { event: this.eventType || 'message', data: this.data.join('\n') };
      if (this.id !== undefined) event.id = this.id;
      if (this.retry !== undefined) event.retry = this.retry;
      this.data = [];
      this.eventType = '';
      // Unlike the spec's last-event-id buffer, `id` here is the id set by this event only.
      this.id = undefined;
      this.retry = undefined;
      this.sawField = false;
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.sawField = true;
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    else if (field === 'id' && !value.includes('\u0000')) this.id = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retry = Number(value);
    return undefined;
  }
}
