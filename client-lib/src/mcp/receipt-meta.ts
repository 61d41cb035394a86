/**
 * Hands the log's receipts back to the MCP client (`--receipts`): adds members to the `_meta` of a
 * JSON-RPC message's `result` (an answer) or `params` (a request or notification) by inserting text,
 * so the bytes the client gets differ from the server's only by those members. Browser-safe.
 */
import type { JsonValue } from './types.js';

/** `_meta` key of the receipt of the request a result answers (tlog-proof@v1 text). */
export const RECEIPT_META_KEY = 'io.vigil/receipt';
/** `_meta` key listing receipts of earlier answers' records: `[{id, index, receipt}]`. */
export const RECEIPTS_META_KEY = 'io.vigil/receipts';

/**
 * Inserts `members` into `<container>._meta` of the JSON object `text` (container: `result` or
 * `params`), creating `_meta` (and `params`) when absent. Everything else stays byte for byte.
 * Undefined when `text` is not a JSON object or the container is there but not an object.
 */
export function insertMeta(
  text: string,
  container: 'result' | 'params',
  members: Record<string, JsonValue>,
): string | undefined {
  const body = Object.entries(members)
    .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
    .join(',');
  if (body === '') return text;
  try {
    const top = objectAt(text, skipWs(text, 0));
    if (top === undefined || skipWs(text, top.end) !== text.length) return undefined;
    const holder = top.members.get(container);
    if (holder === undefined) {
      if (container === 'result') return undefined;
      return splice(text, top, `"params":{"_meta":{${body}}}`);
    }
    const inner = objectAt(text, holder);
    if (inner === undefined) return undefined;
    const meta = inner.members.get('_meta');
    if (meta === undefined) return splice(text, inner, `"_meta":{${body}}`);
    const metaObject = objectAt(text, meta);
    if (metaObject === undefined) return undefined;
    return splice(text, metaObject, body);
  } catch {
    return undefined;
  }
}

interface ObjectSpan {
  /** Index just past the closing brace. */
  end: number;
  /** Member name -> index where its value starts. */
  members: Map<string, number>;
}

/** Inserts `member` before the closing brace of `span`, with a comma when the object has members. */
function splice(text: string, span: ObjectSpan, member: string): string {
  const close = span.end - 1;
  return `${text.slice(0, close)}${span.members.size > 0 ? ',' : ''}${member}${text.slice(close)}`;
}

function skipWs(text: string, i: number): number {
  while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  return i;
}

/** The object starting at `i`, or undefined when the value there is not an object. */
function objectAt(text: string, i: number): ObjectSpan | undefined {
  if (text[i] !== '{') return undefined;
  const members = new Map<string, number>();
  i = skipWs(text, i + 1);
  if (text[i] === '}') return { end: i + 1, members };
  for (;;) {
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd);
    if (text[i] !== ':') throw new SyntaxError('expected :');
    const valueStart = skipWs(text, i + 1);
    members.set(key, valueStart); // a repeated name: the last one counts, as for JSON.parse
    i = skipWs(text, valueEnd(text, valueStart));
    if (text[i] === '}') return { end: i + 1, members };
    if (text[i] !== ',') throw new SyntaxError('expected , or }');
    i = skipWs(text, i + 1);
  }
}

function stringEnd(text: string, i: number): number {
  if (text[i] !== '"') throw new SyntaxError('expected a string');
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (c === '\\') j++;
    else if (c === '"') return j + 1;
  }
  throw new SyntaxError('unterminated string');
}

/** Index just past the JSON value starting at `i`. */
function valueEnd(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') j = stringEnd(text, j) - 1;
      else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    throw new SyntaxError('unterminated value');
  }
  let j = i;
  while (j < text.length && !',}] \t\n\r'.includes(text[j] as string)) j++;
  if (j === i) throw new SyntaxError('expected a value');
  return j;
}
