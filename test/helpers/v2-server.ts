// A 2026-07-28-era MCP server built on the v2 SDK (`@modelcontextprotocol/server` 2.4.0), for the
// modern-era capture tests (MCP.md 3.5). Tools: `add` (a, b), `slow` (two progress notifications
// before its result) and `deploy` (multi-round-trip: the first round answers `input_required` with an
// elicitation and a request state; the retry carrying the answer completes).
// Usage: node v2-server.js stdio | node v2-server.js http  (http prints "listening on <url>").
import http from 'node:http';
import { Readable } from 'node:stream';
import { acceptedContent, createMcpHandler, inputRequired, McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import * as z from 'zod';

function factory(): McpServer {
  const server = new McpServer({ name: 'vigil-v2-fixture', version: '0.0.1' });
  server.registerTool(
    'add',
    { description: 'a + b', inputSchema: z.object({ a: z.number(), b: z.number() }) },
    async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }] }),
  );
  server.registerTool(
    'slow',
    { description: 'two progress steps', inputSchema: z.object({}) },
    async (_, ctx) => {
      const token = ctx.mcpReq._meta?.progressToken;
      if (token !== undefined) {
        for (const progress of [1, 2]) {
          await ctx.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken: token, progress, total: 2 },
          });
        }
      }
      return { content: [{ type: 'text', text: 'slow done' }] };
    },
  );
  server.registerTool(
    'deploy',
    { description: 'asks for confirmation first', inputSchema: z.object({ env: z.string() }) },
    async ({ env }, ctx) => {
      const confirmation = z.object({ confirm: z.boolean() });
      const confirmed = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', confirmation);
      if (confirmed?.confirm !== true) {
        return inputRequired({
          inputRequests: {
            confirm: inputRequired.elicit({ message: `Deploy to ${env}?`, requestedSchema: confirmation }),
          },
          requestState: `state-${env}`,
        });
      }
      return { content: [{ type: 'text', text: `deployed to ${env}` }] };
    },
  );
  return server;
}

const mode = process.argv[2] ?? 'stdio';
if (mode === 'stdio') {
  serveStdio(factory);
} else if (mode === 'http') {
  const handler = createMcpHandler(factory);
  // Node http -> the handler's fetch face, streaming the response body as it is produced.
  const server = http.createServer((req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const abort = new AbortController();
    res.once('close', () => abort.abort());
    const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      signal: abort.signal,
      ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
    } as RequestInit);
    void handler.fetch(request).then(
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
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.stdout.write(`listening on http://127.0.0.1:${port}/mcp\n`);
  });
  const stop = (): void => {
    void handler.close().finally(() => server.close(() => process.exit(0)));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} else {
  process.stderr.write('usage: v2-server.js stdio|http\n');
  process.exit(2);
}
