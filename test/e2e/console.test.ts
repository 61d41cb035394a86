// End to end: the web console. The log serves it at /console/ under a strict CSP; `vigil console`
// serves the same files from the reviewer's machine and forwards the console's reads (with the reader
// token) to the log. In Debian's chromium (playwright-core) the console shows a session captured
// through the real `vigil mcp wrap` around server-everything: tool names, the echoed argument, a
// verified mark on every record, the record's commitments opened; and with a policy naming the wrong
// log key, FAILED on every record.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatBundle, generateKey, parseBundle, parsePolicy, verifyBundle } from '@vigil/client';
import { CONSOLE_CSP } from '@vigil/client/node';
import t from 'tap';
import { runNode, startLog, vigilMain } from '../helpers/log.js';
import { spawnNode } from '../helpers/mcp.js';
import {
  captureWrappedSession,
  chromiumPath,
  launchChromium,
  openConsole,
  setPolicy,
} from '../helpers/console.js';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-console-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const token = await log.readerToken();
const MARKER = 'console-marker-<b>9c1e</b>';
const { session } = await captureWrappedSession(log, dir, MARKER);
// A second perspective of "the same" session whose get-sum asked something else (for the side-by-side view).
await captureWrappedSession(log, dir, MARKER, {
  emitter: 'server-side',
  calls: [
    { name: 'echo', arguments: { message: MARKER } },
    { name: 'get-sum', arguments: { a: 2, b: 4 } },
  ],
});

// The browser first (tap ends the file once its queued subtests are done: nothing is awaited after them).
const chromium = chromiumPath();
const noBrowser =
  `no chromium at ${process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'} ` +
  '(apt-get install chromium, or set CHROMIUM_PATH); CI installs it and fails without it';
if (chromium === undefined && process.env['CI'] !== undefined) throw new Error(`CI is set and ${noBrowser}`);
const browser = chromium !== undefined ? await launchChromium(chromium) : undefined;
t.teardown(() => browser?.close());

// `vigil console` against the same log, on an ephemeral port.
const local = spawnNode(vigilMain, ['console', '--log', log.url, '--port', '0']);
t.teardown(() => local.stop());
const localUrl = (await local.waitFor(/open (http:\/\/\S+\/console\/)/))[1]!;

t.test('the log serves the console under a strict CSP', async (t) => {
  const index = await fetch(`${log.url}console/`);
  t.equal(index.status, 200);
  t.match(index.headers.get('content-type'), /^text\/html/);
  t.equal(index.headers.get('content-security-policy'), CONSOLE_CSP);
  t.match(CONSOLE_CSP, /script-src 'self';/);
  t.notMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
  t.equal(index.headers.get('x-content-type-options'), 'nosniff');
  const html = await index.text();
  t.match(html, /<script type="module" src="app.js"><\/script>/);
  t.notMatch(html, /<script>|<style|style=/, 'no inline script or style');
  for (const [name, type] of [
    ['app.js', /^text\/javascript/],
    ['app.css', /^text\/css/],
  ] as const) {
    const r = await fetch(`${log.url}console/${name}`);
    t.equal(r.status, 200, name);
    t.match(r.headers.get('content-type'), type);
    t.equal(r.headers.get('content-security-policy'), CONSOLE_CSP);
  }
  const bare = await fetch(`${log.url}console`, { redirect: 'manual' });
  t.equal(bare.status, 301);
  t.equal(bare.headers.get('location'), '/console/');
  const other = await fetch(`${log.url}console/package.json`);
  t.equal(other.status, 404);
  t.equal(((await other.json()) as { code: string }).code, 'NOT_FOUND');
  t.equal((await fetch(`${log.url}v1/log`)).headers.get('access-control-allow-origin'), null, 'no CORS');
});

t.test('vigil console serves the same files and forwards reads with the reader header', async (t) => {
  const page = await fetch(localUrl);
  t.equal(page.status, 200);
  t.equal(page.headers.get('content-security-policy'), CONSOLE_CSP);
  t.equal(await page.text(), await (await fetch(`${log.url}console/`)).text(), 'the same index.html');
  const js = await fetch(new URL('app.js', localUrl));
  t.equal(await js.text(), await (await fetch(`${log.url}console/app.js`)).text(), 'the same app.js');
  const origin = new URL(localUrl).origin;
  const root = await fetch(`${origin}/`, { redirect: 'manual' });
  t.equal(root.headers.get('location'), '/console/');
  const info = (await (await fetch(`${origin}/v1/log`)).json()) as { origin: string; vkey: string };
  t.equal(info.vkey, log.vkey, '/v1/log forwarded');
  t.match(await (await fetch(`${origin}/checkpoint`)).text(), new RegExp(`^${log.origin}\n`));
  const q = `${origin}/v1/search?session=${encodeURIComponent(session)}&limit=5`;
  t.equal((await fetch(q)).status, 401, 'search without the reader header: the log refuses');
  const withToken = await fetch(q, { headers: { authorization: `Bearer ${token}` } });
  t.equal(withToken.status, 200, 'the reader header is forwarded');
  t.ok(((await withToken.json()) as { entries: unknown[] }).entries.length > 0);
  t.equal((await fetch(`${origin}/v1/entries`, { method: 'POST', body: '{}' })).status, 405, 'no writes');
  t.equal((await fetch(`${origin}/healthz`)).status, 404, 'only the read API is forwarded');
  t.equal((await fetch(`${origin}/v1/%2e%2e/healthz`)).status, 404, 'no way out of /v1/');
  const help = await runNode(vigilMain, ['console', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: vigil console --log URL/);
  const noLog = await runNode(vigilMain, ['console']);
  t.equal(noLog.code, 2);
  t.match(noLog.stderr, /--log is required/);
});

if (browser === undefined) {
  t.test('the console in a real browser', { skip: noBrowser }, () => {});
} else {
  t.test('in the browser: sessions, transcript and record, every record verified', async (t) => {
    const { page, messages } = await openConsole(browser, `${log.url}console/`, log.policy, token);
    await page.goto(`${log.url}console/#/`);
    const row = page.locator('table[data-testid="sessions"] tbody tr', { hasText: session });
    await row.waitFor();
    t.match(await row.locator('td.tools').innerText(), /echo, get-sum/, 'tools called');
    t.equal(await row.locator('td.servers').innerText(), '[sealed command]', 'the wrapped server, sealed');
    t.match(await row.locator('td.ended').innerText(), /^(exit \d+|signal SIG[A-Z]+)$/, 'how it ended');
    t.equal(await row.locator('[data-mark="verified"]').count(), 1, 'the session row is verified');
    t.equal(await page.locator('[data-mark="failed"]').count(), 0);

    await row.locator('a.session-link').click();
    await page.waitForSelector('ol.items li');
    const text = await page.locator('.transcript').innerText();
    t.match(text, /tools\/list/);
    t.match(text, /tools\/call\s*echo/);
    t.match(text, /tools\/call\s*get-sum/);
    t.ok(text.includes(MARKER), 'the echoed argument, opened, as text');
    t.equal(await page.locator('.transcript b').count(), 0, 'markup in an argument is not rendered');
    const verified = await page.locator('.transcript [data-mark="verified"]').count();
    t.ok(verified >= 6, `every record marked verified (${verified})`);
    t.equal(await page.locator('.transcript [data-mark="failed"]').count(), 0);
    t.match(text, /Tool definition in effect: tools\/list result at entry \d+/);
    const echo = page.locator('li.call[data-tool="echo"]').first();
    await echo.locator('details.definition summary').click();
    t.match(await echo.locator('details.definition pre').innerText(), /"name": "echo"/);
    t.match(
      await echo.locator('[data-side="request"] [data-part="principal"]').innerText(),
      new RegExp(`"user": "${os.userInfo().username}"`),
      'who called: the OS user the wrapper ran as, opened',
    );

    await echo.locator('[data-side="request"] a.entry-link').click();
    await page.waitForSelector('.record table.commitments');
    const record = await page.locator('.record').innerText();
    t.match(record, /Entry \d+\s*✓ verified/);
    t.ok(record.includes(MARKER), 'the opened params');
    t.match(record, /[0-9a-f]{64}/, 'the commitment');
    t.match(record, /tlog-proof@v1/, 'the receipt');
    t.ok((await page.locator('.record [data-state="opened"]').count()) >= 1);
    t.equal(await page.locator('.record [data-state="failed"]').count(), 0);

    await page.goto(`${log.url}console/#/witnesses`);
    await page.waitForSelector('.witnesses pre.receipt');
    t.match(await page.locator('.witnesses').innerText(), /✓ verified/);
    t.same(
      messages.filter((m) => /Content Security Policy|pageerror|Refused/i.test(m)),
      [],
      'no CSP violation, no page error',
    );
    await page.context().close();
  });

  t.test('in the browser: a policy with the wrong log key shows every record FAILED', async (t) => {
    const wrong = `log ${generateKey(log.origin).verifierKey}\nquorum none\n`;
    const { page } = await openConsole(browser, `${log.url}console/`, wrong, token);
    t.match(await page.locator('.problem').innerText(), /does not name the key this log says/);
    await page.goto(`${log.url}console/#/session/${encodeURIComponent(session)}`);
    await page.waitForSelector('ol.items li');
    const failed = await page.locator('.transcript [data-mark="failed"]').count();
    t.ok(failed >= 6, `FAILED marks (${failed})`);
    t.equal(await page.locator('.transcript [data-mark="verified"]').count(), 0, 'nothing verified');
    t.match(await page.locator('.transcript .summary').innerText(), /FAILED verification/);
    await page.goto(`${log.url}console/#/`);
    const row = page.locator('table[data-testid="sessions"] tbody tr', { hasText: session });
    await row.waitFor();
    t.match(await row.innerText(), /FAILED \d+/);
    // Back to the right policy: verified again (the wrong one is not sticky).
    await setPolicy(page, log.policy);
    await page.goto(`${log.url}console/#/session/${encodeURIComponent(session)}`);
    await page.waitForSelector('ol.items li');
    t.equal(await page.locator('.transcript [data-mark="failed"]').count(), 0);
    await page.context().close();
  });

  t.test('in the browser: an evidence bundle downloads, verifies, and a tampered one FAILS', async (t) => {
    const { page, messages } = await openConsole(browser, `${log.url}console/`, log.policy, token);
    await page.goto(`${log.url}console/#/session/${encodeURIComponent(session)}`);
    await page.click('a.bundle-link');
    t.equal(await page.inputValue('input[name="bundle-session"]'), session, 'the session is preselected');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('button[name="export"]'),
    ]);
    const file = path.join(dir, 'bundle.json');
    await download.saveAs(file);
    const bundle = parseBundle(await fs.readFile(file, 'utf8'));
    t.ok(bundle.entries.length >= 8, `the session's entries and registry records (${bundle.entries.length})`);
    t.ok(verifyBundle(bundle, parsePolicy(log.policy)).ok, 'the downloaded bundle verifies in Node too');

    await page.setInputFiles('input[name="bundle-file"]', file);
    const ok = page.locator('.bundle-report');
    await ok.waitFor();
    t.equal(await ok.getAttribute('data-ok'), 'true');
    t.equal(await ok.locator('[data-mark="failed"]').count(), 0);
    t.ok((await ok.locator('tbody [data-mark="verified"]').count()) >= 8);

    // One byte of one MCP entry changed: its inclusion proof and signature no longer hold.
    const k = bundle.entries.findIndex((e) => Buffer.from(e.entry, 'base64').includes('"tools/call"'));
    const bytes = Buffer.from(bundle.entries[k]!.entry, 'base64');
    const at = bytes.indexOf('tools/call');
    t.ok(k >= 0 && at > 0, 'a tools/call entry');
    bytes[at + 6] = 'C'.charCodeAt(0);
    bundle.entries[k]!.entry = bytes.toString('base64');
    const tampered = path.join(dir, 'tampered.json');
    const otherPolicy = path.join(dir, 'other-policy.json');
    await fs.writeFile(tampered, formatBundle(bundle));
    await page.setInputFiles('input[name="bundle-file"]', tampered);
    await page.waitForSelector('.bundle-report[data-ok="false"]');
    const report = page.locator('.bundle-report');
    t.match(await report.locator('h3').innerText(), /FAILED/);
    t.ok((await report.locator('tbody [data-mark="failed"]').count()) >= 1, 'the tampered entry FAILED');
    t.match(await report.locator('ul.problems').innerText(), new RegExp(`entry ${bundle.entries[k]!.index}`));

    // A bundle exported under another policy is refused.
    const other = {
      ...parseBundle(await fs.readFile(file, 'utf8')),
      policy: `log ${generateKey(log.origin).verifierKey}\nquorum none\n`,
    };
    await fs.writeFile(otherPolicy, formatBundle(other));
    await page.setInputFiles('input[name="bundle-file"]', otherPolicy);
    await page.waitForSelector('.bundle-report h3:has-text("other-policy.json")');
    t.match(await page.locator('.bundle-report h3').innerText(), /FAILED.*policy/);
    t.same(
      messages.filter((m) => /Content Security Policy|pageerror|Refused/i.test(m)),
      [],
    );
    await page.context().close();
  });

  t.test('in the browser: two perspectives side by side, the differing request flagged', async (t) => {
    const { page } = await openConsole(browser, `${log.url}console/`, log.policy, token);
    await page.goto(`${log.url}console/#/perspectives`);
    await page.fill('input[name="perspective-a"]', 'mcp-wrapper');
    await page.fill('input[name="perspective-b"]', 'server-side');
    await page.click('button[name="compare"]');
    await page.waitForSelector('.perspectives p.summary');
    t.equal(await page.getAttribute('.perspectives p.summary', 'data-findings'), '1');
    const findings = await page.locator('table.findings').innerText();
    t.match(findings, /request_differs/);
    t.match(findings, /tools\/call get-sum/);
    const columns = page.locator('.compare .perspective');
    t.equal(await columns.count(), 2, 'the paired session, side by side');
    t.match(await columns.nth(0).locator('h3').innerText(), /mcp-wrapper/);
    t.match(await columns.nth(1).locator('h3').innerText(), /server-side/);
    for (const i of [0, 1]) {
      const flagged = columns.nth(i).locator('li[data-finding="request_differs"]');
      t.equal(await flagged.count(), 1, `column ${i}: the get-sum call is flagged`);
      t.match(await flagged.innerText(), /get-sum/);
      t.ok((await columns.nth(i).innerText()).includes(MARKER), `column ${i}: the echo call, opened`);
      t.equal(await columns.nth(i).locator('[data-mark="failed"]').count(), 0);
    }
    await page.context().close();
  });

  t.test('in the browser through vigil console: the forwarded reads verify the same', async (t) => {
    const { page } = await openConsole(browser, localUrl, log.policy, token);
    await page.goto(`${localUrl}#/session/${encodeURIComponent(session)}`);
    await page.waitForSelector('ol.items li');
    t.ok((await page.locator('.transcript').innerText()).includes(MARKER));
    t.equal(await page.locator('.transcript [data-mark="failed"]').count(), 0);
    // The token is kept for the tab only and never rendered.
    t.notOk((await page.content()).includes(token), 'the token is not in the page');
    t.equal(
      await page.evaluate('JSON.stringify(localStorage)').then((s) => String(s).includes('vigil_rt_')),
      false,
    );
    await page.context().close();
  });
}
