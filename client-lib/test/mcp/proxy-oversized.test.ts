// An answer past the proxy's body bound is forwarded unchanged and not held: its record must still
// say which bytes it was, by size and a salted digest hashed as they streamed (`$oversize`), never an
// unsalted digest and never the size alone.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { openedOfKind } from './helpers/opened.js';
import { createCapture } from '../../src/mcp/capture.js';
import { MemorySink } from '../../src/mcp/memory-sink.js';
import { startProxy } from '../../src/mcp/proxy.js';
import { sealBytes } from '../../src/sealed.js';

const KiB = 1024;

t.test(
  'a JSON answer past the bound: forwarded unchanged, recorded with size and salted digest',
  async (t) => {
    // The answer streams in uneven pieces, so the digest is built across chunk boundaries.
    const answer = Buffer.from(
      JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text: 'ü'.repeat(40 * KiB) + 'end' } }),
    );
    const upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        let at = 0;
        const next = (): void => {
          if (at >= answer.length) return void res.end();
          const step = 7 * KiB + 1;
          res.write(answer.subarray(at, at + step), next);
          at += step;
        };
        next();
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    t.teardown(() => upstream.close());
    const sink = new MemorySink();
    const salt = new Uint8Array(16).fill(5);
    const capture = createCapture({ sink, transport: 'streamable-http', mode: 'spool', salt: () => salt });
    const proxy = await startProxy({
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`,
      port: 0,
      capture,
      maxBodyBytes: 16 * KiB,
    });
    t.teardown(() => proxy.close());
    const res = await fetch(proxy.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'big' } }),
    });
    const got = Buffer.from(await res.arrayBuffer());
    t.ok(got.equals(answer), 'the client got the exact bytes');
    await new Promise((r) => setTimeout(r, 50));
    const records = openedOfKind(sink, 'mcp.message.oversized');
    t.match(records, [
      {
        direction: 'server_to_client',
        size: answer.length,
        limit: 16 * KiB,
        wire: {
          $oversize: {
            size: answer.length,
            salt: Buffer.from(salt).toString('base64'),
            sha256: sealBytes(answer, salt).ref.$sealed.sha256,
          },
        },
      },
    ]);
    t.notOk(JSON.stringify(sink.records).includes('rawSha256'), 'no unsalted digest of the answer');
    t.equal(
      openedOfKind(sink, 'mcp.message').filter((f) => f['direction'] === 'server_to_client').length,
      0,
      'the answer is not also recorded as a message',
    );
  },
);
