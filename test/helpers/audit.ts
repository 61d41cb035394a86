// Shared by the `vigil audit` end-to-end files: emit records into a real log, run the CLI, check exit codes.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { generateKey } from '@vigil/client';
import { createEmitter } from '@vigil/client/node';
import { runNode, vigilMain, type LogProcess } from './log.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Asserts an exit code; the output is shown only when it differs. */
export function exits(
  t: { equal(a: unknown, b: unknown, m: string, extra: object): void },
  r: CliResult,
  code: number,
  what: string,
): void {
  t.equal(r.code, code, what, r.code === code ? {} : { output: r.stdout + r.stderr });
}

/** Emitting and auditing helpers that keep their spools and policy files under `tmp`. */
export function auditHelpers(tmp: string) {
  /** Registers a new emitter `name` and emits `n` records; `close` false leaves the stream unclosed. */
  async function emitSome(log: LogProcess, name: string, n: number, close = true): Promise<void> {
    const k = generateKey(name);
    await log.addEmitter(name, k.verifierKey);
    const spoolDir = await fs.mkdtemp(path.join(tmp, 'spool-'));
    const em = await createEmitter({ logUrl: log.url, key: k.signerKey, spoolDir, policy: log.policy });
    for (let i = 0; i < n; i++) await em.emit({ kind: 'app.event', n: i });
    if (close) await em.close();
    else {
      await em.flush();
      await em.shutdown();
    }
  }

  /** Runs `vigil audit --log <log> --policy <its policy> ...extra`. */
  async function audit(log: LogProcess, ...extra: string[]): Promise<CliResult> {
    const policyFile = path.join(tmp, `policy-${log.port}`);
    await fs.writeFile(policyFile, log.policy);
    return runNode(vigilMain, ['audit', '--log', log.url, '--policy', policyFile, ...extra], {
      NO_COLOR: '1',
    });
  }

  return { emitSome, audit };
}
