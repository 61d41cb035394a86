// End to end: the SDK client drives server-everything (`streamableHttp`) through `vigil mcp proxy`
// (the compiled CLI) against a real log process, in sync and spool modes, with the same session as
// the wrapper test; every call is found with `vigil search`, its receipt verified, and compared with
// what the client saw. Then HTTPS on the proxy (a certificate made here with openssl) and JWT
// principals validated with --jwt-public-key (a key pair made here, the JWT signed with node:crypto).
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs/promises';
import https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { isSealedRef, openSealed } from '@vigil/client';
import t from 'tap';
import { startLog } from '../helpers/log.js';
import {
  checkClientSaw,
  checkEverythingSession,
  everythingEntry,
  exerciseEverything,
  freePort,
  registerEmitter,
  samplingClient,
  searchUntil,
  spawnNode,
  startProxy,
  startEverythingHttp,
  type Found,
  type Spawned,
} from '../helpers/mcp.js';

const log = await startLog();
t.teardown(() => log.stop());
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-mcp-proxy-e2e-'));
t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
const reg = await registerEmitter(log, dir, 'mcp-proxy');
const upstream = await startEverythingHttp();
t.teardown(() => upstream.process.stop());

const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Starts `vigil mcp proxy` in `mode` on an ephemeral port; resolves with its URL once it listens. */
function startModeProxy(mode: string, extra: string[] = []): Promise<{ url: string; process: Spawned }> {
  const spool = path.join(dir, `spool-${mode}-${extra.length}`);
  return startProxy(log, reg, upstream.url, spool, ['--mode', mode, ...extra]);
}

/** The records of an HTTP session once its end (DELETE) left the cancelled call unanswered. */
async function sessionRecords(session: string): Promise<Found[]> {
  return searchUntil(log, reg.policyFile, { session }, (f) =>
    f.some((x) => x.record['kind'] === 'mcp.unanswered'),
  );
}

/**
 * The value a sealed commitment of the log stands for: S read as the log's reader
 * (`GET /v1/sealed/<hex>`) and checked against the commitment with openSealed. Throws when `ref` is
 * not a commitment or S is not there.
 */
async function openFromLog(ref: unknown): Promise<unknown> {
  if (!isSealedRef(ref)) throw new Error(`not a sealed commitment: ${JSON.stringify(ref)}`);
  const res = await fetch(new URL(`v1/sealed/${ref.$sealed.sha256}`, log.url), {
    headers: { authorization: `Bearer ${await log.readerToken()}` },
  });
  if (res.status !== 200) throw new Error(`GET /v1/sealed/${ref.$sealed.sha256}: ${res.status}`);
  return openSealed(ref, new Uint8Array(await res.arrayBuffer()));
}

type Rec = Record<string, unknown>;
const member = (r: unknown, key: string): unknown => (r as Rec | undefined)?.[key];

for (const mode of ['sync', 'spool']) {
  t.test(`${mode}: SDK client -> vigil mcp proxy -> server-everything; every call in the log`, async (t) => {
    const proxy = await startModeProxy(mode);
    t.teardown(() => proxy.process.stop());
    const token = `opaque-token-${mode}-0123456789`;
    const client = samplingClient('e2e-proxy');
    const transport = new StreamableHTTPClientTransport(new URL(proxy.url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    const session = transport.sessionId!;
    t.type(session, 'string', 'the upstream assigned a session');
    const seen = await exerciseEverything(client, `proxy ${mode}`);
    await transport.terminateSession();
    await client.close();
    checkClientSaw(t, seen, `hello proxy ${mode}`);

    const found = await sessionRecords(session);
    const records = found.map((x) => x.record);
    checkEverythingSession(t, records, seen, 'streamable-http');
    const echoFound = found.find(
      (x) => x.record['gen_ai.tool.name'] === 'echo' && x.record['direction'] === 'client_to_server',
    )!;
    // Opened (as the reader sees it): the principal's claims and the Authorization digest.
    t.match(echoFound.record, {
      'mcp.session.id': session,
      principal: { type: 'token', claims: { tokenSha256: sha256Hex(token) } },
      http: {
        method: 'POST',
        path: new URL(proxy.url).pathname,
        mcpSessionId: session,
        authorizationSha256: sha256Hex(`Bearer ${token}`),
      },
    });
    // In the public record the principal keeps only its type; its claims and the Authorization
    // digest are commitments, whose S (read here as the reader) opens to the right values.
    const pub = echoFound.entry.record as Rec;
    t.same(Object.keys(pub['principal'] as Rec).sort(), ['claims', 'type'], 'public principal: type, claims');
    t.equal(member(pub['principal'], 'type'), 'token');
    t.same(await openFromLog(member(pub['principal'], 'claims')), { tokenSha256: sha256Hex(token) });
    t.match(pub['http'], { method: 'POST', mcpSessionId: session });
    t.equal(
      await openFromLog(member(pub['http'], 'authorizationSha256')),
      sha256Hex(`Bearer ${token}`),
      'the Authorization digest is sealed and opens to the right value',
    );
    const publicText = JSON.stringify(found.map((x) => x.entry.record));
    t.notOk(publicText.includes(sha256Hex(token)), 'the token digest is not public');
    t.notOk(publicText.includes(sha256Hex(`Bearer ${token}`)), 'the Authorization digest is not public');
    t.notOk(JSON.stringify(records).includes(token), 'the token is never recorded');
    t.equal(await proxy.process.stop(), 0, 'the proxy stops cleanly on SIGTERM');
  });
}

t.test('legacy HTTP+SSE (2024-11-05): passed through and recorded', async (t) => {
  const port = await freePort();
  const sse = spawnNode(everythingEntry, ['sse'], { PORT: String(port) });
  t.teardown(() => sse.stop());
  await sse.waitFor(/running on port/);
  const proxy = await startModeProxy('sync', ['--upstream', `http://127.0.0.1:${port}/sse`]);
  t.teardown(() => proxy.process.stop());
  t.match(proxy.url, /\/sse$/);
  const client = new Client({ name: 'e2e-legacy-sse', version: '0' });
  const transport = new SSEClientTransport(new URL(proxy.url));
  await client.connect(transport);
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'over legacy SSE' } });
  t.same(echo.content, [{ type: 'text', text: 'Echo: over legacy SSE' }]);
  await client.close();

  const requests = await searchUntil(log, reg.policyFile, { tool: 'echo' }, (f) =>
    f.some((x) => JSON.stringify(x.record).includes('over legacy SSE')),
  );
  const request = requests.find((x) => JSON.stringify(x.record).includes('over legacy SSE'))!.record;
  const session = request['session'] as string;
  t.match(request, {
    direction: 'client_to_server',
    'mcp.session.id': session,
    http: { method: 'POST', path: '/message' },
  });
  const records = (
    await searchUntil(log, reg.policyFile, { session }, (f) =>
      f.some((x) => x.record['direction'] === 'server_to_client' && x.record['gen_ai.tool.name'] === 'echo'),
    )
  ).map((x) => x.record);
  const answer = records.find(
    (r) => r['direction'] === 'server_to_client' && r['gen_ai.tool.name'] === 'echo',
  );
  t.match(
    answer,
    {
      matched: true,
      correlation: request['correlation'],
      message: { result: { content: echo.content } },
      http: { method: 'GET', path: '/sse' },
    },
    'the answer came on the GET stream and correlates with the POSTed request',
  );
});

/** A fetch over node:https trusting `ca` (the SDK transport takes a custom fetch). */
function fetchTrusting(ca: string): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
      const req = https.request(url, { method: init?.method ?? 'GET', headers, ca }, (res) => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(', ') : v);
        }
        const empty = res.statusCode === 204 || res.statusCode === 304;
        if (empty) res.resume();
        const body = empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status: res.statusCode ?? 500, headers: out }));
      });
      init?.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.on('error', reject);
      req.end(typeof init?.body === 'string' ? init.body : undefined);
    });
}

function jwt(key: KeyObject, claims: Record<string, unknown>): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'EdDSA', typ: 'at+jwt' })}.${b64(claims)}`;
  return `${head}.${sign(null, Buffer.from(head), key).toString('base64url')}`;
}

t.test('HTTPS proxy with JWT principals (--jwt-public-key, --require-auth)', async (t) => {
  const certFile = path.join(dir, 'proxy.crt');
  const keyFile = path.join(dir, 'proxy.tls.key');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  const issuer = generateKeyPairSync('ed25519');
  const forger = generateKeyPairSync('ed25519');
  const jwtKeyFile = path.join(dir, 'issuer.pub.pem');
  await fs.writeFile(jwtKeyFile, issuer.publicKey.export({ type: 'spki', format: 'pem' }));
  const proxy = await startModeProxy('sync', [
    '--tls-cert',
    certFile,
    '--tls-key',
    keyFile,
    '--jwt-public-key',
    jwtKeyFile,
    '--jwt-issuer',
    'https://issuer.test',
    '--require-auth',
  ]);
  t.teardown(() => proxy.process.stop());
  t.match(proxy.url, /^https:\/\/127\.0\.0\.1:[0-9]+\/mcp$/);
  const httpsFetch = fetchTrusting(await fs.readFile(certFile, 'utf8'));
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: 'https://issuer.test', sub: 'alice', client_id: 'agent-7', exp: now + 600 };
  const good = jwt(issuer.privateKey, claims);

  const ping = (authorization?: string): Promise<Response> =>
    httpsFetch(proxy.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(authorization !== undefined ? { authorization } : {}),
      },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
  const none = await ping();
  t.equal(none.status, 401, 'no token: 401');
  t.match(none.headers.get('www-authenticate'), /^Bearer/);
  for (const [what, token] of [
    ['forged signature', jwt(forger.privateKey, claims)],
    ['expired', jwt(issuer.privateKey, { ...claims, exp: now - 3600 })],
    ['other issuer', jwt(issuer.privateKey, { ...claims, iss: 'https://evil.test' })],
  ] as const) {
    const res = await ping(`Bearer ${token}`);
    t.equal(res.status, 401, `${what}: 401`);
    t.match(res.headers.get('www-authenticate'), /invalid_token/, `${what}: invalid_token`);
  }
  await t.rejects(fetch(proxy.url), 'an untrusting client refuses the self-signed certificate');

  const client = new Client({ name: 'e2e-jwt', version: '0' });
  const transport = new StreamableHTTPClientTransport(new URL(proxy.url), {
    fetch: httpsFetch,
    requestInit: { headers: { authorization: `Bearer ${good}` } },
  });
  await client.connect(transport);
  const session = transport.sessionId!;
  const echo = await client.callTool({ name: 'echo', arguments: { message: 'over TLS as alice' } });
  t.same(echo.content, [{ type: 'text', text: 'Echo: over TLS as alice' }]);
  await transport.terminateSession();
  await client.close();

  const found = await searchUntil(log, reg.policyFile, { session }, (f) =>
    f.some((x) => x.record['gen_ai.tool.name'] === 'echo' && x.record['direction'] === 'server_to_client'),
  );
  const records = found.map((x) => x.record);
  const requestFound = found.find(
    (x) => x.record['gen_ai.tool.name'] === 'echo' && x.record['direction'] === 'client_to_server',
  )!;
  const jwtClaims = {
    sub: 'alice',
    clientId: 'agent-7',
    iss: 'https://issuer.test',
    tokenSha256: sha256Hex(good),
  };
  t.match(requestFound.record, {
    principal: { type: 'jwt', claims: jwtClaims },
    http: { authorizationSha256: sha256Hex(`Bearer ${good}`) },
    message: { params: { arguments: { message: 'over TLS as alice' } } },
  });
  const pub = requestFound.entry.record as Rec;
  t.equal(member(pub['principal'], 'type'), 'jwt', 'the principal type stays public');
  t.same(
    await openFromLog(member(pub['principal'], 'claims')),
    jwtClaims,
    'the validated claims are sealed and open to what the JWT said',
  );
  t.notOk(JSON.stringify(pub).includes('alice'), 'the subject is not public');
  const clientMessages = records.filter(
    (r) => r['kind'] === 'mcp.message' && r['direction'] === 'client_to_server',
  );
  t.ok(clientMessages.length >= 3, 'initialize, initialized and the call were recorded');
  t.ok(
    clientMessages.every((r) => member(member(r['principal'], 'claims'), 'sub') === 'alice'),
    'every client message of the session carries the validated subject',
  );
  t.notOk(JSON.stringify(records).includes(good), 'the token is never recorded');
});
