import t from 'tap';
import { ZodError } from 'zod';
import { parseInterval } from '../src/admin.js';
import { loadConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig({});
  t.equal(c.dataDir, './data');
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, 8081);
  t.equal(c.keyFile, 'data/witness.key');
  t.equal(c.databaseUrl, undefined);
  t.equal(c.bodyLimit, 65_536);
  t.equal(c.logLevel, 'info');
});

t.test('env and flags; the flag wins; the key file follows the data dir', async (t) => {
  const c = loadConfig(
    { PORT: '9000', VIGIL_DATA_DIR: '/srv/w', DATABASE_URL: 'postgres://x/y', WITNESS_NAME: 'a.example/w' },
    { port: '9001' },
  );
  t.equal(c.port, 9001);
  t.equal(c.dataDir, '/srv/w');
  t.equal(c.keyFile, '/srv/w/witness.key');
  t.equal(c.databaseUrl, 'postgres://x/y');
  t.equal(c.name, 'a.example/w');
  t.equal(loadConfig({ VIGIL_WITNESS_KEY_FILE: '/k' }).keyFile, '/k');
  t.equal(loadConfig({ DATABASE_URL: '' }).databaseUrl, undefined, 'empty means unset');
});

t.test('invalid settings throw with every issue', async (t) => {
  t.throws(() => loadConfig({ PORT: '70000' }), ZodError);
  t.throws(() => loadConfig({ PORT: 'eighty' }), ZodError);
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), ZodError);
  t.throws(() => loadConfig({ TLS_CERT_FILE: '/c.pem' }), ZodError, 'cert without key');
  try {
    loadConfig({ PORT: '-1', WITNESS_BODY_LIMIT: '10' });
    t.fail('should throw');
  } catch (err) {
    t.equal((err as ZodError).issues.length, 2);
  }
});

t.test('pull intervals', async (t) => {
  t.equal(parseInterval('5s'), 5000);
  t.equal(parseInterval('500ms'), 500);
  t.equal(parseInterval('2m'), 120_000);
  t.equal(parseInterval('3'), 3000);
  for (const bad of ['', '5 s', '05s', '1.5s', '-1s', '50ms', '5h']) {
    t.throws(() => parseInterval(bad), { code: 'REQUEST_MALFORMED' }, bad);
  }
});
