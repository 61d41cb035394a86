// One test per row of the code -> status table (plugins/errors.ts). The add-checkpoint matrix in
// test/routes/add-checkpoint.test.ts checks that each rule of tlog-witness raises the right code.
import t from 'tap';
import Fastify from 'fastify';
import { WitnessError, type WitnessErrorCode } from '../../src/errors.js';
import { errorsPlugin, STATUS_BY_CODE } from '../../src/plugins/errors.js';

async function appThrowing(err: Error) {
  const app = Fastify({ logger: false });
  await app.register(errorsPlugin);
  app.get('/x', async () => {
    throw err;
  });
  app.post('/echo', { bodyLimit: 10 }, async (request) => request.body);
  return app;
}

const rows: [WitnessErrorCode, number][] = [
  ['ORIGIN_UNKNOWN', 404],
  ['SIGNATURE_INVALID', 403],
  ['REQUEST_MALFORMED', 400],
  ['PROOF_INVALID', 422],
  ['RATE_LIMITED', 429],
  ['NOT_FOUND', 404],
  ['LOG_EXISTS', 409],
];

t.test('every code has a row', async (t) => {
  t.same(Object.keys(STATUS_BY_CODE).sort(), [...rows.map(([c]) => c), 'SIZE_CONFLICT'].sort());
});

for (const [code, status] of rows) {
  t.test(`${code} -> ${status} with {code, message}`, async (t) => {
    const app = await appThrowing(new WitnessError(code, 'some message 42'));
    const res = await app.inject({ method: 'GET', url: '/x' });
    t.equal(res.statusCode, status);
    t.same(res.json(), { code, message: 'some message 42' });
  });
}

t.test('SIZE_CONFLICT -> 409 with Content-Type text/x.tlog.size and body "<size>\\n"', async (t) => {
  const app = await appThrowing(new WitnessError('SIZE_CONFLICT', 'moved', { size: 12345678901234567890n }));
  const res = await app.inject({ method: 'GET', url: '/x' });
  t.equal(res.statusCode, 409);
  t.equal(res.headers['content-type'], 'text/x.tlog.size');
  t.equal(res.body, '12345678901234567890\n');
});

t.test('RATE_LIMITED carries Retry-After', async (t) => {
  const app = await appThrowing(new WitnessError('RATE_LIMITED', 'slow down'));
  const res = await app.inject({ method: 'GET', url: '/x' });
  t.equal(res.headers['retry-after'], '1');
});

t.test('any other error is a 500 that says only "internal error"', async (t) => {
  const app = await appThrowing(new Error('secret detail: password=hunter2'));
  const res = await app.inject({ method: 'GET', url: '/x' });
  t.equal(res.statusCode, 500);
  t.same(res.json(), { code: 'INTERNAL', message: 'internal error' });
  t.notMatch(res.body, /hunter2/);
});

t.test('Fastify 4xx keep their status: body too large is 413', async (t) => {
  const app = await appThrowing(new Error('unused'));
  const res = await app.inject({
    method: 'POST',
    url: '/echo',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ a: 'x'.repeat(100) }),
  });
  t.equal(res.statusCode, 413);
  t.equal(res.json().code, 'BODY_TOO_LARGE');
});

t.test('unknown routes are 404 NOT_FOUND', async (t) => {
  const app = await appThrowing(new Error('unused'));
  const res = await app.inject({ method: 'GET', url: '/nope' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().code, 'NOT_FOUND');
});
