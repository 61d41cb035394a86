// Evidence bundles (src/review/bundle.ts) checked offline: a small log built here in memory (operator
// self-registration, an emitter's registration, one stream of records with sealed values, a witness
// cosignature), assembled into a bundle as buildBundle writes it, then each kind of tampering refused
// with its own code: a flipped entry byte, a wrong proof node, a cosignature removed below the quorum,
// a checkpoint signed by another key, a record signed by a key the registry does not hold, an emitter
// the bundle does not register, a broken prev chain, an S that does not match its commitment, another
// policy. Plus the strict parse and the stable format, and buildBundle against the in-test tlog-tiles
// log: what it selects and adds, and a log that lies (entry bytes, a sealed value, a stale checkpoint).
import t from 'tap';
import {
  BUNDLE_FORMAT,
  LogClient,
  buildBundle,
  base64Decode,
  base64Encode,
  cosign,
  cosignerVerifierKey,
  formatBundle,
  formatCheckpoint,
  formatEntry,
  generateKey,
  hashLeaf,
  inclusionProof,
  parseBundle,
  parsePolicy,
  randomBytes,
  recordHash,
  rootFromLeafHashes,
  sealValue,
  signNote,
  signRecord,
  verifyBundle,
  type BundleReport,
  type EvidenceBundle,
} from '../../src/index.js';
import { useNodeCrypto } from '../../src/node.js';
import { startFakeLog } from '../helpers/fake-log.js';

useNodeCrypto();

const ORIGIN = 'bundle.test/log';
const OPERATOR = `${ORIGIN}/operator`;
const EMITTER = 'emitter.example/a';
const logKey = generateKey(ORIGIN);
const witnessKey = generateKey('witness.example');
const operatorKey = generateKey(OPERATOR);
const emitterKey = generateKey(EMITTER);
const POLICY = `log ${logKey.verifierKey}\nwitness w1 ${cosignerVerifierKey(witnessKey.signerKey)}\nquorum w1\n`;
const policy = parsePolicy(POLICY);

/** A stream of one emitter's records: each call makes the next entry (seq, prev chained). */
function writer(emitter: string, signerKey: string, stream: string) {
  let seq = 0;
  let prev: string | undefined;
  return (
    fields: Record<string, unknown>,
    options: { signWith?: string; prev?: string; skip?: number } = {},
  ): Uint8Array => {
    seq += options.skip ?? 0;
    const record: Record<string, unknown> = {
      v: 1,
      stream,
      seq: seq++,
      ...(prev !== undefined ? { prev: options.prev ?? prev } : {}),
      time: '2026-12-06T12:00:00.000Z',
      ...fields,
    };
    prev = recordHash(record);
    return formatEntry({
      received: '2026-12-06T12:00:01.000Z',
      emitter,
      peer: 'log',
      record,
      sig: signRecord(record, options.signWith ?? signerKey),
    });
  };
}

const secret = sealValue({ arguments: { message: 'evidence-secret' } }, randomBytes(16));
const erasedValue = sealValue('erased text', randomBytes(16));

/** The entries of the small log: what each test tampers with. */
function logEntries(variant: { brokenPrev?: boolean; gap?: boolean; rogue?: boolean } = {}): Uint8Array[] {
  const op = writer(OPERATOR, operatorKey.signerKey, 'operator-stream');
  const em = writer(EMITTER, emitterKey.signerKey, 'session-stream');
  const rogue = generateKey(EMITTER);
  return [
    op({ kind: 'emitter.add', name: OPERATOR, vkey: operatorKey.verifierKey }),
    op({ kind: 'emitter.add', name: EMITTER, vkey: emitterKey.verifierKey }),
    em({ kind: 'stream.open', session: 's-1' }),
    em(
      {
        kind: 'mcp.message',
        session: 's-1',
        messageType: 'request',
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': 'echo',
        message: { params: secret.ref },
      },
      variant.rogue === true ? { signWith: rogue.signerKey } : {},
    ),
    em(
      { kind: 'mcp.message', session: 's-1', messageType: 'response', message: { result: erasedValue.ref } },
      {
        ...(variant.brokenPrev === true ? { prev: base64Encode(new Uint8Array(32)) } : {}),
        ...(variant.gap === true ? { skip: 1 } : {}),
      },
    ),
    op({
      kind: 'log.erasure',
      reason: 'test',
      by: 'admin',
      target: { index: '4' },
      count: 1,
      commitments: [erasedValue.ref.$sealed.sha256],
    }),
  ];
}

/** A bundle of `entries` (all of them) as buildBundle writes it: one checkpoint, cosigned by w1. */
function bundleOf(entries: Uint8Array[], signer = logKey.signerKey): EvidenceBundle {
  const leafHashes = entries.map((e) => hashLeaf(e));
  const size = BigInt(entries.length);
  const getNode = (level: number, index: bigint): Uint8Array => {
    const start = Number(index << BigInt(level));
    return rootFromLeafHashes(leafHashes.slice(start, start + 2 ** level));
  };
  const note = signNote(
    formatCheckpoint({ origin: ORIGIN, size, root: rootFromLeafHashes(leafHashes), extensions: [] }),
    [signer],
  );
  return {
    format: BUNDLE_FORMAT,
    policy: POLICY,
    checkpoint: note + cosign(note, witnessKey.signerKey, 1_765_000_000),
    entries: entries.map((e, i) => ({
      index: String(i),
      entry: base64Encode(e),
      proof: inclusionProof(BigInt(i), size, getNode).map(base64Encode),
    })),
    sealed: { [secret.ref.$sealed.sha256]: base64Encode(secret.bytes) },
    erased: { [erasedValue.ref.$sealed.sha256]: '5' },
  };
}

/** The codes of a report's problems, with the index each names. */
function codes(r: BundleReport): string[] {
  return r.problems.map((p) => `${p.code}${p.index !== undefined ? `@${p.index}` : ''}`);
}

t.test('a bundle of the log verifies: records opened, erasure listed, cosigner counted', async (t) => {
  const b = bundleOf(logEntries());
  const r = verifyBundle(b, policy, { policyText: POLICY });
  t.same(codes(r), []);
  t.same(r.notes, []);
  t.equal(r.ok, true);
  t.equal(r.origin, ORIGIN);
  t.equal(r.size, 6n);
  t.same(r.cosigners, ['w1']);
  t.equal(r.records.length, 6);
  t.ok(r.records.every((x) => x.failure === undefined));
  const call = r.records[3]!;
  t.same(
    call.sealed.map((v) => v.state),
    ['opened'],
  );
  t.same((call.opened['message'] as { params: unknown }).params, {
    arguments: { message: 'evidence-secret' },
  });
  t.same(
    r.records[4]!.sealed.map((v) => [v.state, v.erasure]),
    [['erased', '5']],
  );
  // The format round-trips, and its text is stable.
  const text = formatBundle(b);
  t.same(parseBundle(text), b);
  t.equal(formatBundle(parseBundle(text)), text);
});

t.test('each tampering is refused with its own code, naming the entry', async (t) => {
  const good = bundleOf(logEntries());

  const flipped = structuredClone(good);
  const bytes = base64Decode(flipped.entries[3]!.entry);
  bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 1;
  flipped.entries[3]!.entry = base64Encode(bytes);
  let r = verifyBundle(flipped, policy);
  t.ok(codes(r).includes('PROOF_INVALID@3'), `flipped entry byte: ${codes(r).join(' ')}`);
  t.equal(r.ok, false);
  t.ok(r.records[3]!.failure !== undefined, 'the record carries its failure');
  t.equal(r.records[2]!.failure, undefined, 'the others do not');

  const wrongNode = structuredClone(good);
  const node = base64Decode(wrongNode.entries[2]!.proof[0]!);
  node[0] = node[0]! ^ 0x80;
  wrongNode.entries[2]!.proof[0] = base64Encode(node);
  r = verifyBundle(wrongNode, policy);
  t.same(codes(r), ['PROOF_INVALID@2'], 'a wrong proof node');

  const shortProof = structuredClone(good);
  shortProof.entries[2]!.proof.pop();
  t.same(codes(verifyBundle(shortProof, policy)), ['PROOF_INVALID@2'], 'a proof node missing');

  const noCosig = structuredClone(good);
  noCosig.checkpoint = noCosig.checkpoint.split('\n').slice(0, -2).join('\n') + '\n';
  r = verifyBundle(noCosig, policy);
  t.same(
    r.problems.map((p) => p.code),
    ['QUORUM_NOT_MET'],
    'a cosignature removed below the quorum',
  );
  t.equal(r.ok, false);
  t.ok(
    r.records.every((x) => x.failure !== undefined),
    'no record is proven by a checkpoint that fails',
  );

  const otherLog = bundleOf(logEntries(), generateKey(ORIGIN).signerKey);
  t.same(
    verifyBundle(otherLog, policy).problems.map((p) => p.code),
    ['NO_KNOWN_SIGNATURE'],
    'a checkpoint signed by another key',
  );

  const rogue = bundleOf(logEntries({ rogue: true }));
  t.same(
    codes(verifyBundle(rogue, policy)),
    ['SIGNATURE_INVALID@3'],
    'a record signed by an unregistered key',
  );

  const unregistered = structuredClone(good);
  unregistered.entries.splice(1, 1); // the emitter's registration
  r = verifyBundle(unregistered, policy);
  t.same(
    codes(r),
    ['EMITTER_UNREGISTERED@2', 'EMITTER_UNREGISTERED@3', 'EMITTER_UNREGISTERED@4'],
    'an emitter the bundle does not register',
  );

  const noOperator = structuredClone(good);
  noOperator.entries.splice(0, 1); // the operator's self-registration
  t.ok(
    verifyBundle(noOperator, policy).problems.some(
      (p) => p.code === 'EMITTER_UNREGISTERED' && p.index === undefined,
    ),
    'a bundle without the operator self-registration',
  );

  const broken = bundleOf(logEntries({ brokenPrev: true }));
  t.same(codes(verifyBundle(broken, policy)), ['PREV_MISMATCH@4'], 'a broken prev chain');

  const wrongS = structuredClone(good);
  const other = sealValue({ arguments: { message: 'another value' } }, randomBytes(16));
  wrongS.sealed[secret.ref.$sealed.sha256] = base64Encode(other.bytes);
  r = verifyBundle(wrongS, policy);
  t.same(codes(r), ['SEALED_MISMATCH@3'], 'an S that does not match its commitment');
  t.same(
    r.records[3]!.sealed.map((v) => v.state),
    ['failed'],
  );

  const wrongErasure = structuredClone(good);
  wrongErasure.erased[erasedValue.ref.$sealed.sha256] = '2';
  t.same(codes(verifyBundle(wrongErasure, policy)), ['ERASURE_INVALID@4'], 'an erasure before the record');
});

t.test('a seq gap inside the bundle is a note, not a failure', async (t) => {
  const r = verifyBundle(bundleOf(logEntries({ gap: true })), policy);
  t.equal(r.ok, true);
  t.same(
    r.notes.map((n) => `${n.code}@${n.index}`),
    ['SEQ_GAP@4'],
  );
  const withoutOpen = structuredClone(bundleOf(logEntries()));
  withoutOpen.entries.splice(2, 1); // the stream's first record left out: no gap to see before seq 1
  const r2 = verifyBundle(withoutOpen, policy);
  t.equal(r2.ok, true, codes(r2).join(' '));
});

t.test('another policy is refused; the same policy written differently is not', async (t) => {
  const b = bundleOf(logEntries());
  const other = `log ${generateKey(ORIGIN).verifierKey}\nquorum none\n`;
  t.throws(() => verifyBundle(b, parsePolicy(other), { policyText: other }), { code: 'POLICY_MISMATCH' });
  t.throws(() => verifyBundle(b, policy, { policyText: 'not a policy' }), { code: 'POLICY_MISMATCH' });
  const commented = `# pinned\n\n${POLICY.replace(' w1 ', '  w1 ')}`;
  t.equal(verifyBundle(b, parsePolicy(commented), { policyText: commented }).ok, true);
});

t.test('parseBundle is strict', async (t) => {
  const text = formatBundle(bundleOf(logEntries()));
  const v = JSON.parse(text) as Record<string, unknown>;
  const refused = (mutate: (o: Record<string, unknown>) => void, code: string, what: string) => {
    const o = structuredClone(v);
    mutate(o);
    t.throws(() => parseBundle(JSON.stringify(o)), { code }, what);
  };
  refused((o) => (o.format = 'vigil-evidence@2'), 'BUNDLE_FORMAT_UNKNOWN', 'another format');
  refused((o) => delete o.format, 'BUNDLE_FORMAT_UNKNOWN', 'no format');
  refused((o) => (o.extra = 1), 'BUNDLE_MALFORMED', 'an unknown field');
  refused((o) => delete o.sealed, 'BUNDLE_MALFORMED', 'a missing field');
  const entries = (o: Record<string, unknown>) => o.entries as Record<string, unknown>[];
  refused((o) => entries(o).reverse(), 'BUNDLE_MALFORMED', 'entries out of order');
  refused((o) => entries(o).push(entries(o)[0]!), 'BUNDLE_MALFORMED', 'an index twice');
  refused((o) => (entries(o)[0]!.index = '00'), 'BUNDLE_MALFORMED', 'a non-canonical index');
  refused((o) => (entries(o)[0]!.index = 0), 'BUNDLE_MALFORMED', 'an index as a number');
  refused((o) => (entries(o)[0]!.entry += ' '), 'BUNDLE_MALFORMED', 'entry not canonical base64');
  refused((o) => (entries(o)[1]!.proof = ['AAAA']), 'BUNDLE_MALFORMED', 'a proof hash of 3 bytes');
  refused((o) => (o.sealed = { ABC: 'AAAA' }), 'BUNDLE_MALFORMED', 'a sealed name not hex');
  refused((o) => (o.erased = { [secret.ref.$sealed.sha256]: '5' }), 'BUNDLE_MALFORMED', 'sealed and erased');
  t.throws(() => parseBundle('[]'), { code: 'BUNDLE_MALFORMED' });
  t.throws(() => parseBundle('{'), { code: 'BUNDLE_MALFORMED' });
  t.throws(() => parseBundle('null'), { code: 'BUNDLE_MALFORMED' });
  const bad = verifyBundle(
    { ...bundleOf(logEntries()), entries: [{ index: '0', entry: '!', proof: [] }] },
    policy,
  );
  t.same(
    [bad.ok, bad.problems.map((p) => p.code)],
    [false, ['BUNDLE_MALFORMED']],
    'verifyBundle does not throw',
  );
});

t.test('buildBundle: the session, its registry records and erasure record, each proven', async (t) => {
  const log = await startFakeLog({ origin: ORIGIN });
  t.teardown(() => log.close());
  log.appendRaw(logEntries());
  log.readers.add('vigil_rt_bundle-test');
  log.sealed.set(secret.ref.$sealed.sha256, secret.bytes);
  log.erased.set(erasedValue.ref.$sealed.sha256, 5n);
  const logPolicy = parsePolicy(log.policy);
  const client = new LogClient(log.url, { readerToken: 'vigil_rt_bundle-test' });
  const b = await buildBundle(client, logPolicy, log.policy, { session: 's-1' });
  t.same(
    b.entries.map((e) => e.index),
    ['0', '1', '2', '3', '4', '5'],
    'operator and emitter registrations, the session, the erasure record',
  );
  t.same(b.sealed, { [secret.ref.$sealed.sha256]: base64Encode(secret.bytes) });
  t.same(b.erased, { [erasedValue.ref.$sealed.sha256]: '5' });
  t.equal(b.policy, log.policy);
  const r = verifyBundle(parseBundle(formatBundle(b)), logPolicy, { policyText: log.policy });
  t.same(codes(r), []);
  t.equal(r.ok, true);
  t.ok(
    log.requests.some((p) => p.startsWith('tile/0/')),
    'proofs come from the tiles',
  );

  const sealedOnly = await buildBundle(client, logPolicy, log.policy, { session: 's-1' }, { open: false });
  t.same([sealedOnly.sealed, sealedOnly.erased], [{}, {}], 'open: false keeps values sealed');
  t.same(
    sealedOnly.entries.map((e) => e.index),
    ['0', '1', '2', '3', '4'],
  );

  // A window on the emitter's clock, applied here: the records' time is 12:00:00.
  const inWindow = await buildBundle(client, logPolicy, log.policy, {
    since: new Date('2026-12-06T11:59:00Z'),
    until: new Date('2026-12-06T12:01:00Z'),
    clock: 'emitter',
    emitter: EMITTER,
  });
  t.same(
    inWindow.entries.map((e) => e.index),
    ['0', '1', '2', '3', '4', '5'],
  );
  const outside = await buildBundle(client, logPolicy, log.policy, {
    since: new Date('2026-12-06T12:00:30Z'),
    clock: 'emitter',
    emitter: EMITTER,
  });
  t.same(outside.entries, [], 'nothing selected: no registry records either');
});

t.test('buildBundle refuses what the log cannot prove', async (t) => {
  const log = await startFakeLog({ origin: ORIGIN });
  t.teardown(() => log.close());
  const entries = logEntries();
  log.appendRaw(entries);
  log.readers.add('vigil_rt_bundle-test');
  log.sealed.set(secret.ref.$sealed.sha256, secret.bytes);
  const logPolicy = parsePolicy(log.policy);
  const client = new LogClient(log.url, { readerToken: 'vigil_rt_bundle-test' });
  const build = () => buildBundle(client, logPolicy, log.policy, { session: 's-1' });

  const other = sealValue({ arguments: { message: 'another value' } }, randomBytes(16));
  log.sealed.set(secret.ref.$sealed.sha256, other.bytes);
  await t.rejects(build(), { code: 'SEALED_MISMATCH' }, 'a sealed value that does not match');
  log.sealed.set(secret.ref.$sealed.sha256, secret.bytes);

  const bytes = entries[3]!.slice();
  bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 1;
  log.tamper.set(3n, bytes);
  await t.rejects(build(), { code: 'PROOF_INVALID' }, 'entry bytes the tree does not hold');
  log.tamper.clear();

  log.checkpointOverride = signNote(
    formatCheckpoint({
      origin: ORIGIN,
      size: 3n,
      root: rootFromLeafHashes(entries.slice(0, 3).map((e) => hashLeaf(e))),
      extensions: [],
    }),
    [log.signerKey],
  );
  await t.rejects(build(), { code: 'INDEX_OUT_OF_RANGE' }, 'records newer than the checkpoint');
  // The latest checkpoint under another key, an honest one at /checkpoint/witnessed: a lying log is
  // refused, never looked past.
  log.checkpointOverride = signNote(
    formatCheckpoint({
      origin: ORIGIN,
      size: BigInt(entries.length),
      root: rootFromLeafHashes(entries.map((e) => hashLeaf(e))),
      extensions: [],
    }),
    [generateKey(ORIGIN).signerKey],
  );
  await t.rejects(build(), { code: 'NO_KNOWN_SIGNATURE' }, 'a latest checkpoint under another key');
  log.checkpointOverride = undefined;

  await t.rejects(
    buildBundle(client, parsePolicy(POLICY), POLICY, { session: 's-1' }),
    { code: 'NO_KNOWN_SIGNATURE' },
    'no checkpoint satisfies the policy',
  );
  t.equal((await build()).entries.length, 5, 'the honest log builds');
});
