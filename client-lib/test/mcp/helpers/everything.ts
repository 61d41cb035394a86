/**
 * Test helpers around the real reference servers (dev dependencies, never run-time downloads):
 * starts `server-everything streamableHttp` and waits until it answers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Path of server-everything's entry point (stdio by default, `streamableHttp` as first argument). */
export const everythingEntry = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist',
  'index.js',
);

/** Path of server-filesystem's entry point. */
export const filesystemEntry = path.join(
  path.dirname(require.resolve('@modelcontextprotocol/server-filesystem/package.json')),
  'dist',
  'index.js',
);

/**
 * A free TCP port. server-everything reads PORT and prints the configured number, not the bound one,
 * so port 0 cannot be used for it; this is the one server our tests cannot give port 0.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts server-everything over Streamable HTTP; resolves with its /mcp URL once it listens. */
export async function startEverythingHttp(): Promise<{
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}> {
  const port = await freePort();
  const child = spawn(process.execPath, [everythingEntry, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 20_000;
  while (!output.includes('listening on port')) {
    if (child.exitCode !== null) throw new Error(`server-everything exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`server-everything did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
