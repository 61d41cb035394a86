/**
 * Showing a record's sealed values to a reader (`vigil search --open`, `vigil verify --reader-token`):
 * the one client path that opens them (STYLE.md section 16). Each value is opened with `openSealed`
 * against the commitment in the (verified) record; one that does not match is shown as FAILED, never
 * hidden and never shown as if it were the value.
 */
import type { SealedAnswer } from '../client.js';
import { isSealedRef, openSealed } from '../sealed.js';

/** One sealed value of a record, as the reader sees it. */
export interface SealedView {
  /** Where it sits in the record, e.g. `message.params` or `argv[2]`. */
  path: string;
  sha256: string;
  size: number;
  /** opened: matches its commitment; failed: the log's S does not; erased: the log says so;
   * missing: the log sent neither; sealed: not opened (no reader token). */
  state: 'opened' | 'failed' | 'erased' | 'missing' | 'sealed';
  value?: unknown;
  /** Why it failed (sizes and hashes, never the value). */
  error?: string;
  /** Index of the log.erasure record the log names. */
  erasure?: string;
}

/** Every sealed ref of `record`, with its state given `answer` (undefined: nothing was opened). */
export function viewSealedValues(record: unknown, answer: SealedAnswer | undefined): SealedView[] {
  const out: SealedView[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v !== 'object' || v === null) return;
    if (isSealedRef(v)) {
      const { sha256, size } = v.$sealed;
      const view: SealedView = { path: path === '' ? '.' : path, sha256, size, state: 'sealed' };
      if (answer !== undefined) {
        const bytes = answer.sealed.get(sha256);
        const erasure = answer.erased.get(sha256);
        if (bytes !== undefined) {
          try {
            view.value = openSealed(v, bytes);
            view.state = 'opened';
          } catch (err) {
            view.state = 'failed';
            view.error = (err as Error).message;
          }
        } else if (erasure !== undefined) {
          view.state = 'erased';
          view.erasure = erasure.toString();
        } else {
          view.state = 'missing';
        }
      }
      out.push(view);
      return;
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else for (const [k, x] of Object.entries(v)) walk(x, path === '' ? k : `${path}.${k}`);
  };
  walk(record, '');
  return out;
}

/** Characters that would let logged text move the cursor, recolour or reorder the terminal. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Text made safe for a terminal: every control or bidi character becomes a \u escape. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One line per value: `path: <value JSON>` or its state, cut to `max` characters. */
export function formatSealedView(v: SealedView, max = 400): string {
  switch (v.state) {
    case 'opened': {
      const text = JSON.stringify(v.value) ?? 'undefined';
      return `${v.path}: ${terminalSafe(text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text)}`;
    }
    case 'failed':
      return `${v.path}: FAILED: the log's sealed value does not match commitment ${v.sha256}: ${v.error ?? ''}`;
    case 'erased':
      return `${v.path}: [erased by entry ${v.erasure ?? '?'}]`;
    case 'missing':
      return `${v.path}: MISSING: the log sent neither the value of ${v.sha256} nor an erasure`;
    case 'sealed':
      return `${v.path}: [sealed]`;
  }
}

/**
 * A copy of `record` with every sealed ref whose S the log sent (and that matches its commitment)
 * replaced by its value. Refs erased or not sent stay refs. Returns the paths whose S does not match
 * (the caller must not trust the log's answer then).
 */
export function withOpenedValues(
  record: unknown,
  answer: SealedAnswer,
): { record: unknown; failed: string[] } {
  const failed: string[] = [];
  const walk = (v: unknown, path: string): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    if (isSealedRef(v)) {
      const bytes = answer.sealed.get(v.$sealed.sha256);
      if (bytes === undefined) return v;
      try {
        return openSealed(v, bytes);
      } catch {
        failed.push(path === '' ? '.' : path);
        return v;
      }
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, walk(x, path === '' ? k : `${path}.${k}`)]),
    );
  };
  return { record: walk(record, ''), failed };
}
