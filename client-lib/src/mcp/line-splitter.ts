/**
 * Splits a byte stream into newline-terminated lines without changing a byte: MCP stdio framing
 * (one JSON-RPC message per line, MCP "Transports: stdio"). Kept apart from the wrapper because the
 * stdio framing may change (the roadmap's "HTTP over stdio").
 */

/** One framed line: `bytes` exactly as received (terminator included), `text` without `\n`/`\r\n`. */
export interface Line {
  bytes: Buffer;
  text: string;
}

/** Accumulates chunks and hands out complete lines; `end()` returns an unterminated tail, if any. */
export class LineSplitter {
  private buffered: Buffer[] = [];
  private bufferedSize = 0;

  /** Feeds a chunk; returns the lines it completed, in order. */
  push(chunk: Buffer): Line[] {
    const lines: Line[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl + 1);
      const bytes = this.bufferedSize > 0 ? Buffer.concat([...this.buffered, piece]) : Buffer.from(piece);
      this.buffered = [];
      this.bufferedSize = 0;
      lines.push({ bytes, text: textOf(bytes) });
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.buffered.push(Buffer.from(chunk.subarray(start)));
      this.bufferedSize += chunk.length - start;
    }
    return lines;
  }

  /** The bytes after the last newline, once the stream ended (not a complete message). */
  end(): Line | undefined {
    if (this.bufferedSize === 0) return undefined;
    const bytes = Buffer.concat(this.buffered);
    this.buffered = [];
    this.bufferedSize = 0;
    return { bytes, text: textOf(bytes) };
  }
}

function textOf(bytes: Buffer): string {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 10) end--;
  if (end > 0 && bytes[end - 1] === 13) end--;
  return bytes.toString('utf8', 0, end);
}
