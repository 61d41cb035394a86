// The web console's transcript view of a long session (`--only console`): a session of N tools/call
// requests captured through the real `vigil mcp wrap` around server-everything, opened in Debian's
// chromium (every receipt verified and every value opened in the browser), against the time to fetch
// the same records raw (the search pages with their sealed values, nothing verified) in the same run.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { LogClient } from '@vigil/client';
import { startLog } from '../helpers/log.js';
import { captureWrappedSession, chromiumPath, launchChromium, openConsole } from '../helpers/console.js';
import { phase, SkipError, type Row } from './lib/report.js';
import { trackDir, untrackDir } from './lib/procs.js';

export async function benchConsole(o: { quick: boolean }): Promise<Row[]> {
  const chromium = chromiumPath();
  if (chromium === undefined) throw new SkipError('no chromium (apt-get install chromium, or CHROMIUM_PATH)');
  const calls = o.quick ? 200 : 1000;
  const rounds = o.quick ? 1 : 3;
  const log = await startLog({ origin: 'bench.vigil.local/console' });
  const dir = trackDir(await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-bench-console-')));
  try {
    const token = await log.readerToken();
    const { session, found } = await captureWrappedSession(log, dir, 'bench', {
      calls: Array.from({ length: calls }, (_, i) => ({
        name: i % 2 === 0 ? 'echo' : 'get-sum',
        arguments: i % 2 === 0 ? { message: `call ${i}` } : { a: i, b: 1 },
      })),
    });
    const records = found.filter((f) => f.record['session'] === session).length;
    phase(`console: ${calls} calls captured (${records} records)`);

    // Raw: the same search pages the console fetches, opened, with no verification at all.
    const client = new LogClient(log.url, { readerToken: token });
    const raw: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      let n = 0;
      for (let after: string | undefined; ;) {
        const page = await client.search(
          { session, limit: 1000, ...(after !== undefined ? { after } : {}) },
          { open: true },
        );
        n += page.results.length;
        if (page.next === undefined || page.results.length === 0) break;
        after = page.next;
      }
      raw.push(performance.now() - t0);
      if (n !== records) throw new Error(`raw fetch got ${n} records, want ${records}`);
    }
    phase('console: raw fetch timed');

    const browser = await launchChromium(chromium);
    const shown: number[] = [];
    try {
      const { page } = await openConsole(browser, `${log.url}console/`, log.policy, token);
      for (let r = 0; r < rounds; r++) {
        await page.goto(`${log.url}console/#/settings`);
        const t0 = performance.now();
        await page.goto(`${log.url}console/#/session/${encodeURIComponent(session)}`);
        await page.waitForSelector('.transcript p.summary', { timeout: 300_000 });
        shown.push(performance.now() - t0);
        const calls_ = await page.locator('li.call[data-method="tools/call"]').count();
        const failed = await page.locator('.transcript [data-mark="failed"]').count();
        if (calls_ !== calls || failed !== 0)
          throw new Error(`the console showed ${calls_} tools/call items and ${failed} FAILED marks`);
      }
    } finally {
      await browser.close();
    }
    phase('console: transcript view timed');
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const rawMs = median(raw);
    const viewMs = median(shown);
    return [
      {
        bench: 'console',
        store: 'embedded',
        what: `transcript view of a ${calls}-call session (${records} records) in chromium: fetched, every receipt verified, values opened, rendered`,
        figure: viewMs,
        unit: 'ms',
        goal: '-',
        met: undefined,
        note: `${(viewMs / rawMs).toFixed(1)}x the raw fetch`,
      },
      {
        bench: 'console',
        store: 'embedded',
        what: `raw fetch of the same ${records} records (search pages, opened, nothing verified)`,
        figure: rawMs,
        unit: 'ms',
        goal: '-',
        met: undefined,
      },
    ];
  } finally {
    await log.stop();
    await fs.rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  }
}
