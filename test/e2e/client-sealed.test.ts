// End to end, sealed values (DESIGN.md "Readers and sealed payloads"; contract "Client"): the real log
// process and the `vigil` CLI. An emitter submits records carrying sealed values (S beside the record,
// as blobs travel); a reader added with `vigil-server reader add` audits with `--reader-token` (every
// value opened and matched, the log's access.read records signed by its operator), searches and sees
// the values; then S of one value is replaced in the database (same size, another salt) and the audit
// names SEALED_MISMATCH at that entry's index. Then `vigil-server erase` erases another value: the
// audit lists the log.erasure record (index, reason, by) and finds no problem in the erased value.
// No output ever holds the token or a planted value.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { sql } from 'kysely';
import { generateKey, parseEntry, randomBytes, sealValue, type Sealed } from '@vigil/client';
import { createEmitter, useNodeCrypto } from '@vigil/client/node';
import { openDatabase } from '@vigil/store';
import { exits } from '../helpers/audit.js';
import { runNode, serverMain, startLog, until, vigilMain } from '../helpers/log.js';

useNodeCrypto();

const MARKER = 'SEALEDMARKER-e2e-4c1d';

interface Report {
  ok: boolean;
  sealed: { opened: boolean; values: number; matched: number; erased: number };
  problems: { code: string; index?: string; message: string }[];
  erasures: { index: string; reason: string; by: string; target: unknown; count: number; time: string }[];
}

t.test('audit --reader-token opens every value; a tampered S is SEALED_MISMATCH at its index', async (t) => {
  t.setTimeout(240_000);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-sealed-'));
  t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));
  const log = await startLog();
  t.teardown(() => log.stop());
  const policy = path.join(tmp, 'policy');
  await fs.writeFile(policy, log.policy);

  const name = 'e2e.example/sealed';
  const k = generateKey(name);
  await log.addEmitter(name, k.verifierKey);
  const em = await createEmitter({
    logUrl: log.url,
    key: k.signerKey,
    spoolDir: path.join(tmp, 'spool'),
    policy: log.policy,
  });
  // The index of each mcp.message by its JSON-RPC id (the stream also holds stream.open / close).
  const indices = new Map<number, bigint>();
  em.on('receipt', (r) => {
    const { record } = parseEntry(r.entry);
    if (record.kind === 'mcp.message') indices.set((record.message as { id: number }).id, r.index);
  });
  const sealed: Sealed[][] = [];
  for (let i = 0; i < 3; i++) {
    const params = sealValue({ path: `/secret/${MARKER}/${i}` }, randomBytes(16));
    const result = sealValue({ text: `${MARKER} result ${i}` }, randomBytes(16));
    sealed.push([params, result]);
    await em.emit(
      {
        kind: 'mcp.message',
        session: 'sess-1',
        message: { jsonrpc: '2.0', id: i, method: 'tools/call', params: params.ref, result: result.ref },
      },
      {
        blobs: {
          [params.ref.$sealed.sha256]: params.bytes,
          [result.ref.$sealed.sha256]: result.bytes,
        },
      },
    );
  }
  await em.close();
  const token = await log.addReader('auditor');
  t.match(token, /^vigil_rt_[A-Za-z0-9_-]{43}$/);

  const audit = (...extra: string[]) =>
    runNode(vigilMain, ['audit', '--log', log.url, '--policy', policy, '--json', ...extra], {
      NO_COLOR: '1',
    });
  const outputs: string[] = [];

  const without = await audit();
  outputs.push(without.stdout + without.stderr);
  exits(t, without, 0, 'without a token the audit does what it did');
  t.match(JSON.parse(without.stdout), { ok: true, sealed: { opened: false, values: 6, matched: 0 } });

  const clean = await audit('--reader-token', token);
  outputs.push(clean.stdout + clean.stderr);
  exits(t, clean, 0, 'every sealed value opens and matches');
  const first = JSON.parse(clean.stdout) as Report;
  t.same(first.sealed, { opened: true, values: 6, matched: 6, erased: 0 });

  // The reads were recorded: access.read records of the operator, and a second audit (which reads
  // them too) finds them signed by the operator emitter.
  const again = await runNode(vigilMain, ['audit', '--log', log.url, '--policy', policy, '--json'], {
    NO_COLOR: '1',
    VIGIL_READER_TOKEN: token,
  });
  outputs.push(again.stdout + again.stderr);
  exits(t, again, 0, 'the token from VIGIL_READER_TOKEN; access.read records are the operator’s');
  const search = await runNode(
    vigilMain,
    ['search', '--log', log.url, '--policy', policy, '--emitter', name],
    { NO_COLOR: '1', VIGIL_READER_TOKEN: token },
  );
  exits(t, search, 0, 'search verifies every result and opens its values');
  t.match(search.stdout, `message.params: {"path":"/secret/${MARKER}/1"}`);
  t.match(search.stdout, /\n3\s+\S+\s+\S+\s+e2e\.example\/sealed\s+.*\s+yes\n/);
  const operatorRecords = await runNode(
    vigilMain,
    ['search', '--log', log.url, '--policy', policy, '--emitter', `${log.origin}/operator`, '--json'],
    { NO_COLOR: '1', VIGIL_READER_TOKEN: token },
  );
  const kinds = (
    JSON.parse(operatorRecords.stdout) as { results: { entry: { record: { kind: string } } }[] }
  ).results.map((r) => r.entry.record.kind);
  t.ok(kinds.filter((k) => k === 'access.read').length >= 3, 'each opening read is an access.read record');

  // A DBA replaces S of the second record's result: the same value under another salt, so the same
  // size and a valid sealed value, but not the committed one.
  const target = sealed[1]![1]!;
  const forged = sealValue({ text: `${MARKER} result 1` }, randomBytes(16));
  t.equal(forged.bytes.length, target.bytes.length);
  const handle = await openDatabase<unknown>({ dataDir: log.dataDir, mode: 'attach' });
  try {
    const changed =
      await sql`update sealed set bytes = ${Buffer.from(forged.bytes)} where sha256 = ${target.ref.$sealed.sha256}`.execute(
        handle.db,
      );
    t.equal(changed.numAffectedRows, 1n, 'one row of S replaced');
  } finally {
    await handle.close();
  }
  const tampered = await audit('--reader-token', token);
  outputs.push(tampered.stdout + tampered.stderr);
  exits(t, tampered, 1, 'the audit finds the replaced value');
  const report = JSON.parse(tampered.stdout) as Report;
  const index = indices.get(1)!.toString();
  t.same(
    report.problems.map((p) => `${p.code}@${p.index ?? '-'}`),
    [`SEALED_MISMATCH@${index}`],
  );
  t.match(report.problems[0]!.message, target.ref.$sealed.sha256);
  t.same(report.sealed, { opened: true, values: 6, matched: 5, erased: 0 });

  // The operator erases the first record's params (a right-to-erasure request).
  const gone = sealed[0]![0]!;
  const erase = await runNode(serverMain, [
    'erase',
    '--sealed',
    gone.ref.$sealed.sha256,
    '--reason',
    'subject request 7',
    '--by',
    'dpo',
    '--data-dir',
    log.dataDir,
  ]);
  t.equal(erase.code, 0, erase.stderr + erase.stdout);
  let erasedReport: Report | undefined;
  await until('the log.erasure record is in the tree and the audit lists it', async () => {
    const r = await audit('--reader-token', token);
    outputs.push(r.stdout + r.stderr);
    erasedReport = JSON.parse(r.stdout) as Report;
    return erasedReport.erasures.length === 1;
  });
  const e = erasedReport!;
  t.match(e.erasures[0], { reason: 'subject request 7', by: 'dpo', target: { sealed: true }, count: 1 });
  t.same(e.sealed, { opened: true, values: 6, matched: 4, erased: 1 }, 'erased: not a problem');
  t.same(
    e.problems.map((p) => `${p.code}@${p.index ?? '-'}`),
    [`SEALED_MISMATCH@${index}`],
    'only the tampered value is a problem',
  );
  const text = await runNode(vigilMain, ['audit', '--log', log.url, '--policy', policy], {
    NO_COLOR: '1',
    VIGIL_READER_TOKEN: token,
  });
  outputs.push(text.stdout + text.stderr);
  t.match(
    text.stdout,
    new RegExp(`${e.erasures[0]!.index}\\s+\\S+\\s+dpo\\s+\\{"sealed":true\\}\\s+1\\s+"subject request 7"`),
  );

  for (const out of outputs) {
    t.notMatch(out, token.slice('vigil_rt_'.length), 'the token is never printed');
    t.notMatch(out, MARKER, 'no sealed value is printed by the audit');
  }
  t.notMatch(log.output(), token.slice('vigil_rt_'.length), 'nor by the log');
});
