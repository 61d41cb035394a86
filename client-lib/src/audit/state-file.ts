/**
 * File-backed audit state (node-only): `<dir>/audit-state.json` (replaced atomically) and the
 * verified checkpoints in `<dir>/checkpoints/`. One directory per audited log.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileCheckpointStorage } from '../checkpoint-store/file-storage.js';
import { replaceFile } from '../replace-file.js';
import type { AuditState, AuditStateStorage } from './auditor.js';

export function fileAuditStorage(dir: string): AuditStateStorage {
  const checkpoints = fileCheckpointStorage(path.join(dir, 'checkpoints'));
  const file = path.join(dir, 'audit-state.json');
  return {
    load: (origin) => checkpoints.load(origin),
    save: (origin, note) => checkpoints.save(origin, note),
    async loadState() {
      let text: string;
      try {
        text = await fs.readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      const s = JSON.parse(text) as AuditState;
      if ((s.version as number) === 1) {
        throw new Error(
          `audit state ${file} is version 1, from before emitter keys were learnt from the tree; move it aside to audit from the start`,
        );
      }
      if (s.version !== 2 || typeof s.size !== 'string' || !Array.isArray(s.range) || !s.keys) {
        throw new Error(`audit state ${file} is not a version 2 state file; move it aside to start over`);
      }
      return s;
    },
    async saveState(state) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await replaceFile(file, JSON.stringify(state));
    },
  };
}

/** In-memory audit storage, for a run without --state (nothing is remembered). */
export function memoryAuditStorage(): AuditStateStorage {
  let state: AuditState | undefined;
  const notes = new Map<string, string>();
  return {
    load: (o) => Promise.resolve(notes.get(o)),
    save: (o, n) => {
      notes.set(o, n);
      return Promise.resolve();
    },
    loadState: () => Promise.resolve(state),
    saveState: (s) => {
      state = s;
      return Promise.resolve();
    },
  };
}
