// Durable, atomic replacement of a small state file (checkpoints, audit state, the export --follow
// state): readers see the old content or the new, never a torn one, and once this resolves the new
// content survives a power cut. Node-only (node:fs); not part of the pure core.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** Writes `text` to `<file>.tmp` (mode 0600), fsyncs it, renames it over `file`, fsyncs the directory. */
export async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const h = await fs.open(tmp, 'w', 0o600);
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(tmp, file);
  // The rename itself is durable only once the directory is.
  const d = await fs.open(path.dirname(path.resolve(file)), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
