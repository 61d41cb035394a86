/**
 * Decoding an HTTP request body before the proxy records and forwards it: undoes `Content-Encoding`
 * (RFC 9110 section 8.4) and decodes the `charset` of `Content-Type` (RFC 8259 section 8.1 wants
 * UTF-8; servers built on body-parser accept any charset iconv-lite knows). The proxy records the
 * decoded text and forwards exactly that text as UTF-8 with no content coding, so what the upstream
 * acts on is what the log holds. Node only.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';

/** A body the proxy can record and forward: its text, and the bytes and content type to send on. */
export interface DecodedBody {
  text: string;
  /** The text as UTF-8: what goes upstream. */
  bytes: Buffer;
  /** The `Content-Type` to forward when the charset changed; undefined to forward the client's. */
  contentType?: string;
}

/** Why a body is refused: HTTP status, error code, and a message naming the value. */
export class BodyRefusedError extends Error {
  readonly status: number;
  readonly code: 'BODY_TOO_LARGE' | 'ENCODING_UNSUPPORTED' | 'CHARSET_UNSUPPORTED' | 'BODY_MALFORMED';
  constructor(status: number, code: BodyRefusedError['code'], message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** At most this many content codings on one body (each one is a decompression pass). */
const MAX_CODINGS = 2;

const decoders: Record<string, (buf: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>> = {
  gzip: promisify(zlib.gunzip),
  'x-gzip': promisify(zlib.gunzip),
  deflate: promisify(zlib.inflate),
  br: promisify(zlib.brotliDecompress) as (buf: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>,
};

/**
 * Decodes `raw` per its `Content-Encoding` and `Content-Type` headers. Requires `maxBytes` > 0: the
 * decompressed body never grows past it (zlib stops at `maxOutputLength`, so a gzip bomb costs at
 * most `maxBytes` of memory). Throws `BodyRefusedError`: 413 past the limit, 415 for a content coding
 * or charset it does not know (never forwarded undecoded), 400 for bytes that do not decode.
 */
export async function decodeBody(
  raw: Buffer,
  contentEncoding: string | undefined,
  contentType: string | undefined,
  maxBytes: number,
): Promise<DecodedBody> {
  if (!(maxBytes > 0)) throw new RangeError(`maxBytes is ${maxBytes}, want > 0`);
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length > MAX_CODINGS) {
    throw new BodyRefusedError(
      415,
      'ENCODING_UNSUPPORTED',
      `${codings.length} content codings, at most ${MAX_CODINGS}`,
    );
  }
  let bytes = raw;
  // Codings are listed in the order they were applied; undo the last first.
  for (const coding of codings.reverse()) {
    const decode = decoders[coding];
    if (decode === undefined) {
      throw new BodyRefusedError(
        415,
        'ENCODING_UNSUPPORTED',
        `content coding ${JSON.stringify(coding)} is not supported`,
      );
    }
    try {
      bytes = await decode(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new BodyRefusedError(413, 'BODY_TOO_LARGE', `${coding} body expands past ${maxBytes} bytes`);
      }
      throw new BodyRefusedError(
        400,
        'BODY_MALFORMED',
        `${coding} body does not decode: ${(err as Error).message}`,
      );
    }
  }
  const { charset, mediaType } = parseContentType(contentType);
  const decoder = textDecoder(charset ?? 'utf-8');
  let text: string;
  try {
    // A byte order mark is dropped here (the decoder's default), as body-parser drops it.
    text = decoder.decode(bytes);
  } catch {
    throw new BodyRefusedError(400, 'BODY_MALFORMED', `body is not valid ${decoder.encoding}`);
  }
  const out: DecodedBody = { text, bytes: Buffer.from(text, 'utf8') };
  if (charset !== undefined && decoder.encoding !== 'utf-8') out.contentType = `${mediaType}; charset=utf-8`;
  return out;
}

/** A fatal decoder for `charset`; refused (415) when the Encoding Standard does not know the label. */
function textDecoder(charset: string): InstanceType<typeof TextDecoder> {
  try {
    return new TextDecoder(charset, { fatal: true });
  } catch {
    throw new BodyRefusedError(
      415,
      'CHARSET_UNSUPPORTED',
      `charset ${JSON.stringify(charset)} is not supported`,
    );
  }
}

/** The media type and `charset` parameter of a `Content-Type` value (RFC 9110 section 8.3.1). */
function parseContentType(value: string | undefined): { mediaType: string; charset?: string } {
  const [type = '', ...params] = (value ?? '').split(';');
  const out: { mediaType: string; charset?: string } = { mediaType: type.trim() };
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    let v = param.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    out.charset = v;
  }
  return out;
}
