// Helpers for the web console's tests, screenshots and bench: a session captured through the real
// `vigil mcp wrap` around server-everything, Debian's chromium driven by playwright-core, and the
// steps a reviewer takes in the console (load the policy, enter the reader token).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { LogProcess } from './log.js';
import {
  everythingEntry,
  registerEmitter,
  searchUntil,
  wrapArgv,
  type Found,
  type Registered,
} from './mcp.js';

/** A session of server-everything behind `vigil mcp wrap`, shipped to the log (stream closed). */
export interface CapturedSession {
  session: string;
  wrapper: Registered;
  found: Found[];
}

/**
 * Registers `emitter` on `log` and runs one wrapped session: tools/list, then `calls` (default: echo of
 * `marker` and get-sum 2+3). Resolves once the log holds the session's `stream.close`.
 */
export async function captureWrappedSession(
  log: LogProcess,
  dir: string,
  marker: string,
  options: { emitter?: string; calls?: { name: string; arguments: Record<string, unknown> }[] } = {},
): Promise<CapturedSession> {
  const emitter = options.emitter ?? 'mcp-wrapper';
  const wrapper = await registerEmitter(log, dir, emitter);
  const [script, ...args] = wrapArgv(log, wrapper, path.join(dir, `spool-${emitter}`));
  const client = new Client({ name: 'console-e2e', version: '0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [script!, ...args, process.execPath, everythingEntry, 'stdio'],
      stderr: 'pipe',
    }),
  );
  await client.listTools();
  const calls = options.calls ?? [
    { name: 'echo', arguments: { message: marker } },
    { name: 'get-sum', arguments: { a: 2, b: 3 } },
  ];
  for (const c of calls) await client.callTool(c);
  await client.close();
  const found = await searchUntil(
    log,
    wrapper.policyFile,
    { emitter },
    (f) => f.some((x) => x.record['kind'] === 'stream.close'),
    60_000,
  );
  const call = found.find((x) => x.record['messageType'] === 'request' && x.record['session'] !== undefined);
  if (call === undefined) throw new Error('the wrapped session left no request in the log');
  return { session: call.record['session'] as string, wrapper, found };
}

/** The chromium binary: CHROMIUM_PATH, else Debian's /usr/bin/chromium; undefined when absent. */
export function chromiumPath(): string | undefined {
  const p = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
  return fs.existsSync(p) ? p : undefined;
}

/** Launches headless chromium (no sandbox: CI runs as root in a container). */
export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
}

/**
 * A page on `consoleUrl` (…/console/) with every console message and page error collected (a CSP
 * violation shows up there), after loading `policy` and, when given, entering `token`.
 */
export async function openConsole(
  browser: Browser,
  consoleUrl: string,
  policy: string,
  token?: string,
  viewport = { width: 1360, height: 900 },
): Promise<{ page: Page; messages: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const messages: string[] = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
  await page.goto(`${consoleUrl}#/settings`);
  await setPolicy(page, policy);
  if (token !== undefined) {
    await page.fill('input[name="reader-token"]', token);
    await page.click('button[name="use-token"]');
    await page.waitForSelector('header .token.on');
  }
  return { page, messages };
}

/** Replaces the policy on the settings view. */
export async function setPolicy(page: Page, policy: string): Promise<void> {
  await page.goto(new URL('#/settings', page.url()).href);
  await page.waitForSelector('textarea[name="policy"]');
  await page.fill('textarea[name="policy"]', policy);
  await page.click('button[name="use-policy"]');
  await page.waitForSelector('.ok-note');
}
