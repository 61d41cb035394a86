/**
 * File-backed CheckpointStorage (node-only): one file per origin, named by the hex SHA-256 of the
 * origin, replaced atomically (write tmp, fsync, rename, fsync dir) so a crash leaves the old or the
 * new note, never a mix.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { replaceFile } from '../replace-file.js';
import * as path from 'node:path';
import type { CheckpointStorage } from './checkpoint-store.js';

/** Stores notes under `dir` (created with mode 0700). */
export function fileCheckpointStorage(dir: string): CheckpointStorage {
  const file = (origin: string): string =>
    path.join(dir, createHash('sha256').update(origin).digest('hex') + '.checkpoint');
  return {
    async load(origin) {
      try {
        return await fs.readFile(file(origin), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async save(origin, note) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await replaceFile(file(origin), note);
    },
  };
}
