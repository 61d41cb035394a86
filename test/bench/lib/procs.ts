// Every process and temp directory a benchmark starts is registered here, so an interrupted run
// (SIGINT, an exception) still kills its children and removes its directories.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export function trackDir(dir: string): string {
  dirs.add(dir);
  return dir;
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** Kills every tracked child still running and removes tracked directories (synchronous, for exit paths). */
export function cleanupAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs.clear();
}
