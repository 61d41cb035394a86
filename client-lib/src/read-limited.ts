import { TlogError } from './errors.js';

/**
 * Reads a fetch Response body, refusing one longer than `maxBytes`: a declared Content-Length over
 * the limit is refused before any byte is read, and a streamed body is cancelled (closing the
 * connection) as soon as it passes the limit, so a peer that streams forever costs at most `maxBytes`
 * of memory. Throws TlogError RESPONSE_TOO_LARGE naming `what`. Time limits are the caller's: pass an
 * AbortSignal to fetch, which also aborts the body read.
 */
export async function readLimited(res: Response, maxBytes: number, what: string): Promise<Uint8Array> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`bad byte limit ${maxBytes}`);
  const tooLarge = (size: string) =>
    new TlogError('RESPONSE_TOO_LARGE', `${what} has ${size} bytes, more than the limit of ${maxBytes}`);
  const declared = res.headers.get('content-length');
  if (declared !== null && /^[0-9]+$/.test(declared) && Number(declared) > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(`at least ${size}`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** readLimited, decoded as UTF-8 (ENCODING_INVALID when it is not). */
export async function readLimitedText(res: Response, maxBytes: number, what: string): Promise<string> {
  const bytes = await readLimited(res, maxBytes, what);
  try {
    return utf8Fatal.decode(bytes);
  } catch (err) {
    throw new TlogError('ENCODING_INVALID', `${what} is not utf-8`, { cause: err });
  }
}
