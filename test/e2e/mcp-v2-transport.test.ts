// `auditTransport` on the v2 SDK line (`@modelcontextprotocol/client` / `server` 2.4.0), in process:
// the server side of Streamable HTTP (WebStandardStreamableHTTPServerTransport behind node:http, the
// bearer token's validated claims handed over as `authInfo`) with the v2 client's Streamable HTTP
// transport audited too, and the server side of stdio (StdioServerTransport over pipes, driven by
// JSON lines). Checked: both ends record the call and its answer, correlated; the server side's
// principal carries the fields the proxy's JWT principal has (sub, iss, aud, clientId, resource, act)
// plus the SDK's scopes and expiry, the token only as its SHA-256; a token without claims is `token`.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  McpServer,
  WebStandardStreamableHTTPServerTransport,
  type AuthInfo,
} from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import {
  auditTransport,
  createCapture,
  MemorySink,
  openSealed,
  replaceSealed,
  type SunkRecord,
} from '@vigil/client';
import t from 'tap';
import * as z from 'zod';

type Rec = Record<string, unknown>;

function opened(record: SunkRecord): Rec {
  const blobs = record.options.blobs ?? {};
  return replaceSealed(record.fields, (ref) => {
    const bytes = blobs[ref.$sealed.sha256];
    if (bytes === undefined) throw new Error(`no S beside the record for ${ref.$sealed.sha256}`);
    return { value: openSealed(ref, bytes) };
  }) as Rec;
}

function addServer(): McpServer {
  const server = new McpServer({ name: 'v2-audited', version: '0.0.1' });
  server.registerTool(
    'add',
    { description: 'a + b', inputSchema: z.object({ a: z.number(), b: z.number() }) },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }),
  );
  return server;
}

const calls = (sink: MemorySink, direction: string): Rec[] =>
  sink.records
    .filter((r) => r.fields['kind'] === 'mcp.message' && r.fields['direction'] === direction)
    .map(opened)
    .filter((r) => r['gen_ai.tool.name'] === 'add');

/** Serves `transport` on node:http, handing every request `authInfo(req)`. */
async function serve(
  transport: WebStandardStreamableHTTPServerTransport,
  authInfo: (req: http.IncomingMessage) => AuthInfo,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      signal: abort.signal,
      ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
    } as RequestInit);
    void transport.handleRequest(request, { authInfo: authInfo(req) }).then(
      async (response) => {
        const out: Record<string, string> = {};
        response.headers.forEach((v, k) => (out[k] = v));
        res.writeHead(response.status, out);
        if (response.body === null) return void res.end();
        try {
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
        } catch {
          // The client went away mid-stream.
        }
        res.end();
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const token = 'v2-bearer-secret-5a6b7c8d';
const tokenSha256 = createHash('sha256').update(token).digest('hex');

t.test('Streamable HTTP: v2 server side records authInfo as the principal; v2 client side too', async (t) => {
  const serverSink = new MemorySink();
  const clientSink = new MemorySink();
  const serverCapture = createCapture({ sink: serverSink, transport: 'sdk', mode: 'sync' });
  const clientCapture = createCapture({ sink: clientSink, transport: 'sdk', mode: 'sync' });
  const inner = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => crypto.randomUUID(),
  });
  const server = addServer();
  await server.connect(auditTransport(inner, { capture: serverCapture, side: 'server' }));
  const expiresAt = Math.floor(Date.now() / 1000) + 600;
  const served = await serve(inner, (req) => ({
    token: (req.headers.authorization ?? '').replace(/^Bearer /, ''),
    clientId: 'agent-v2',
    scopes: ['tools:call'],
    expiresAt,
    resource: new URL('https://mcp.example/mcp'),
    extra: {
      iss: 'https://as.example',
      sub: 'alice',
      aud: 'https://mcp.example/mcp',
      act: { sub: 'agent-v2', act: { sub: 'orchestrator' } },
      cnf: { jkt: 'thumb-1' },
    },
  }));
  t.teardown(() => served.close());
  const client = new Client({ name: 'v2-http-client', version: '0' });
  const clientTransport = new StreamableHTTPClientTransport(new URL(served.url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(auditTransport(clientTransport, { capture: clientCapture, side: 'client' }));
  const r = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } });
  t.same(r.content, [{ type: 'text', text: '42' }]);
  await client.close();
  await server.close();
  await serverCapture.close('test_end');
  await clientCapture.close('test_end');

  const [request] = calls(serverSink, 'client_to_server');
  t.ok(request, 'the server side recorded the call');
  // Sealed as one value beside its type (mcp/seal.ts); opened, the claims are the principal's fields.
  const principal = request!['principal'] as { type: string; claims: Rec };
  t.same(
    { type: principal.type, ...principal.claims },
    {
      type: 'jwt',
      sub: 'alice',
      iss: 'https://as.example',
      aud: 'https://mcp.example/mcp',
      clientId: 'agent-v2',
      resource: 'https://mcp.example/mcp',
      act: [{ sub: 'agent-v2' }, { sub: 'orchestrator' }],
      cnfJkt: 'thumb-1',
      scopes: ['tools:call'],
      expiresAt,
      tokenSha256,
    },
  );
  t.ok(request!['mcp.session.id'], 'under the transport session');
  t.match(calls(serverSink, 'server_to_client'), [{ matched: true, correlation: request!['correlation'] }]);
  t.notOk(JSON.stringify(serverSink.records).includes(token), 'the token is in no record');

  const [sent] = calls(clientSink, 'client_to_server');
  t.ok(sent, 'the client side recorded the call');
  t.same(sent!['correlation'], request!['correlation'], 'both ends name the same request');
  t.match(calls(clientSink, 'server_to_client'), [{ matched: true, correlation: sent!['correlation'] }]);
  t.same(clientSink.ofKind('mcp.unanswered'), [], 'every client request was answered');
});

t.test('stdio: v2 server side over pipes; a token without claims is a `token` principal', async (t) => {
  const sink = new MemorySink();
  const capture = createCapture({ sink, transport: 'sdk', mode: 'spool' });
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  const inner = new StdioServerTransport(toServer, fromServer);
  const server = addServer();
  await server.connect(auditTransport(inner, { capture, side: 'server', session: 'v2-stdio' }));
  const lines: Rec[] = [];
  let buffered = '';
  fromServer.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, i)) as Rec);
      buffered = buffered.slice(i + 1);
    }
  });
  const answer = async (id: number): Promise<Rec> => {
    for (;;) {
      const found = lines.find((l) => l['id'] === id);
      if (found !== undefined) return found;
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const send = (m: Rec): void => void toServer.write(JSON.stringify(m) + '\n');
  send({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'lines', version: '0' } },
  });
  await answer(1);
  send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'add', arguments: { a: 1, b: 2 } } });
  t.match(await answer(2), { result: { content: [{ type: 'text', text: '3' }] } });
  await server.close();
  await capture.close('test_end');
  const [request] = calls(sink, 'client_to_server');
  t.match(request, { session: 'v2-stdio', correlation: { requester: 'client', id: 2 } });
  t.equal(request!['principal'], undefined, 'no authInfo on stdio, no principal');
  t.match(calls(sink, 'server_to_client'), [{ matched: true, correlation: { requester: 'client', id: 2 } }]);
});
