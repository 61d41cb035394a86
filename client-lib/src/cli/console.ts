/**
 * `vigil console --log URL`: serves the web console from the reviewer's own machine (DESIGN.md "The
 * console": the code that verifies does not come from the server being verified) and forwards the
 * console's API reads to the log, so the page talks to one origin and the log needs no CORS.
 *
 * Forwarded: GET and HEAD of /v1/*, /tile/* (evidence bundles prove entries from tiles) and /checkpoint*, with only the Authorization (the reader token the
 * page sends) and Accept headers; answers are bounded (DEFAULT_MAX_RESPONSE_BYTES) and never follow a
 * redirect (a reader token must not travel elsewhere). Nothing else reaches the log: no writes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../client.js';
import { CONSOLE_HEADERS, loadConsoleFiles, type ConsoleFile } from '../console-files.js';
import { args, required, UsageError, type Io } from './io.js';

export const CONSOLE_USAGE = `usage: vigil console --log URL [--host 127.0.0.1] [--port 0]

Serves the web console from this machine and prints the URL to open. The page checks every receipt,
checkpoint and sealed value in the browser against the policy you load; its API reads (GET /v1/*,
/tile/*, /checkpoint) are forwarded to the log with the reader token you enter there. Nothing is written to
the log. --port 0 picks a free port. Stop with Ctrl-C.
`;

/** Which paths are forwarded: the read API the console uses. */
const FORWARDED = /^\/(v1\/[^]*|tile\/[^]*|checkpoint(\/witnessed)?)$/;
/** Answer headers passed back from the log. */
const PASSED_BACK = ['content-type', 'cache-control', 'www-authenticate', 'retry-after'];

function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
  res.end(JSON.stringify({ code, message }));
}

/** Forwards one GET to the log, copying the body up to the bound. */
async function forward(log: URL, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const headers: Record<string, string> = {};
  for (const h of ['authorization', 'accept']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const target = new URL(path.slice(1), log);
  // `..` (or %2e%2e) would resolve outside the forwarded paths: check where the URL really points.
  const rest = target.pathname.startsWith(log.pathname) ? target.pathname.slice(log.pathname.length) : '';
  if (target.origin !== log.origin || !FORWARDED.test(`/${rest}`) || /(^|\/)\.\.?(\/|$)/.test(rest))
    return refuse(res, 404, 'NOT_FOUND', 'not a forwarded path');
  let upstream: Response;
  try {
    upstream = await fetch(target, {
      method: req.method,
      headers,
      redirect: 'error',
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    return refuse(res, 502, 'LOG_UNREACHABLE', `the log did not answer: ${(err as Error).message}`);
  }
  const out: Record<string, string> = { 'x-content-type-options': 'nosniff' };
  for (const h of PASSED_BACK) {
    const v = upstream.headers.get(h);
    if (v !== null) out[h] = v;
  }
  const declared = Number(upstream.headers.get('content-length') ?? '0');
  if (declared > DEFAULT_MAX_RESPONSE_BYTES) {
    await upstream.body?.cancel();
    return refuse(
      res,
      502,
      'RESPONSE_TOO_LARGE',
      `the log's answer is over ${DEFAULT_MAX_RESPONSE_BYTES} bytes`,
    );
  }
  res.writeHead(upstream.status, out);
  if (upstream.body === null || req.method === 'HEAD') return void res.end();
  let total = 0;
  for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > DEFAULT_MAX_RESPONSE_BYTES) {
      res.destroy(new Error('answer over the bound'));
      return;
    }
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end();
}

/**
 * Starts the console server; resolves with its URL (of /console/) and a close function. The files
 * come from `dir` (default: the installed @vigil/console package).
 */
export async function startConsoleServer(options: {
  log: string;
  host?: string;
  port?: number;
  dir?: string;
}): Promise<{ url: string; close(): Promise<void> }> {
  let log: URL;
  try {
    log = new URL(options.log.endsWith('/') ? options.log : `${options.log}/`);
  } catch {
    throw new UsageError(`--log ${JSON.stringify(options.log)} is not a URL`);
  }
  if (log.protocol !== 'http:' && log.protocol !== 'https:') throw new UsageError('--log must be http(s)');
  const files: Map<string, ConsoleFile> = await loadConsoleFiles(options.dir);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(res, 405, 'METHOD_NOT_ALLOWED', 'the console forwards reads only');
    if (path === '/' || path === '/console') {
      res.writeHead(302, { location: '/console/' });
      return void res.end();
    }
    if (path.startsWith('/console/')) {
      const file = files.get(path.slice('/console/'.length));
      if (file === undefined) return refuse(res, 404, 'NOT_FOUND', `no console file ${path}`);
      res.writeHead(200, { ...CONSOLE_HEADERS, 'content-type': file.type });
      return void res.end(req.method === 'HEAD' ? undefined : file.body);
    }
    if (FORWARDED.test(path)) {
      const query = (req.url ?? '').slice(path.length);
      forward(log, req, res, path + query).catch((err: unknown) => res.destroy(err as Error));
      return;
    }
    refuse(res, 404, 'NOT_FOUND', `no route ${path}`);
  });
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the console server has no address');
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/console/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** `vigil console`. Runs until SIGINT or SIGTERM. */
export async function runConsole(argv: string[], io: Io): Promise<number> {
  const { values } = args(
    argv,
    { log: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } },
    false,
  );
  const log = required(values, 'log', 'the log URL');
  const portText = typeof values.port === 'string' ? values.port : '0';
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535)
    throw new UsageError('--port must be a port number (0 picks a free one)');
  const server = await startConsoleServer({
    log,
    host: typeof values.host === 'string' ? values.host : '127.0.0.1',
    port: Number(portText),
  });
  io.stdout.write(`vigil console: open ${server.url} (forwarding reads to ${log})\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}
