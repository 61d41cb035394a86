// End to end: a log restored from an older copy of its data directory presents a rolled-back
// checkpoint; `vigil audit --state` catches it (exit 1), a stateless audit cannot.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { useNodeCrypto } from '@vigil/client/node';
import { auditHelpers, exits } from '../helpers/audit.js';
import { startLog } from '../helpers/log.js';

useNodeCrypto();

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'vigil-e2e-audit-'));
t.teardown(() => fs.rm(tmp, { recursive: true, force: true }));

const { emitSome, audit } = auditHelpers(tmp);

t.test(
  'a log restored from an older copy presents a rolled-back checkpoint: caught by --state',
  async (t) => {
    const log = await startLog();
    t.teardown(() => log.stop());
    await emitSome(log, 'e2e.example/r', 10);
    const old = path.join(tmp, 'old-data');
    t.equal(await log.kill('SIGTERM'), 0, 'clean shutdown');
    await fs.cp(log.dataDir, old, { recursive: true });
    await log.restart();
    await emitSome(log, 'e2e.example/r2', 10);
    const state = path.join(tmp, 'state-rollback');
    const first = await audit(log, '--state', state);
    exits(t, first, 0, 'exit 0');
    await log.kill('SIGTERM');
    await fs.rm(log.dataDir, { recursive: true, force: true });
    await fs.cp(old, log.dataDir, { recursive: true });
    await fs.rm(path.join(log.dataDir, 'LOCK'), { force: true });
    await log.restart();
    const second = await audit(log, '--state', state);
    exits(t, second, 1, 'exit 1');
    t.match(
      second.stdout,
      /CHECKPOINT_ROLLBACK\s+checkpoint rollback for vigil\.test\/log: presented size 14, already verified size 27/,
    );
    const stateless = await audit(log);
    t.equal(stateless.code, 0, 'without the state the old view looks fine: the state is what catches it');
  },
);
