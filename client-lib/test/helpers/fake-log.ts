// A small in-test tlog-tiles log that implements the POST /v1/entries contract of DESIGN.md with the
// core functions (signatures, stream continuity, idempotent resubmission, receipts), serves
// /checkpoint, tiles, entry bundles and /v1/log, and injects faults on demand. Used where the real log
// process is not needed (unit tests of the emitter, checkpoint store and auditor).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  base64Encode,
  canonicalJson,
  encodeEntryBundle,
  formatCheckpoint,
  formatEntry,
  formatReceipt,
  generateKey,
  hashLeaf,
  inclusionProof,
  parseTilePath,
  recordHash,
  rootFromLeafHashes,
  signNote,
  verifyRecordSignature,
} from '../../src/index.js';

export type Fault =
  | { kind: 'status'; status: number; code?: string; retryAfter?: string }
  | { kind: 'drop' } // close the socket without answering, nothing committed
  | { kind: 'commit-then-drop' } // commit the batch, then close the socket
  | { kind: 'bad-receipt' }; // answer with receipts signed by another key

export interface FakeLog {
  url: string;
  origin: string;
  vkey: string;
  signerKey: string;
  policy: string;
  entries: Uint8Array[];
  /** Signed notes by size. */
  notes: Map<bigint, string>;
  /** Faults applied to the next POST /v1/entries requests, in order. */
  faults: Fault[];
  /** Requests seen, by path. */
  requests: string[];
  /** POST /v1/entries attempts (including faulted ones). */
  posts: number;
  /** Serve this note at /checkpoint instead of the newest (rollback tests). */
  checkpointOverride: string | undefined;
  /** Replace the bytes served in entry bundles at these indices (tamper tests). */
  tamper: Map<bigint, Uint8Array>;
  emitters: Map<string, string>;
  /** The operator emitter /v1/log presents (none: a log older than the registry). */
  operator: { name: string; vkey: string } | undefined;
  /** Blobs received, by hex SHA-256 (base64 as submitted). */
  blobs: Map<string, string>;
  /** Alters entries returned by /v1/search. */
  searchTamper?: (entry: Record<string, unknown>) => Record<string, unknown>;
  /** Refuses a record for what it is (the real log's 400/409/413/422), when this returns a refusal. */
  refuse?: (record: Record<string, unknown>) => { status: number; code: string } | undefined;
  /** Body limit of POST /v1/entries (413 BODY_TOO_LARGE past it), also served in /v1/log limits. */
  maxBodyBytes?: number;
  /** Body sizes of the POST /v1/entries requests that were read. */
  bodySizes: number[];
  /**
   * Reader endpoints (contract "Log HTTP API"): tokens accepted as `Authorization: Bearer`. While
   * empty, /v1/search answers without one (as logs did before readers).
   */
  readers: Set<string>;
  /** Sealed bytes S by hex commitment, served to readers. */
  sealed: Map<string, Uint8Array>;
  /** Erased commitments -> index of the log.erasure record (served as `erased` / 410). */
  erased: Map<string, bigint>;
  /** Bytes appended to every `GET /v1/sealed?start&end` answer (an answer longer than its values allow). */
  sealedPadding: number;
  /** Most bytes of S one range answer carries; past it 400 RANGE_TOO_LARGE (as the real log's budget). */
  sealedBudget: number;
  /** List sealedBudget as `sealedMaxBytes` in /v1/log limits (as the real log does). */
  listSealedBudget: boolean;
  /** The Authorization header of every request, by path (undefined: none). */
  authorizations: { path: string; url: string; authorization: string | undefined }[];
  /** Appends raw entry bytes and signs a new checkpoint (for building odd logs). */
  appendRaw(entries: Uint8Array[]): void;
  close(): Promise<void>;
}

function leafHashesOf(log: FakeLog): Uint8Array[] {
  return log.entries.map((e) => hashLeaf(e));
}

export async function startFakeLog(
  options: { origin?: string; emitters?: Map<string, string> } = {},
): Promise<FakeLog> {
  const origin = options.origin ?? 'fake.example/log';
  const key = generateKey(origin);
  const other = generateKey(origin);
  const streams = new Map<
    string,
    { seq: number; hash: string; results: Map<number, { index: bigint; bytes: string }> }
  >();
  let leafHashes: Uint8Array[] = [];

  const sign = (signer: string): string => {
    const size = BigInt(leafHashes.length);
    return signNote(
      formatCheckpoint({ origin, size, root: rootFromLeafHashes(leafHashes), extensions: [] }),
      [signer],
    );
  };
  const getNode = (level: number, index: bigint): Uint8Array => {
    const start = Number(index << BigInt(level));
    return rootFromLeafHashes(leafHashes.slice(start, start + 2 ** level));
  };

  const log: FakeLog = {
    url: '',
    origin,
    vkey: key.verifierKey,
    signerKey: key.signerKey,
    policy: `log ${key.verifierKey}\nquorum none\n`,
    entries: [],
    notes: new Map(),
    faults: [],
    requests: [],
    posts: 0,
    checkpointOverride: undefined,
    tamper: new Map(),
    emitters: options.emitters ?? new Map(),
    operator: undefined,
    blobs: new Map(),
    bodySizes: [],
    readers: new Set(),
    sealed: new Map(),
    erased: new Map(),
    sealedPadding: 0,
    sealedBudget: Infinity,
    listSealedBudget: false,
    authorizations: [],
    appendRaw(entries) {
      log.entries.push(...entries);
      leafHashes = leafHashesOf(log);
      log.notes.set(BigInt(leafHashes.length), sign(key.signerKey));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  log.notes.set(0n, sign(key.signerKey));

  const submit = (body: unknown, signer: string): { status: number; json: unknown } => {
    const list = (body as { entries?: unknown }).entries;
    if (!Array.isArray(list) || list.length === 0 || list.length > 1000) {
      return {
        status: 400,
        json: { code: 'REQUEST_MALFORMED', message: 'entries must be a list of 1..1000' },
      };
    }
    const pending: { stream: string; seq: number; bytes: Uint8Array; hash: string; dup?: bigint }[] = [];
    const view = new Map<string, { seq: number; hash: string }>();
    for (const item of list as {
      emitter: string;
      record: Record<string, unknown>;
      sig: string;
      blobs?: Record<string, string>;
    }[]) {
      for (const [hex, b64] of Object.entries(item.blobs ?? {})) log.blobs.set(hex, b64);
      const vkey = log.emitters.get(item.emitter);
      if (vkey === undefined)
        return { status: 403, json: { code: 'EMITTER_UNKNOWN', message: `unknown emitter ${item.emitter}` } };
      try {
        verifyRecordSignature(item.record, item.sig, vkey);
      } catch {
        return { status: 400, json: { code: 'SIGNATURE_INVALID', message: 'bad record signature' } };
      }
      const refusal = log.refuse?.(item.record);
      if (refusal !== undefined) return { status: refusal.status, json: { ...refusal, message: 'refused' } };
      const stream = item.record.stream as string;
      const seq = item.record.seq as number;
      const st = view.get(stream) ?? streams.get(stream) ?? { seq: -1, hash: '' };
      const done = streams.get(stream)?.results.get(seq);
      const bytes = formatEntry({
        received: new Date().toISOString(),
        emitter: item.emitter,
        peer: '127.0.0.1',
        record: item.record,
        sig: item.sig,
      });
      if (done !== undefined) {
        // Idempotent resubmission: same record and signature -> the original entry.
        const orig = JSON.parse(done.bytes) as { record: unknown; sig: string };
        if (canonicalJson(orig.record) === canonicalJson(item.record) && orig.sig === item.sig) {
          pending.push({ stream, seq, bytes, hash: '', dup: done.index });
          continue;
        }
        return {
          status: 409,
          json: {
            code: 'SEQ_CONFLICT',
            message: `different record at ${stream}/${seq}`,
            expected: String(st.seq + 1),
          },
        };
      }
      if (seq !== st.seq + 1 || (seq > 0 && item.record.prev !== st.hash)) {
        return {
          status: 409,
          json: { code: 'SEQ_CONFLICT', message: `want seq ${st.seq + 1}`, expected: String(st.seq + 1) },
        };
      }
      const hash = recordHash(item.record);
      view.set(stream, { seq, hash });
      pending.push({ stream, seq, bytes, hash });
    }
    const indices: bigint[] = [];
    for (const p of pending) {
      if (p.dup !== undefined) {
        indices.push(p.dup);
        continue;
      }
      const index = BigInt(log.entries.length);
      log.entries.push(p.bytes);
      leafHashes.push(hashLeaf(p.bytes));
      let st = streams.get(p.stream);
      if (st === undefined) {
        st = { seq: -1, hash: '', results: new Map() };
        streams.set(p.stream, st);
      }
      st.seq = p.seq;
      st.hash = p.hash;
      st.results.set(p.seq, { index, bytes: new TextDecoder().decode(p.bytes) });
      indices.push(index);
    }
    const size = BigInt(leafHashes.length);
    log.notes.set(size, sign(key.signerKey));
    const note = sign(signer);
    return {
      status: 200,
      json: {
        entries: indices.map((index) => ({
          index: index.toString(),
          leafHash: base64Encode(leafHashes[Number(index)]!),
          receipt: formatReceipt({ index, proof: inclusionProof(index, size, getNode), note }),
        })),
        checkpoint: note,
      },
    };
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname.slice(1);
    log.requests.push(p);
    log.authorizations.push({ path: p, url: req.url ?? '', authorization: req.headers.authorization });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (
        status: number,
        body: string | Uint8Array,
        type = 'application/json',
        headers: Record<string, string> = {},
      ): void => {
        res.writeHead(status, { 'content-type': type, ...headers });
        res.end(body);
      };
      if (req.method === 'POST' && p === 'v1/entries') {
        log.posts++;
        const fault = log.faults.shift();
        if (fault?.kind === 'drop') return req.socket.destroy();
        if (fault?.kind === 'status') {
          return send(
            fault.status,
            JSON.stringify({ code: fault.code ?? 'UNAVAILABLE', message: 'fault' }),
            'application/json',
            fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {},
          );
        }
        const body = Buffer.concat(chunks);
        log.bodySizes.push(body.length);
        if (log.maxBodyBytes !== undefined && body.length > log.maxBodyBytes) {
          return send(413, JSON.stringify({ code: 'BODY_TOO_LARGE', message: 'body too large' }));
        }
        const r = submit(
          JSON.parse(body.toString('utf8')),
          fault?.kind === 'bad-receipt' ? other.signerKey : key.signerKey,
        );
        if (fault?.kind === 'commit-then-drop') return req.socket.destroy();
        return send(r.status, JSON.stringify(r.json));
      }
      if (p === 'checkpoint/witnessed') {
        // The newest honest checkpoint (this log has no witnesses: every checkpoint meets quorum 0).
        return send(200, log.notes.get(BigInt(leafHashes.length))!, 'text/plain; charset=utf-8');
      }
      if (p === 'checkpoint') {
        return send(
          200,
          log.checkpointOverride ?? log.notes.get(BigInt(leafHashes.length))!,
          'text/plain; charset=utf-8',
        );
      }
      if (p === 'v1/log') {
        return send(
          200,
          JSON.stringify({
            origin,
            vkey: key.verifierKey,
            witnesses: [],
            quorum: 0,
            limits: {
              ...(log.maxBodyBytes === undefined ? {} : { maxBodyBytes: log.maxBodyBytes }),
              ...(log.listSealedBudget ? { sealedMaxBytes: log.sealedBudget } : {}),
            },
            emitters: [...log.emitters].map(([name, vkey]) => ({ name, vkey, revoked: false })),
            ...(log.operator !== undefined ? { operator: log.operator } : {}),
          }),
        );
      }
      const isReader = (): boolean => {
        const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
        return m !== null && log.readers.has(m[1]!);
      };
      const readerRequired = (): void =>
        send(401, JSON.stringify({ code: 'READER_REQUIRED', message: 'reader token required' }), undefined, {
          'www-authenticate': 'Bearer realm="vigil"',
        });
      /** The sealed / erased maps for some commitments (those the log holds). */
      const sealedMaps = (hexes: string[]) => {
        const sealed: Record<string, string> = {};
        const erased: Record<string, string> = {};
        for (const h of hexes) {
          const e = log.erased.get(h);
          const b = log.sealed.get(h);
          if (e !== undefined) erased[h] = e.toString();
          else if (b !== undefined) sealed[h] = base64Encode(b);
        }
        return { sealed, erased };
      };
      const refsOf = (from: number, to: number): string[] => {
        const out: string[] = [];
        const walk = (v: unknown): void => {
          if (typeof v !== 'object' || v === null) return;
          const inner = (v as { $sealed?: { sha256?: unknown } }).$sealed;
          if (inner !== undefined && typeof inner.sha256 === 'string') out.push(inner.sha256);
          else for (const x of Object.values(v)) walk(x);
        };
        for (const e of log.entries.slice(from, to))
          walk((JSON.parse(new TextDecoder().decode(e)) as { record: unknown }).record);
        return out;
      };
      if (p === 'v1/sealed') {
        if (!isReader()) return readerRequired();
        const start = Number(url.searchParams.get('start'));
        const end = Number(url.searchParams.get('end'));
        if (!(end > start && end - start <= 1000 && end <= log.entries.length))
          return send(400, JSON.stringify({ code: 'REQUEST_MALFORMED', message: 'bad range' }));
        const hexes = refsOf(start, end);
        const bytes = hexes.reduce((n, h) => n + (log.sealed.get(h)?.length ?? 0), 0);
        if (bytes > log.sealedBudget)
          return send(400, JSON.stringify({ code: 'RANGE_TOO_LARGE', message: `${bytes} bytes` }));
        const body = JSON.stringify(sealedMaps(hexes));
        return send(200, body.slice(0, -1) + ' '.repeat(log.sealedPadding) + '}');
      }
      if (p.startsWith('v1/sealed/')) {
        if (!isReader()) return readerRequired();
        const hex = p.slice('v1/sealed/'.length);
        const e = log.erased.get(hex);
        if (e !== undefined)
          return send(410, JSON.stringify({ code: 'ERASED', message: 'erased', index: e.toString() }));
        const b = log.sealed.get(hex);
        if (b === undefined) return send(404, JSON.stringify({ code: 'SEALED_NOT_FOUND', message: hex }));
        return send(200, b, 'application/octet-stream');
      }
      if (p.startsWith('v1/entries/')) {
        const i = Number(p.slice('v1/entries/'.length));
        if (!(i >= 0 && i < log.entries.length))
          return send(404, JSON.stringify({ code: 'INDEX_OUT_OF_RANGE', message: p }));
        // The exact entry bytes (tampered ones too, as entry bundles serve them).
        if (url.searchParams.get('format') === 'raw')
          return send(200, log.tamper.get(BigInt(i)) ?? log.entries[i]!, 'application/octet-stream');
        const open = url.searchParams.get('open') === '1';
        if (open && !isReader()) return readerRequired();
        const size = BigInt(leafHashes.length);
        const index = BigInt(i);
        return send(
          200,
          JSON.stringify({
            index: index.toString(),
            leafHash: base64Encode(leafHashes[i]!),
            entry: JSON.parse(new TextDecoder().decode(log.entries[i]!)) as unknown,
            receipt: formatReceipt({
              index,
              proof: inclusionProof(index, size, getNode),
              note: log.notes.get(size)!,
            }),
            ...(open ? sealedMaps(refsOf(i, i + 1)) : {}),
          }),
        );
      }
      if (p.startsWith('v1/blobs/')) {
        const b = log.blobs.get(p.slice('v1/blobs/'.length));
        if (b === undefined) return send(404, JSON.stringify({ code: 'NOT_FOUND', message: p }));
        return send(200, Buffer.from(b, 'base64'), 'application/octet-stream');
      }
      if (p === 'v1/search') {
        if (log.readers.size > 0 && !isReader()) return readerRequired();
        // Newest first; filters on emitter, stream and session only. `searchTamper` alters what is returned.
        const size = BigInt(leafHashes.length);
        const note = log.notes.get(size)!;
        const results = [];
        for (let i = log.entries.length - 1; i >= 0; i--) {
          const e = JSON.parse(new TextDecoder().decode(log.entries[i]!)) as {
            emitter: string;
            record: { stream: string; session?: string };
          };
          if (url.searchParams.has('emitter') && e.emitter !== url.searchParams.get('emitter')) continue;
          if (url.searchParams.has('stream') && e.record.stream !== url.searchParams.get('stream')) continue;
          if (url.searchParams.has('session') && e.record.session !== url.searchParams.get('session'))
            continue;
          const index = BigInt(i);
          results.push({
            index: index.toString(),
            entry: log.searchTamper?.(e) ?? e,
            receipt: formatReceipt({ index, proof: inclusionProof(index, size, getNode), note }),
          });
        }
        const open = url.searchParams.get('open') === '1';
        const hexes = results.flatMap((r) => refsOf(Number(r.index), Number(r.index) + 1));
        return send(200, JSON.stringify({ entries: results, ...(open ? sealedMaps(hexes) : {}) }));
      }
      if (p.startsWith('tile/')) {
        let t;
        try {
          t = parseTilePath(p);
        } catch {
          return send(400, JSON.stringify({ code: 'TILE_PATH_INVALID', message: p }));
        }
        const size = BigInt(leafHashes.length);
        if (t.level === 'entries') {
          const start = Number(t.index) * 256;
          if (BigInt(start + t.width) > size)
            return send(404, JSON.stringify({ code: 'NOT_FOUND', message: p }));
          const entries = log.entries
            .slice(start, start + t.width)
            .map((e, i) => log.tamper.get(BigInt(start + i)) ?? e);
          return send(200, encodeEntryBundle(entries), 'application/octet-stream');
        }
        const span = 256n ** BigInt(t.level);
        if ((t.index * 256n + BigInt(t.width)) * span > size)
          return send(404, JSON.stringify({ code: 'NOT_FOUND', message: p }));
        const out = new Uint8Array(t.width * 32);
        for (let i = 0; i < t.width; i++) out.set(getNode(t.level * 8, t.index * 256n + BigInt(i)), i * 32);
        return send(200, out, 'application/octet-stream');
      }
      send(404, JSON.stringify({ code: 'NOT_FOUND', message: p }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  log.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return log;
}
