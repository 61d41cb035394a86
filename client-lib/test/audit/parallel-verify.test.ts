// The auditor with an injected SignatureVerifier (what `vigil audit` uses: the libuv threadpool) finds
// exactly the problems of the inline check, in entry order, across several tiles in flight, even
// when the checks finish out of order.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import {
  LogClient,
  formatEntry,
  generateKey,
  parsePolicy,
  recordHash,
  runAudit,
  signRecord,
  type AuditOptions,
  type SignatureVerifier,
} from '../../src/index.js';
import { threadpoolSignatureVerifier, workerPoolSignatureVerifier } from '../../src/audit/node-verifier.js';
import { fileAuditStorage } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const NAME = 'emitter.example/a';
const key = generateKey(NAME, new Uint8Array(32).fill(5));
const other = generateKey('emitter.example/b', new Uint8Array(32).fill(6));

/** One closed stream of `length` records; the record at `badSigAt` carries a wrong signature. */
function stream(name: string, length: number, badSigAt?: number, sig?: string): Uint8Array[] {
  let prev: string | undefined;
  const out: Uint8Array[] = [];
  for (let seq = 0; seq < length; seq++) {
    const record: Record<string, unknown> = {
      v: 1,
      stream: name,
      seq,
      ...(prev === undefined ? {} : { prev }),
      time: '2026-11-24T10:00:00Z',
      kind: seq === 0 ? 'stream.open' : seq === length - 1 ? 'stream.close' : 'app.event',
    };
    prev = recordHash(record);
    out.push(
      formatEntry({
        received: '2026-11-24T10:00:01Z',
        emitter: NAME,
        peer: '127.0.0.1',
        record,
        sig:
          seq === badSigAt
            ? (sig ?? signRecord({ ...record, seq: 99 }, key.signerKey))
            : signRecord(record, key.signerKey),
      }),
    );
  }
  return out;
}

/** Answers in a scrambled order: each check waits a different number of event-loop turns. */
function scrambled(inner: SignatureVerifier): SignatureVerifier {
  let n = 0;
  return async (signature, message, publicKey) => {
    const turns = (n++ * 7919) % 13;
    for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
    return inner(signature, message, publicKey);
  };
}

t.test('threadpool verification reports what the inline check reports, in entry order', async (t) => {
  const log = await startFakeLog({ emitters: new Map([[NAME, key.verifierKey]]) });
  const dirs: string[] = [];
  t.teardown(async () => {
    await log.close();
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  const wrongKeySig = signRecord({ v: 1, stream: 'w', seq: 3 }, other.signerKey);
  log.appendRaw([
    ...stream('a', 300, 7), // 0..299, bad at 7
    ...stream('b', 300, 250), // 300..599, bad at 550
    ...stream('c', 200, 1, 'AAAA'), // 600..799, a signature that is not 64 bytes at 601
    ...stream('d', 300, 299, wrongKeySig), // 800..1099, another key's signature at 1099
    ...stream('e', 10, 4, 'not base64!'), // 1100..1109, not base64 at 1104
  ]);
  const options = async (): Promise<AuditOptions> => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-audit-par-'));
    dirs.push(dir);
    return {
      client: new LogClient(log.url),
      policy: parsePolicy(log.policy),
      storage: fileAuditStorage(dir),
    };
  };
  const want = [
    'SIGNATURE_INVALID@7',
    'SIGNATURE_INVALID@550',
    'SIGNATURE_INVALID@601',
    'SIGNATURE_INVALID@1099',
    'SIGNATURE_INVALID@1104',
  ];
  const inline = await runAudit(await options());
  t.same(
    inline.problems.map((p) => `${p.code}@${p.index}`),
    want,
  );

  const progress: bigint[] = [];
  const threaded = await runAudit({
    ...(await options()),
    verifySignature: threadpoolSignatureVerifier(),
    onProgress: (done) => progress.push(done),
  });
  t.same(threaded.problems, inline.problems, 'same problems, same messages, same order');
  t.same({ ...threaded, problems: [] }, { ...inline, problems: [] }, 'same report');
  t.same(progress, [256n, 512n, 768n, 1024n, 1110n], 'progress once per tile, in order');

  const pool = workerPoolSignatureVerifier(2);
  t.teardown(() => pool.close());
  const pooled = await runAudit({ ...(await options()), verifySignature: pool });
  t.same(pooled.problems, inline.problems, 'worker pool: same problems, same messages, same order');
  t.same({ ...pooled, problems: [] }, { ...inline, problems: [] }, 'worker pool: same report');

  const out = await runAudit({
    ...(await options()),
    verifySignature: scrambled(threadpoolSignatureVerifier()),
  });
  t.same(
    out.problems.map((p) => `${p.code}@${p.index}`),
    want,
    'entry order although checks finish out of order',
  );
});

t.test('a closed worker pool rejects instead of answering', async (t) => {
  const pool = workerPoolSignatureVerifier(1);
  const message = new TextEncoder().encode('m');
  const { getCryptoProvider, parseVerifierKey, parseSignerKey } = await import('../../src/index.js');
  const sig = getCryptoProvider().ed25519Sign(message, parseSignerKey(key.signerKey).seed);
  const publicKey = parseVerifierKey(key.verifierKey).publicKey;
  t.equal(await pool(sig, message, publicKey), true, 'verifies while its worker runs');
  await pool.close();
  // After close the workers are gone: a check is refused, never answered with a made-up result.
  await t.rejects(pool(sig, message, publicKey), /closed/);
});

t.test('a check queued just before close starts no worker, and the process can exit', async (t) => {
  // What `vigil audit` does when a bundle read fails right after the previous tile queued its
  // checks: close() runs before the queued batch is posted. The batch must be refused, not posted to
  // a pool started after close (its threads would keep the finished process alive).
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const verifier = fileURLToPath(new URL('../../src/audit/node-verifier.js', import.meta.url));
  const script = `
    const { workerPoolSignatureVerifier } = await import(${JSON.stringify(verifier)});
    const pool = workerPoolSignatureVerifier(2);
    const pending = pool(new Uint8Array(64), new Uint8Array(1), new Uint8Array(32));
    await pool.close();
    try { await pending; console.log('answered'); } catch (err) { console.log('refused: ' + err.message); }
  `;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-verifier-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'close-early.mjs');
  await fs.writeFile(file, script);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (b: string) => (out += b));
  const exited = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(false);
    }, 15_000);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  t.equal(exited, true, 'the process exits by itself');
  t.match(out, /^refused: signature verifier closed/, 'the queued check is refused');
});

for (const [name, make] of [
  ['threadpool', threadpoolSignatureVerifier],
  ['worker pool', () => workerPoolSignatureVerifier(1)],
] as const)
  t.test(`the ${name} verifier applies the strict input rule`, async (t) => {
    const verify = make();
    t.teardown(async () => (verify as { close?: () => Promise<void> }).close?.());
    const message = new TextEncoder().encode('m');
    const { getCryptoProvider, parseVerifierKey, parseSignerKey } = await import('../../src/index.js');
    const seed = parseSignerKey(key.signerKey).seed;
    const publicKey = parseVerifierKey(key.verifierKey).publicKey;
    const sig = getCryptoProvider().ed25519Sign(message, seed);
    t.equal(await verify(sig, message, publicKey), true);
    t.equal(await verify(sig, new TextEncoder().encode('n'), publicKey), false, 'other message');
    // S + L: the same equation holds, but S is not reduced, so the strict rule refuses it.
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]!);
    s += L;
    const malleable = sig.slice();
    for (let i = 0; i < 32; i++) malleable[32 + i] = Number((s >> BigInt(8 * i)) & 0xffn);
    t.equal(getCryptoProvider().ed25519Verify(malleable, message, publicKey), false, 'core refuses S >= L');
    t.equal(await verify(malleable, message, publicKey), false, `${name} refuses S >= L`);
    t.equal(await verify(sig.subarray(0, 63), message, publicKey), false, '63-byte signature');
  });
