// The ceiling for the tile benchmark: a bare Fastify server returning the same bytes at the same
// paths as the log, from memory, with no storage or plugins. Run as a separate process:
// node bare-route.js <json file {paths: {"/tile/0/0": base64}}>; prints "listening <port>".
import * as fs from 'node:fs';
import Fastify from 'fastify';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: bare-route.js <paths.json>');
const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as { paths: Record<string, string> };
const bodies = new Map(Object.entries(spec.paths).map(([p, b64]) => [p, Buffer.from(b64, 'base64')]));
const app = Fastify({ logger: false });
app.get('/*', (request, reply) => {
  const body = bodies.get(request.url);
  if (body === undefined) return reply.code(404).send();
  return reply.header('content-type', 'application/octet-stream').send(body);
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening ${new URL(address).port}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
