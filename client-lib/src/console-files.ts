/**
 * The web console's files (the `@vigil/console` workspace's dist/) and the headers they are served
 * with, shared by the log (`/console/`) and `vigil console` so both serve exactly the same thing. Node
 * only. The set of files is fixed: nothing under /console/ maps to an arbitrary path on disk.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * No inline script or style, no framing, nothing fetched from anywhere but the origin that served the
 * page: whatever a tool call carried, it cannot run here even if a rendering bug let it into the DOM.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers of every console file. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** The console's files are not installed or not built (`npm run build` builds them). */
export class ConsoleNotBuiltError extends Error {
  readonly code = 'CONSOLE_NOT_BUILT';
}

export interface ConsoleFile {
  body: Buffer;
  type: string;
}

const TYPES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** dist/ of the installed `@vigil/console` package; throws CONSOLE_NOT_BUILT when it is not installed. */
export function consoleDistDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@vigil/console/package.json')), 'dist');
  } catch {
    throw new ConsoleNotBuiltError('the @vigil/console package is not installed');
  }
}

/**
 * The console's files by the name under /console/ (`''` is index.html). Throws CONSOLE_NOT_BUILT when
 * one is missing (run `npm run build`).
 */
export async function loadConsoleFiles(dir = consoleDistDir()): Promise<Map<string, ConsoleFile>> {
  const files = new Map<string, ConsoleFile>();
  for (const [name, type] of Object.entries(TYPES)) {
    let body: Buffer;
    try {
      body = await readFile(join(dir, name));
    } catch {
      throw new ConsoleNotBuiltError(`the console is not built: ${join(dir, name)} is missing`);
    }
    files.set(name, { body, type });
  }
  files.set('', files.get('index.html')!);
  return files;
}
