// Who launched a stdio server: an MCP client (SDK v1 and v2) spawns the wrapper, which records on
// every record the OS user, its own pid and its parent, the client, with the client's command line
// as /proc shows it. The expected values come from the client's side (its own pid and argv).
import { readFile, mkdtemp, rm, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import t from 'tap';
import type { JsonObject } from '../../src/mcp/types.js';
import { isSealedRef } from '../../src/sealed.js';
import { parentProcess } from '../../src/mcp/wrap.js';
import { everythingEntry } from './helpers/everything.js';

const child = fileURLToPath(new URL('./fixtures/wrap-child.js', import.meta.url));
const dir = await mkdtemp(path.join(os.tmpdir(), 'vigil-wrap-principal-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/**
 * Waits (bounded) until the wrapper wrote its records after the server exited; returns them opened,
 * after checking that each public record holds the principal's type only, its claims sealed.
 */
async function recordsOf(file: string): Promise<JsonObject[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await access(file);
      const records = JSON.parse(await readFile(file, 'utf8')) as {
        public: JsonObject;
        opened: JsonObject;
      }[];
      for (const r of records) {
        const principal = r.public['principal'] as JsonObject | undefined;
        if (principal !== undefined && !isSealedRef(principal['claims']))
          throw new Error(`a public record holds principal claims in clear: ${JSON.stringify(principal)}`);
      }
      return records.map((r) => r.opened);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

type Asserts = Pick<typeof t, 'ok' | 'match' | 'same' | 'equal'>;

function checkPrincipal(t: Asserts, records: JsonObject[], wrapperPid: number | null) {
  const messages = records.filter((f) => f['kind'] === 'mcp.message');
  t.ok(messages.length >= 4, `${messages.length} messages`);
  const me = os.userInfo();
  for (const f of messages) {
    t.match(f['principal'], {
      type: 'process',
      user: me.username,
      uid: me.uid,
      pid: wrapperPid ?? Number,
      parent: { pid: process.pid, uid: me.uid },
    });
  }
  const parent = (messages[0]?.['principal'] as JsonObject)['parent'] as JsonObject;
  const command = parent['command'] as string[];
  // The client is this test process: its argv as the client knows it.
  t.equal(command[0], process.execPath, 'the client program');
  t.same(command.slice(-process.argv.length + 1), process.argv.slice(1), "the client's arguments");
}

t.test('SDK v1 client spawns the wrapper', async (t) => {
  const out = path.join(dir, 'v1.json');
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [child, out, process.execPath, everythingEntry, 'stdio'],
    stderr: 'ignore',
  });
  const client = new Client({ name: 'principal-v1', version: '0.0.1' });
  await client.connect(transport);
  const wrapperPid = transport.pid;
  t.ok((await client.listTools()).tools.length > 0);
  await client.close();
  checkPrincipal(t, await recordsOf(out), wrapperPid);
});

t.test('SDK v2 client spawns the wrapper', async (t) => {
  const out = path.join(dir, 'v2.json');
  const transport = new StdioV2({
    command: process.execPath,
    args: [child, out, process.execPath, everythingEntry, 'stdio'],
    stderr: 'ignore',
  });
  const client = new ClientV2({ name: 'principal-v2', version: '0.0.1' });
  await client.connect(transport);
  t.ok((await client.listTools()).tools.length > 0);
  await client.close();
  checkPrincipal(t, await recordsOf(out), null);
});

t.test('a parent /proc cannot tell about: the pid alone', async (t) => {
  t.same(parentProcess(2 ** 22 + 12345), { pid: 2 ** 22 + 12345 });
});
