/**
 * Durable, append-only local spool for an emitter (node-only).
 *
 * Layout of `dir`:
 *   LOCK                  pid of the emitter process that owns the spool (O_EXCL; stale ones taken over)
 *   segments/NNNNNNNNNNNNNNNN.spool   one segment per emitter run (and more when one grows past the limit)
 *   cursor                JSON {"segment":n,"offset":k}: every byte before it has a verified receipt
 *   quarantine/           torn tails cut off at recovery, kept for the operator
 *   refused/              records the log refused for good (Spool.refuse), kept for the operator
 *
 * A segment line is `<16 hex: SHA-256 prefix of the JSON> <JSON>\n`. `append` resolves only after
 * write + fdatasync, and concurrent appends share one fsync (group commit).
 *
 * Crash reasoning: a line is acknowledged to the emitter's caller only after its fsync returned.
 * A process that dies mid-write leaves a tail that is not newline-terminated or fails its checksum;
 * those bytes were never acknowledged. Recovery moves them to quarantine/ and reports them (never a
 * silent drop). A bad line FOLLOWED by good lines is not a torn write: recovery refuses with
 * SpoolCorruptError. The cursor is replaced atomically (write tmp, fsync, rename, fsync dir); if the
 * process dies before the rename, the next start resends those records, which the log answers
 * idempotently with the original receipts.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** One spooled submission: exactly what goes to `POST /v1/entries`. */
export interface SpoolItem {
  emitter: string;
  record: Record<string, unknown> & { stream: string; seq: number };
  sig: string;
  blobs?: Record<string, string>;
}

/** The spool cannot be used: a corrupt line in the middle, a malformed cursor, a live owner. */
export class SpoolCorruptError extends Error {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, message: string) {
    super(message);
    this.name = 'SpoolCorruptError';
    this.file = file;
    this.offset = offset;
  }
}

export class SpoolLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolLockedError';
  }
}

/** What recovery found in a torn tail. */
export interface TornTail {
  file: string;
  offset: number;
  bytes: number;
  quarantinedTo: string;
}

export interface SpoolOptions {
  /** Roll to a new segment once the active one is larger than this; default 8 MiB. */
  segmentBytes?: number;
  /** Called for each torn tail found at recovery. */
  onTornTail?: (tail: TornTail) => void;
}

interface Pending {
  item: SpoolItem;
  segment: number;
  end: number;
}

const SEGMENT_RE = /^([0-9]{16})\.spool$/;

/** Characters of spool lines joined into one write (see flushLoop). */
const WRITE_PIECE = 1024 * 1024;

function checksum(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

function segmentName(n: number): string {
  return n.toString().padStart(16, '0') + '.spool';
}

/**
 * Encodes one spool line. `recordJson`, when given, is the record's canonical JSON (the emitter has it
 * already from signing); it is spliced in instead of serialising the record again. Either way the line
 * parses back to the same item.
 */
export function formatSpoolLine(item: SpoolItem, recordJson?: string): string {
  const json =
    recordJson === undefined
      ? JSON.stringify(item)
      : `{"emitter":${JSON.stringify(item.emitter)},"record":${recordJson},"sig":${JSON.stringify(item.sig)}` +
        (item.blobs !== undefined ? `,"blobs":${JSON.stringify(item.blobs)}}` : '}');
  return `${checksum(json)} ${json}\n`;
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Spools open in this process (a pid in LOCK cannot tell two emitters of one process apart). */
const openInProcess = new Set<string>();

async function acquireLock(dir: string): Promise<string> {
  const file = path.join(dir, 'LOCK');
  if (openInProcess.has(path.resolve(file))) {
    throw new SpoolLockedError(
      `spool ${dir} is in use by another emitter in this process; give each emitter its own spool directory`,
    );
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await fs.open(file, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, 0o600);
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      openInProcess.add(path.resolve(file));
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new SpoolLockedError(
          `spool ${dir} is in use by pid ${pid}; give each emitter its own spool directory`,
        );
      }
      // Stale lock of a dead process (or our own from an earlier emitter in this process): take over.
      await fs.rm(file, { force: true });
    }
  }
  throw new SpoolLockedError(`cannot lock spool ${dir}`);
}

/**
 * The spool. Open with `Spool.open(dir)`; it recovers what earlier runs left and exposes the
 * records without a verified receipt through `pending()` in emission order.
 */
export class Spool {
  readonly dir: string;
  private readonly segmentsDir: string;
  private readonly segmentBytes: number;
  private queue: Pending[] = [];
  private active!: fs.FileHandle;
  private activeSegment = 0;
  private activeSize = 0;
  private cursor = { segment: 0, offset: 0 };
  private writeBuffer: {
    lines: string[];
    items: SpoolItem[];
    waiters: { resolve: () => void; reject: (e: Error) => void }[];
  } = {
    lines: [],
    items: [],
    waiters: [],
  };
  private writing: Promise<void> | undefined;
  private lockFile = '';
  private closed = false;
  /** Torn tails found when this spool was opened. */
  readonly tornTails: TornTail[] = [];

  private constructor(dir: string, options: SpoolOptions) {
    this.dir = dir;
    this.segmentsDir = path.join(dir, 'segments');
    this.segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
  }

  /** Opens (creating if needed) and recovers the spool in `dir`. */
  static async open(dir: string, options: SpoolOptions = {}): Promise<Spool> {
    const spool = new Spool(dir, options);
    await fs.mkdir(spool.segmentsDir, { recursive: true, mode: 0o700 });
    spool.lockFile = await acquireLock(dir);
    try {
      await spool.recover(options.onTornTail);
      const last = Math.max(spool.cursor.segment, ...(await spool.segmentNumbers()));
      await spool.openSegment(last + 1);
    } catch (err) {
      await fs.rm(spool.lockFile, { force: true });
      openInProcess.delete(path.resolve(spool.lockFile));
      throw err;
    }
    return spool;
  }

  private async segmentNumbers(): Promise<number[]> {
    const names = await fs.readdir(this.segmentsDir);
    return names
      .map((n) => SEGMENT_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  private async recover(onTornTail: SpoolOptions['onTornTail']): Promise<void> {
    const cursorFile = path.join(this.dir, 'cursor');
    const cursorText = await fs.readFile(cursorFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (cursorText !== undefined) {
      const c = JSON.parse(cursorText) as { segment?: unknown; offset?: unknown };
      if (!Number.isSafeInteger(c.segment) || !Number.isSafeInteger(c.offset)) {
        throw new SpoolCorruptError(
          cursorFile,
          0,
          `spool cursor ${cursorFile} is malformed; inspect it by hand`,
        );
      }
      this.cursor = { segment: c.segment as number, offset: c.offset as number };
    }
    for (const n of await this.segmentNumbers()) {
      const file = path.join(this.segmentsDir, segmentName(n));
      if (n < this.cursor.segment) {
        await fs.rm(file, { force: true });
        continue;
      }
      const bytes = await fs.readFile(file);
      const start = n === this.cursor.segment ? this.cursor.offset : 0;
      let offset = start;
      while (offset < bytes.length) {
        const nl = bytes.indexOf(0x0a, offset);
        const lineEnd = nl === -1 ? bytes.length : nl + 1;
        const item = nl === -1 ? undefined : parseLine(bytes.subarray(offset, nl).toString('utf8'));
        if (item === undefined) {
          // Bad line: a torn tail only when nothing valid follows it.
          const rest = bytes.subarray(lineEnd);
          if (
            rest
              .toString('utf8')
              .split('\n')
              .some((l) => parseLine(l) !== undefined)
          ) {
            throw new SpoolCorruptError(
              file,
              offset,
              `spool segment ${file} is corrupt at byte ${offset} with valid records after it; ` +
                'this is not a torn write: stop, copy the spool directory aside and inspect it',
            );
          }
          const qdir = path.join(this.dir, 'quarantine');
          await fs.mkdir(qdir, { recursive: true, mode: 0o700 });
          const qfile = path.join(qdir, `${segmentName(n)}.${offset}.torn`);
          await fs.writeFile(qfile, bytes.subarray(offset), { mode: 0o600 });
          await fsyncDir(qdir);
          await fs.truncate(file, offset);
          const tail: TornTail = { file, offset, bytes: bytes.length - offset, quarantinedTo: qfile };
          this.tornTails.push(tail);
          onTornTail?.(tail);
          break;
        }
        this.queue.push({ item, segment: n, end: lineEnd });
        offset = lineEnd;
      }
    }
  }

  private async openSegment(n: number): Promise<void> {
    const file = path.join(this.segmentsDir, segmentName(n));
    this.active = await fs.open(file, 'a', 0o600);
    this.activeSegment = n;
    this.activeSize = 0;
    await fsyncDir(this.segmentsDir);
  }

  /** Records without a verified receipt, oldest first. */
  pending(): readonly SpoolItem[] {
    return this.queue.map((p) => p.item);
  }

  /** Number of records without a verified receipt. */
  get size(): number {
    return this.queue.length;
  }

  /**
   * Appends items durably: resolves after the bytes are fsynced. Order is preserved. `recordJson[i]`,
   * when given, is the canonical JSON of `items[i].record` (saves serialising it again).
   */
  append(items: SpoolItem[], recordJson?: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    return new Promise<void>((resolve, reject) => {
      for (const [i, item] of items.entries()) {
        this.writeBuffer.lines.push(formatSpoolLine(item, recordJson?.[i]));
        this.writeBuffer.items.push(item);
      }
      this.writeBuffer.waiters.push({ resolve, reject });
      if (this.writing === undefined) this.writing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.writeBuffer.waiters.length > 0) {
      const batch = this.writeBuffer;
      this.writeBuffer = { lines: [], items: [], waiters: [] };
      try {
        const segment = this.activeSegment;
        let end = this.activeSize;
        const ends = batch.lines.map((l) => (end += Buffer.byteLength(l)));
        // Written in pieces of about WRITE_PIECE characters: a group commit of records with large
        // blobs is never joined into one string (and one buffer) of its whole size.
        let piece: string[] = [];
        let pieceSize = 0;
        for (const line of batch.lines) {
          piece.push(line);
          pieceSize += line.length;
          if (pieceSize >= WRITE_PIECE) {
            await this.active.write(piece.join(''));
            piece = [];
            pieceSize = 0;
          }
        }
        if (piece.length > 0) await this.active.write(piece.join(''));
        await this.active.datasync();
        this.activeSize = end;
        batch.items.forEach((item, i) => this.queue.push({ item, segment, end: ends[i]! }));
        if (this.activeSize > this.segmentBytes) {
          await this.active.close();
          await this.openSegment(segment + 1);
        }
        for (const w of batch.waiters) w.resolve();
      } catch (err) {
        for (const w of batch.waiters) w.reject(err as Error);
      }
    }
    this.writing = undefined;
  }

  /**
   * Marks the first `count` pending records as shipped (their receipts verified): moves the cursor
   * durably past them and deletes segments that hold nothing pending any more.
   */
  async ack(count: number): Promise<void> {
    if (count <= 0) return;
    if (count > this.queue.length)
      throw new RangeError(`ack ${count} records, only ${this.queue.length} pending`);
    const last = this.queue[count - 1]!;
    const cursor = { segment: last.segment, offset: last.end };
    const tmp = path.join(this.dir, 'cursor.tmp');
    const h = await fs.open(tmp, 'w', 0o600);
    try {
      await h.writeFile(JSON.stringify(cursor));
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.rename(tmp, path.join(this.dir, 'cursor'));
    await fsyncDir(this.dir);
    this.cursor = cursor;
    this.queue.splice(0, count);
    const keepFrom = this.queue[0]?.segment ?? this.activeSegment;
    for (const n of await this.segmentNumbers()) {
      if (n < keepFrom && n !== this.activeSegment) {
        await fs.rm(path.join(this.segmentsDir, segmentName(n)), { force: true });
      }
    }
  }

  /**
   * Sets aside pending records the log refused for good, so that they never block the ones behind
   * them: writes records [from, count) to `refused/<stream>.<seq>.spool` (same line format, fsynced),
   * then acks the first `count`. The records before `from` must have verified receipts. If the process
   * dies between the two steps, the next start finds them pending again and refuses them again into
   * the same file.
   */
  async refuse(from: number, count: number): Promise<string> {
    if (!(from >= 0 && from < count && count <= this.queue.length))
      throw new RangeError(`refuse records ${from}..${count}, ${this.queue.length} pending`);
    const dir = path.join(this.dir, 'refused');
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const first = this.queue[from]!.item.record;
    const file = path.join(dir, `${first.stream}.${first.seq}.spool`);
    const h = await fs.open(file, 'w', 0o600);
    try {
      for (const p of this.queue.slice(from, count)) await h.write(formatSpoolLine(p.item));
      await h.sync();
    } finally {
      await h.close();
    }
    await fsyncDir(dir);
    await this.ack(count);
    return file;
  }

  /** Waits for in-flight writes, closes the active segment and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing !== undefined) await this.writing;
    await this.active.close();
    await fs.rm(this.lockFile, { force: true });
    openInProcess.delete(path.resolve(this.lockFile));
  }
}

function parseLine(line: string): SpoolItem | undefined {
  if (line.length < 18 || line[16] !== ' ') return undefined;
  const json = line.slice(17);
  if (checksum(json) !== line.slice(0, 16)) return undefined;
  try {
    const item = JSON.parse(json) as SpoolItem;
    if (typeof item.emitter !== 'string' || typeof item.sig !== 'string' || typeof item.record !== 'object') {
      return undefined;
    }
    return item;
  } catch {
    return undefined;
  }
}
