// Screenshots of the web console for the README (`node test/dist/demo/console-screenshots.js`): starts
// a log, captures two sessions of server-everything through the real `vigil mcp wrap`, opens the
// console the log serves in Debian's chromium (or CHROMIUM_PATH), loads the policy and a reader token,
// and writes docs/console-sessions.png, docs/console-transcript.png and docs/console-record.png.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLog } from '../helpers/log.js';
import { captureWrappedSession, chromiumPath, launchChromium, openConsole } from '../helpers/console.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = process.argv[2] ?? path.join(root, 'docs');
const chromium = chromiumPath();
if (chromium === undefined) {
  process.stderr.write('no chromium: apt-get install chromium, or set CHROMIUM_PATH\n');
  process.exit(2);
}

const log = await startLog({ origin: 'demo.vigil.local/log' });
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-console-shots-'));
try {
  const token = await log.readerToken();
  await captureWrappedSession(log, dir, 'build report', {
    emitter: 'ci-runner',
    calls: [{ name: 'get-sum', arguments: { a: 19, b: 23 } }],
  });
  const { session } = await captureWrappedSession(log, dir, 'hello, auditor', {
    emitter: 'agent-host',
    calls: [
      { name: 'echo', arguments: { message: 'hello, auditor' } },
      { name: 'get-sum', arguments: { a: 2, b: 40 } },
    ],
  });
  const browser = await launchChromium(chromium);
  try {
    const { page } = await openConsole(browser, `${log.url}console/`, log.policy, token, {
      width: 1280,
      height: 760,
    });
    await page.goto(`${log.url}console/#/`);
    await page.waitForSelector('table[data-testid="sessions"] tbody tr');
    await page.screenshot({ path: path.join(out, 'console-sessions.png') });

    await page.goto(`${log.url}console/#/session/${encodeURIComponent(session)}`);
    await page.waitForSelector('li.call[data-tool="echo"]');
    const echo = page.locator('li.call[data-tool="echo"]');
    await echo.locator('details.definition summary').click();
    await echo.evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(out, 'console-transcript.png') });

    await echo.locator('[data-side="request"] a.entry-link').click();
    await page.waitForSelector('.record table.commitments');
    await page.screenshot({ path: path.join(out, 'console-record.png') });
    process.stdout.write(
      `wrote console-sessions.png, console-transcript.png, console-record.png to ${out}\n`,
    );
  } finally {
    await browser.close();
  }
} finally {
  await log.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
