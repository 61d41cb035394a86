// `npm run demo` end to end: runs the compiled demo, which starts a log, two witnesses and a wrapped
// server-everything; checks its exit status, the key lines of its output, and that it left no
// process or temp directory behind.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const demo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'demo', 'demo.js');

t.test('npm run demo: every record verified against the log and both witnesses', async (t) => {
  // A private TMPDIR: whatever the demo and its processes create lands there, so we can see it is gone.
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-demo-test-'));
  t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
  const child = spawn(process.execPath, [demo], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: tmp },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.equal(code, 0, `demo exits 0 (stderr: ${stderr.slice(0, 2000)})`);
  t.match(stdout, /echo \{"message":"hello, auditor"\}\s+→ Echo: hello, auditor/);
  t.match(stdout, /→ The sum of 2 and 40 is 42\./);
  t.match(stdout, /c→s tools\/call echo\s+\{"message":"hello, auditor"\}\s+ok \(log \+ w1 \+ w2\)/);
  t.match(stdout, /s→c ↳ tools\/call echo\s+Echo: hello, auditor\s+ok \(log \+ w1 \+ w2\)/);
  t.match(stdout, /error tool_error/);
  t.match(stdout, /mcp\.process\.exit\s+code 0/);
  t.match(stdout, /Witnessed checkpoint \(verified: log signature, cosigned by w1 and w2\)/);
  t.match(stdout, /^ {2}— demo\.vigil\.local\/w1 /m);
  t.match(stdout, /^ {2}— demo\.vigil\.local\/w2 /m);
  const all = /All ([0-9]+) records verified/.exec(stdout);
  t.ok(all !== null && Number(all[1]) >= 15, 'every record verified');
  t.notMatch(stdout, /FAILED/);
  const lines = stdout.trimEnd().split('\n').length;
  t.ok(lines <= 45, `about a screen (${lines} lines)`);
  // Nothing left behind: no file under its TMPDIR, no process running from there.
  t.same(await fs.readdir(tmp), [], 'every temp directory removed');
  const ps = await promisify(execFile)('ps', ['-eo', 'args']);
  t.notOk(ps.stdout.includes(tmp), 'no process left running with data under the temp directory');
});
