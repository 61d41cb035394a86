// Child process for the emitter crash test: emits records as fast as it can and prints
// "acked <stream> <seq>" after each emit() resolved (spool mode: fsynced). The parent kills it -9.
import { createEmitter } from '../../src/node-client.js';
import { useNodeCrypto } from '../../src/node.js';

useNodeCrypto();
const [logUrl, spoolDir, policy] = process.argv.slice(2) as [string, string, string];
const key = process.env.VIGIL_TEST_KEY!;
const em = await createEmitter({ logUrl, key, spoolDir, policy, backoff: { baseMs: 5, maxMs: 50 } });
process.stdout.write(`stream ${em.stream}\n`);
for (let i = 0; ; i++) {
  await em.emit({ kind: 'app.event', i });
  process.stdout.write(`acked ${em.stream} ${i + 1}\n`);
}
