// The export directory format shared by `vigil-server export|import` and `vigil-witness export|import`:
// `manifest.json` (format name, version, the table files with their row counts, plus what the service
// adds) and one JSON Lines file per table, one row an object. Tables are read in keyset pages and
// written through a bounded buffer, and files are read line by line with a cap on the line length, so
// memory stays bounded whatever the size of the log. The manifest is written last: a directory without
// one is an unfinished export. A later version adds tables (sealed payloads, erasures) by adding specs;
// an importer refuses tables it does not know rather than dropping them.
import { mkdir, open, readdir, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { sql, type Kysely, type Transaction } from 'kysely';

/** A refused export or import; `code` names the cause (UPPER_SNAKE). */
export class TransferError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TransferError';
    this.code = code;
  }
}

/**
 * How a column is written in a row line: int8 as a decimal string, bytea as base64, time as ISO, jsonb
 * as the JSON value itself (read back as its JSON text, which PostgreSQL parses on insert).
 */
export type ColumnType = 'text' | 'int' | 'int8' | 'bytea' | 'timestamptz' | 'jsonb';

export interface TableSpec {
  readonly name: string;
  /** The primary key, in order: export pages by it. */
  readonly key: readonly string[];
  readonly columns: Readonly<Record<string, ColumnType>>;
  /** Rows a page and an insert batch (default 256; smaller for tables with large values). */
  readonly pageSize?: number;
}

export interface ManifestTable {
  name: string;
  file: string;
  rows: string;
}

export interface Manifest {
  format: string;
  version: number;
  exportedAt: string;
  tables: ManifestTable[];
  [extra: string]: unknown;
}

/** The longest row line an import reads (a blob of the largest request body, base64, fits). */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 1024 * 1024;
const WRITE_BUFFER_BYTES = 1024 * 1024;

function encodeValue(type: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'int8':
      return String(v);
    case 'bytea':
      return Buffer.from(v as Uint8Array).toString('base64');
    case 'timestamptz':
      return (v as Date).toISOString();
    default:
      return v;
  }
}

function decodeValue(type: ColumnType, v: unknown, where: string): unknown {
  if (v === null) return null;
  const bad = (): never => {
    throw new TransferError('EXPORT_ROW_INVALID', `${where}: not a valid ${type}`);
  };
  switch (type) {
    case 'text':
      return typeof v === 'string' ? v : bad();
    case 'int':
      return Number.isSafeInteger(v) ? v : bad();
    case 'int8':
      return typeof v === 'string' && /^-?(0|[1-9][0-9]{0,18})$/.test(v) ? BigInt(v) : bad();
    case 'bytea': {
      if (typeof v !== 'string') return bad();
      const bytes = Buffer.from(v, 'base64');
      if (bytes.toString('base64') !== v) return bad();
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    case 'timestamptz': {
      const d = typeof v === 'string' ? new Date(v) : undefined;
      return d && !Number.isNaN(d.getTime()) ? d : bad();
    }
    case 'jsonb':
      return JSON.stringify(v);
  }
}

/** Parses one row line against its table: exactly the spec's columns, each of its type. */
export function decodeRow(spec: TableSpec, line: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new TransferError('EXPORT_ROW_INVALID', `${where}: not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TransferError('EXPORT_ROW_INVALID', `${where}: not an object`);
  const obj = value as Record<string, unknown>;
  const row: Record<string, unknown> = {};
  for (const [column, type] of Object.entries(spec.columns)) {
    if (!(column in obj)) throw new TransferError('EXPORT_ROW_INVALID', `${where}: column ${column} missing`);
    row[column] = decodeValue(type, obj[column], `${where}: column ${column}`);
  }
  for (const column of Object.keys(obj))
    if (!(column in spec.columns))
      throw new TransferError('EXPORT_ROW_INVALID', `${where}: unknown column ${column}`);
  return row;
}

/** Appends lines to a new file through a bounded buffer; `close()` flushes and fsyncs. */
class LineWriter {
  #fh: FileHandle;
  #parts: string[] = [];
  #size = 0;
  private constructor(fh: FileHandle) {
    this.#fh = fh;
  }
  static async create(path: string): Promise<LineWriter> {
    return new LineWriter(await open(path, 'wx', 0o600));
  }
  async write(line: string): Promise<void> {
    this.#parts.push(line, '\n');
    this.#size += line.length + 1;
    if (this.#size >= WRITE_BUFFER_BYTES) await this.#flush();
  }
  async #flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    await this.#fh.write(this.#parts.join(''));
    this.#parts = [];
    this.#size = 0;
  }
  async close(): Promise<void> {
    try {
      await this.#flush();
      await this.#fh.sync();
    } finally {
      await this.#fh.close();
    }
  }
}

/** The lines of a file (without the newline), each at most `maxBytes`; a longer line is refused. */
export async function* readLines(path: string, maxBytes = MAX_LINE_BYTES): AsyncGenerator<string> {
  const fh = await open(path, 'r');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(10, start);
        if (nl < 0 || nl >= bytesRead) break;
        if (pendingBytes + nl - start > maxBytes)
          throw new TransferError('EXPORT_ROW_INVALID', `${path}: a line is over ${maxBytes} bytes`);
        pending.push(Buffer.from(chunk.subarray(start, nl)));
        yield Buffer.concat(pending).toString('utf8');
        pending = [];
        pendingBytes = 0;
        start = nl + 1;
      }
      pendingBytes += bytesRead - start;
      if (pendingBytes > maxBytes)
        throw new TransferError('EXPORT_ROW_INVALID', `${path}: a line is over ${maxBytes} bytes`);
      pending.push(Buffer.from(chunk.subarray(start, bytesRead)));
    }
    if (pendingBytes > 0)
      throw new TransferError('EXPORT_ROW_INVALID', `${path}: the last line has no newline (truncated file)`);
  } finally {
    await fh.close();
  }
}

/** Creates `dir` (mode 0700) for an export; refuses a directory that already has files in it. */
export async function prepareExportDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if ((await readdir(dir)).length > 0)
    throw new TransferError('EXPORT_DIR_NOT_EMPTY', `export directory ${dir} is not empty`);
}

type AnyDb = Kysely<any> | Transaction<any>;

/** Writes every row of a table to `<dir>/<table>.jsonl` in key order, one page at a time. */
export async function dumpTable(db: AnyDb, spec: TableSpec, dir: string): Promise<ManifestTable> {
  const file = `${spec.name}.jsonl`;
  const writer = await LineWriter.create(join(dir, file));
  const columns = Object.keys(spec.columns);
  const pageSize = spec.pageSize ?? 256;
  let rows = 0n;
  try {
    let after: unknown[] | undefined;
    for (;;) {
      let q = db.selectFrom(spec.name).select(columns).limit(pageSize);
      for (const k of spec.key) q = q.orderBy(k);
      if (after) {
        const keys = sql.join(spec.key.map((k) => sql.ref(k)));
        q = q.where(sql<boolean>`(${keys}) > (${sql.join(after)})`);
      }
      const page = (await q.execute()) as Record<string, unknown>[];
      for (const row of page) {
        const out: Record<string, unknown> = {};
        for (const c of columns) out[c] = encodeValue(spec.columns[c]!, row[c]);
        await writer.write(JSON.stringify(out));
      }
      rows += BigInt(page.length);
      if (page.length < pageSize) break;
      const last = page[page.length - 1]!;
      after = spec.key.map((k) => last[k]);
    }
  } finally {
    await writer.close();
  }
  return { name: spec.name, file, rows: String(rows) };
}

/** Writes the manifest (last, so its presence marks a finished export). */
export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  const path = join(dir, 'manifest.json');
  await writeFile(path, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Reads and checks a manifest: the expected format and version, and a table list that names exactly
 * the tables this importer knows (an unknown table is refused, never silently dropped).
 */
export async function readManifest(
  dir: string,
  format: string,
  version: number,
  specs: readonly TableSpec[],
): Promise<Manifest> {
  let text: string;
  try {
    const fh = await open(join(dir, 'manifest.json'), 'r');
    try {
      const { size } = await fh.stat();
      if (size > MAX_MANIFEST_BYTES)
        throw new TransferError(
          'EXPORT_MANIFEST_INVALID',
          `manifest.json is over ${MAX_MANIFEST_BYTES} bytes`,
        );
      text = await readFile(fh, 'utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new TransferError(
        'EXPORT_MANIFEST_MISSING',
        `${dir} has no manifest.json (not an export, or unfinished)`,
      );
    throw err;
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new TransferError('EXPORT_MANIFEST_INVALID', 'manifest.json is not JSON');
  }
  if (m.format !== format)
    throw new TransferError(
      'EXPORT_FORMAT_UNSUPPORTED',
      `manifest format is ${String(m.format)}, expected ${format}`,
    );
  if (m.version !== version)
    throw new TransferError(
      'EXPORT_FORMAT_UNSUPPORTED',
      `manifest version ${String(m.version)}: this version imports version ${version}`,
    );
  if (!Array.isArray(m.tables))
    throw new TransferError('EXPORT_MANIFEST_INVALID', 'manifest has no table list');
  const known = new Set(specs.map((s) => s.name));
  for (const t of m.tables) {
    if (!known.has(t.name))
      throw new TransferError(
        'EXPORT_TABLE_UNKNOWN',
        `manifest lists table ${String(t.name)}, which this version cannot import`,
      );
    if (t.file !== `${t.name}.jsonl` || typeof t.rows !== 'string' || !/^(0|[1-9][0-9]*)$/.test(t.rows))
      throw new TransferError('EXPORT_MANIFEST_INVALID', `manifest entry for ${t.name} is malformed`);
  }
  for (const name of known)
    if (!m.tables.some((t) => t.name === name))
      throw new TransferError('EXPORT_MANIFEST_INVALID', `manifest does not list table ${name}`);
  return m;
}

/**
 * The decoded rows of one table file, in file order; when the file ends, its row count must be the
 * manifest's (a dropped or added line is refused).
 */
export async function* readTable(
  dir: string,
  manifest: Manifest,
  spec: TableSpec,
): AsyncGenerator<Record<string, unknown>> {
  const entry = manifest.tables.find((t) => t.name === spec.name)!;
  let n = 0n;
  for await (const line of readLines(join(dir, entry.file))) {
    n++;
    yield decodeRow(spec, line, `${entry.file} line ${n}`);
  }
  if (n !== BigInt(entry.rows))
    throw new TransferError(
      'EXPORT_ROW_COUNT_MISMATCH',
      `${entry.file} has ${n} rows, the manifest says ${entry.rows} (a line was dropped or added)`,
    );
}

/** Inserts rows in batches of the table's page size. */
export class BatchInserter {
  #rows: Record<string, unknown>[] = [];
  readonly #db: AnyDb;
  readonly #spec: TableSpec;
  constructor(db: AnyDb, spec: TableSpec) {
    this.#db = db;
    this.#spec = spec;
  }
  async add(row: Record<string, unknown>): Promise<void> {
    this.#rows.push(row);
    if (this.#rows.length >= (this.#spec.pageSize ?? 256)) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.#rows.length === 0) return;
    await this.#db.insertInto(this.#spec.name).values(this.#rows).execute();
    this.#rows = [];
  }
}

/** Refuses unless every named table is empty. */
export async function refuseNonEmpty(db: AnyDb, tables: readonly string[]): Promise<void> {
  for (const table of tables) {
    const row = await db
      .selectFrom(table)
      .select(sql`1`.as('one'))
      .limit(1)
      .executeTakeFirst();
    if (row)
      throw new TransferError(
        'STORE_NOT_EMPTY',
        `table ${table} is not empty: import loads only into an empty store`,
      );
  }
}
