// `--receipts` as a setting like the others: flag, VIGIL_RECEIPTS, config file; default off; refused
// with spool mode (the log answers a spooled request only after the server did).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { resolveSettings, SettingsError } from '../../src/mcp/settings.js';

const dir = await mkdtemp(path.join(os.tmpdir(), 'vigil-settings-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const env = { HOME: dir, VIGIL_LOG_URL: 'http://127.0.0.1:1', VIGIL_KEY_FILE: '/k' };

t.test('default off; on by flag, environment or config file', async (t) => {
  t.equal((await resolveSettings({}, env)).receipts, false);
  t.equal((await resolveSettings({ receipts: true }, env)).receipts, true);
  t.equal((await resolveSettings({}, { ...env, VIGIL_RECEIPTS: 'true' })).receipts, true);
  t.equal((await resolveSettings({}, { ...env, VIGIL_RECEIPTS: '0' })).receipts, false);
  const config = path.join(dir, 'config.json');
  await writeFile(config, JSON.stringify({ receipts: true }));
  t.equal((await resolveSettings({ config }, env)).receipts, true);
  t.equal((await resolveSettings({ config }, { ...env, VIGIL_RECEIPTS: 'false' })).receipts, false);
});

t.test('refused: a bad value, or spool mode', async (t) => {
  await t.rejects(resolveSettings({}, { ...env, VIGIL_RECEIPTS: 'yes' }), SettingsError);
  await t.rejects(resolveSettings({ receipts: true, mode: 'spool' }, env), /receipts need sync mode/);
});
