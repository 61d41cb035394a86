/**
 * An upstream MCP server built the way the SDK documents it: `createMcpExpressApp()` (express.json,
 * which inflates gzip/deflate and decodes any charset iconv-lite knows) in front of a stateless
 * `StreamableHTTPServerTransport` (JSON answers, batches accepted). Its one tool, `touch`, has a side
 * effect the test can see: every call appends its `note` to `runs`. `seen` lists every HTTP request
 * the upstream's own parser framed (method and path), so a test sees what actually arrived upstream.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

/** A running upstream. */
export interface ExpressUpstream {
  url: string;
  /** The `note` of every `touch` call that ran, in order. */
  runs: string[];
  /** `METHOD /path` of every request the upstream parsed, in order. */
  seen: string[];
  close(): Promise<void>;
}

/** Starts the upstream on an ephemeral port of 127.0.0.1 (keep-alive on, as Node's default). */
export async function startExpressUpstream(): Promise<ExpressUpstream> {
  const runs: string[] = [];
  const seen: string[] = [];
  const app = createMcpExpressApp();
  app.post('/mcp', async (req: http.IncomingMessage & { body?: unknown }, res: http.ServerResponse) => {
    const server = new Server({ name: 'touch-upstream', version: '0.0.1' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [{ name: 'touch', inputSchema: { type: 'object', properties: { note: { type: 'string' } } } }],
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      const note = String((request.params.arguments ?? {})['note']);
      runs.push(note);
      return { content: [{ type: 'text', text: `touched ${note}` }] };
    });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  app.get('/mcp', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(405, { allow: 'POST' }).end();
  });
  const server = http.createServer(app);
  server.prependListener('request', (req: http.IncomingMessage) => seen.push(`${req.method} ${req.url}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    runs,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
