// End to end: `vigil audit` (the CLI process) against the real log process: a clean log (exit 0,
// unclosed streams listed), and a log that dropped a record from a stream (the in-test tlog-tiles log,
// since the real log refuses gaps by construction). Rollback and Postgres tampering: the
// client-audit-rollback and client-audit-postgres files.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { generateKey } from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import { auditHelpers, exits } from '../helpers/audit.js';
import { runNode, startLog, until, vigilMain } from '../helpers/log.js';

useNodeCrypto();

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-audit-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));

const { emitSome, audit } = auditHelpers(tmp);

t.test('a clean log audits clean (exit 0); unclosed streams listed', async (t) => {
  const log = await startLog();
  t.teardown(() => log.stop());
  // The log's operator registers itself and each emitter in the tree before its first record.
  await emitSome(log, 'e2e.example/a', 20);
  await emitSome(log, 'e2e.example/b', 5, false);
  const r = await audit(log);
  exits(t, r, 0, 'exit 0');
  t.match(r.stdout, /result\s+CLEAN/);
  t.match(r.stdout, /streams\s+2 total, 1 closed, 1 open/);
  const policyFile = path.join(tmp, `policy-${log.port}`);
  const strict = await audit(log, '--fail-on-unclosed');
  t.equal(strict.code, 1);
  t.match(strict.stdout, /STREAM_UNCLOSED/);

  // `vigil audit --follow` beside the running log: reports growth, exits 0 on SIGINT when clean.
  const follow = spawn(
    process.execPath,
    [
      vigilMain,
      'audit',
      '--log',
      log.url,
      '--policy',
      policyFile,
      '--follow',
      '--interval',
      '200ms',
      '--state',
      path.join(tmp, 'follow'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  );
  let out = '';
  follow.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  follow.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => follow.on('close', (code) => resolve(code)));
  await until('first audit pass', () => /result\s+CLEAN/.test(out));
  await emitSome(log, 'e2e.example/c', 3);
  await until('follow reports the new entries', () => /size 37: [1-6] new entries, clean\n/.test(out)).catch(
    (err: Error) => {
      throw new Error(`${err.message}; follow printed:\n${out}`);
    },
  );
  follow.kill('SIGINT');
  t.equal(await exited, 0, 'clean follow exits 0');

  // After the follow run: adding a reader appends a reader.add record, which would change its sizes.
  // Search needs a reader (contract "Log HTTP API"); the token from the environment.
  const token = await log.addReader('e2e-audit');
  const search = await runNode(
    vigilMain,
    ['search', '--log', log.url, '--policy', policyFile, '--emitter', 'e2e.example/b', '--limit', '3'],
    {
      NO_COLOR: '1',
      VIGIL_READER_TOKEN: token,
    },
  );
  exits(t, search, 0, 'search: every result verified');
  t.match(
    search.stdout,
    /^INDEX\s+RECEIVED \(LOG\)\s+TIME \(EMITTER\)\s+EMITTER\s+DIRECTION\s+METHOD\s+TOOL\s+ID\s+ARGS\/RESULT\s+VERIFIED\n30\s+\S+\s+\S+\s+e2e\.example\/b\s+-\s+\(app\.event\)\s+-\s+-\s+\{"n":4\}\s+yes\n/,
  );
  t.equal(search.stdout.trim().split('\n').length, 4);
  t.match(search.stderr, /more results may follow: add --after 28/);
});

t.test('a log that dropped a record from a stream: the gap is found', async (t) => {
  // The real log refuses a seq gap (409), so the dropped record is built into the in-test
  // tlog-tiles log, a faithful log of the same format; the real CLI audits it.
  const { startFakeLog } = (await import(
    new URL('../../../client-lib/dist/test/helpers/fake-log.js', import.meta.url).href
  )) as {
    startFakeLog(o: {
      emitters: Map<string, string>;
    }): Promise<{ url: string; policy: string; close(): Promise<void>; appendRaw(e: Uint8Array[]): void }>;
  };
  const { formatEntry, recordHash, signRecord } = await import('@vigil/client');
  const k = generateKey('e2e.example/gap');
  const fake = await startFakeLog({ emitters: new Map([['e2e.example/gap', k.verifierKey]]) });
  t.teardown(() => fake.close());
  const records: Record<string, unknown>[] = [];
  let prev: string | undefined;
  for (let seq = 0; seq < 5; seq++) {
    const r = {
      v: 1,
      stream: 'g',
      seq,
      ...(prev !== undefined ? { prev } : {}),
      time: new Date().toISOString(),
      kind: seq === 4 ? 'stream.close' : 'x',
    };
    prev = recordHash(r);
    records.push(r);
  }
  const kept = records.filter((r) => r.seq !== 2);
  fake.appendRaw(
    kept.map((r) =>
      formatEntry({
        received: new Date().toISOString(),
        emitter: 'e2e.example/gap',
        peer: 'p',
        record: r,
        sig: signRecord(r, k.signerKey),
      }),
    ),
  );
  const policyFile = path.join(tmp, 'policy-gap');
  await fs.writeFile(policyFile, fake.policy);
  const r = await runNode(vigilMain, ['audit', '--log', fake.url, '--policy', policyFile, '--json'], {});
  t.equal(r.code, 1);
  const report = JSON.parse(r.stdout) as { problems: { code: string; index: string }[] };
  t.same(
    report.problems.map((p) => `${p.code}@${p.index}`),
    ['SEQ_GAP@2'],
  );
});
