// `vigil-server export <dir>` / `vigil-server import <dir>`: a log moves between stores whole
// (DESIGN.md "Storage"). The export is read in one repeatable-read snapshot. The import loads into an
// empty store in one transaction and trusts nothing derived: it recomputes every leaf hash, search
// column and tile-level node from the entry bytes, checks every checkpoint's log signature and that
// the rebuilt tree has each checkpoint's root at its size, checks cosignatures against the witness
// keys and blobs against their hashes. Any failure rolls the whole import back.
import {
  appendLeafHashes,
  base64Encode,
  bytesEqual,
  emptyCompactRange,
  hashLeaf,
  openNote,
  parseCheckpoint,
  parseEntryWithRecord,
  parseVerifierKey,
  rootOfCompactRange,
  sha256,
  hexEncode,
  verifyCosignature,
  type CompactRange,
} from '@vigil/client';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { getTreeHead, insertTreeNodes, listCheckpointsDesc } from '../db/repository.js';
import { searchColumns } from '../routes/entries.js';
import { base64EncodeFast } from '../tlog/base64.js';
import {
  BatchInserter,
  TransferError,
  dumpTable,
  prepareExportDir,
  readManifest,
  readTable,
  refuseNonEmpty,
  writeManifest,
  type Manifest,
  type TableSpec,
} from '@vigil/store';

export const LOG_EXPORT_FORMAT = 'vigil-log-export';
export const LOG_EXPORT_VERSION = 1;

const created = { created_at: 'timestamptz' } as const;

/**
 * The tables an export carries. tree_heads and tree_nodes are not exported: the import derives them
 * (the head is the newest checkpoint; nodes are rebuilt from the leaves). Entries carry only their
 * index and bytes; every other entries column is extracted from the bytes again.
 */
export const LOG_TABLES: readonly TableSpec[] = [
  { name: 'logs', key: ['origin'], columns: { origin: 'text', vkey: 'text', ...created } },
  { name: 'witnesses', key: ['name'], columns: { name: 'text', vkey: 'text', url: 'text', ...created } },
  {
    name: 'emitters',
    key: ['name'],
    columns: { name: 'text', vkey: 'text', ...created, revoked_at: 'timestamptz' },
  },
  { name: 'settings', key: ['key'], columns: { key: 'text', value: 'text' } },
  {
    name: 'checkpoints',
    key: ['tree_size'],
    columns: { tree_size: 'int8', root_hash: 'bytea', note: 'text', ...created },
  },
  { name: 'entries', key: ['leaf_index'], columns: { leaf_index: 'int8', entry: 'bytea' } },
  {
    name: 'cosignatures',
    key: ['tree_size', 'witness'],
    columns: { tree_size: 'int8', witness: 'text', line: 'text', timestamp: 'int8', ...created },
  },
  {
    name: 'blobs',
    key: ['sha256'],
    columns: { sha256: 'text', size: 'int8', bytes: 'bytea', ...created },
    pageSize: 16,
  },
  {
    name: 'incidents',
    key: ['id'],
    columns: {
      id: 'int8',
      kind: 'text',
      emitter: 'text',
      stream: 'text',
      seq: 'int8',
      leaf_index: 'int8',
      detail: 'text',
      ...created,
    },
  },
  // Sealed values and what belongs to them (DESIGN.md "Readers and sealed payloads"). An export holds
  // S: it is as confidential as the store it came from.
  {
    name: 'operator_actions',
    key: ['id'],
    columns: { id: 'int8', kind: 'text', fields: 'jsonb', ...created, record_index: 'int8' },
  },
  {
    name: 'erasures',
    key: ['sha256'],
    columns: { sha256: 'text', action_id: 'int8', erased_at: 'timestamptz' },
  },
  {
    name: 'sealed',
    key: ['sha256'],
    columns: {
      sha256: 'text',
      size: 'int8',
      bytes: 'bytea',
      leaf_index: 'int8',
      emitter: 'text',
      stream: 'text',
      session: 'text',
      received: 'timestamptz',
    },
    pageSize: 16,
  },
  {
    name: 'sealed_columns',
    key: ['leaf_index'],
    columns: { leaf_index: 'int8', sha256: 'text', tool: 'text', resource_uri: 'text' },
  },
  // Readers: the SHA-256 of each token, never a token.
  {
    name: 'readers',
    key: ['name'],
    columns: { name: 'text', token_sha256: 'text', ...created, revoked_at: 'timestamptz' },
  },
  {
    name: 'holds',
    key: ['id'],
    columns: {
      id: 'text',
      scope: 'text',
      target: 'text',
      reason: 'text',
      ...created,
      released_at: 'timestamptz',
    },
  },
];
const spec = (name: string): TableSpec => LOG_TABLES.find((t) => t.name === name)!;

export interface LogExportSummary {
  origin: string;
  treeSize: bigint;
  rows: Record<string, string>;
}

/** Writes the whole log to `dir` (created; must be empty) from one consistent snapshot. */
export async function exportLog(db: Kysely<Database>, dir: string): Promise<LogExportSummary> {
  await prepareExportDir(dir);
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const log = await trx.selectFrom('logs').select(['origin', 'vkey']).executeTakeFirst();
      const head = await getTreeHead(trx);
      if (!log || !head) throw new TransferError('LOG_MISSING', 'no log in this store: nothing to export');
      const [newest] = await listCheckpointsDesc(trx, 1);
      if (!newest || newest.size !== head.size || !bytesEqual(newest.root, head.root))
        throw new TransferError('LOG_INCONSISTENT', 'the tree head is not the newest checkpoint');
      const tables = [];
      for (const t of LOG_TABLES) tables.push(await dumpTable(trx, t, dir));
      const manifest: Manifest = {
        format: LOG_EXPORT_FORMAT,
        version: LOG_EXPORT_VERSION,
        exportedAt: new Date().toISOString(),
        origin: log.origin,
        vkey: log.vkey,
        treeSize: String(head.size),
        root: base64Encode(head.root),
        tables,
      };
      await writeManifest(dir, manifest);
      return {
        origin: log.origin,
        treeSize: head.size,
        rows: Object.fromEntries(tables.map((t) => [t.name, t.rows])),
      };
    });
}

/** A checkpoints reader that yields verified checkpoints in strictly increasing size. */
async function* verifiedCheckpoints(
  rows: AsyncGenerator<Record<string, unknown>>,
  origin: string,
  vkey: string,
): AsyncGenerator<{ size: bigint; root: Uint8Array; note: string; row: Record<string, unknown> }> {
  let last = -1n;
  for await (const row of rows) {
    const size = row.tree_size as bigint;
    const root = row.root_hash as Uint8Array;
    const note = row.note as string;
    if (size <= last)
      throw new TransferError(
        'EXPORT_CHECKPOINT_INVALID',
        `checkpoint ${size} follows ${last}: out of order`,
      );
    let text: string;
    try {
      text = openNote(note, [vkey]).text;
    } catch (err) {
      throw new TransferError(
        'EXPORT_CHECKPOINT_INVALID',
        `checkpoint ${size}: not signed by the log key (${(err as Error).message})`,
      );
    }
    const c = parseCheckpoint(text);
    if (c.origin !== origin || c.size !== size || !bytesEqual(c.root, root))
      throw new TransferError(
        'EXPORT_CHECKPOINT_INVALID',
        `checkpoint ${size}: its row does not match its signed note (origin ${c.origin}, size ${c.size})`,
      );
    last = size;
    yield { size, root, note, row };
  }
}

export interface LogImportSummary {
  origin: string;
  treeSize: bigint;
  root: string;
}

/**
 * Loads an export into an empty, migrated store in one transaction; refuses (and leaves the store
 * empty) unless the rebuilt tree's root at every checkpoint's size is that checkpoint's signed root.
 */
export async function importLog(db: Kysely<Database>, dir: string): Promise<LogImportSummary> {
  const manifest = await readManifest(dir, LOG_EXPORT_FORMAT, LOG_EXPORT_VERSION, LOG_TABLES);
  await refuseNonEmpty(db, [...LOG_TABLES.map((t) => t.name), 'tree_heads', 'tree_nodes']);
  return db.transaction().execute(async (trx) => {
    await refuseNonEmpty(trx, ['logs', 'tree_heads']);
    const any = trx as unknown as Transaction<any>;

    // The log row: one, matching the manifest, with a well-formed key named by the origin.
    let log: { origin: string; vkey: string } | undefined;
    for await (const row of readTable(dir, manifest, spec('logs'))) {
      if (log) throw new TransferError('EXPORT_ROW_INVALID', 'logs.jsonl has more than one log');
      log = { origin: row.origin as string, vkey: row.vkey as string };
      await any.insertInto('logs').values(row).execute();
    }
    if (!log) throw new TransferError('EXPORT_ROW_INVALID', 'logs.jsonl has no log');
    if (log.origin !== manifest.origin || log.vkey !== manifest.vkey)
      throw new TransferError('EXPORT_MANIFEST_INVALID', 'the manifest names another log than logs.jsonl');
    if (parseVerifierKey(log.vkey).name !== log.origin)
      throw new TransferError('EXPORT_ROW_INVALID', `the log key is not named ${log.origin}`);

    const witnessKeys = new Map<string, string>();
    for await (const row of readTable(dir, manifest, spec('witnesses'))) {
      parseVerifierKey(row.vkey as string);
      witnessKeys.set(row.name as string, row.vkey as string);
      await any.insertInto('witnesses').values(row).execute();
    }
    for (const name of ['emitters', 'settings']) {
      const batch = new BatchInserter(any, spec(name));
      for await (const row of readTable(dir, manifest, spec(name))) await batch.add(row);
      await batch.flush();
    }

    // Entries and checkpoints in step: the tree is rebuilt leaf by leaf, and each checkpoint's root is
    // compared when the tree reaches its size.
    const checkpoints = verifiedCheckpoints(
      readTable(dir, manifest, spec('checkpoints')),
      log.origin,
      log.vkey,
    );
    const checkpointBatch = new BatchInserter(any, spec('checkpoints'));
    const entryBatch: Record<string, unknown>[] = [];
    let nodes: { level: number; index: bigint; hash: Uint8Array }[] = [];
    let range: CompactRange = emptyCompactRange();
    let next = await checkpoints.next();
    let newest: { size: bigint; root: Uint8Array; note: string } | undefined;
    const flushEntries = async () => {
      if (entryBatch.length > 0) await any.insertInto('entries').values(entryBatch.splice(0)).execute();
      if (nodes.length > 0) await insertTreeNodes(trx, nodes);
      nodes = [];
    };
    const reachCheckpoints = async () => {
      while (!next.done && next.value.size <= range.size) {
        const c = next.value;
        if (c.size < range.size)
          throw new TransferError('EXPORT_CHECKPOINT_INVALID', `checkpoint ${c.size} is out of order`);
        const root = rootOfCompactRange(range);
        if (!bytesEqual(root, c.root))
          throw new TransferError(
            'EXPORT_ROOT_MISMATCH',
            `the ${range.size} exported entries have root ${base64Encode(root)}, but checkpoint ${c.size} ` +
              `signs ${base64Encode(c.root)}: an entry was changed, dropped, added or reordered`,
          );
        await checkpointBatch.add(c.row);
        newest = c;
        next = await checkpoints.next();
      }
    };
    await reachCheckpoints();
    for await (const row of readTable(dir, manifest, spec('entries'))) {
      const index = row.leaf_index as bigint;
      if (index !== range.size)
        throw new TransferError(
          'EXPORT_ENTRY_GAP',
          `entries.jsonl: expected entry ${range.size}, found ${index} (an entry line was dropped or moved)`,
        );
      const bytes = row.entry as Uint8Array;
      let parsed;
      try {
        parsed = parseEntryWithRecord(bytes);
      } catch (err) {
        throw new TransferError('EXPORT_ENTRY_INVALID', `entry ${index}: ${(err as Error).message}`);
      }
      const record = parsed.entry.record;
      if (typeof record.stream !== 'string' || !Number.isSafeInteger(record.seq))
        throw new TransferError('EXPORT_ENTRY_INVALID', `entry ${index}: record has no stream and seq`);
      const received = new Date(parsed.entry.received);
      if (Number.isNaN(received.getTime()))
        throw new TransferError('EXPORT_ENTRY_INVALID', `entry ${index}: received is not a time`);
      const leafHash = hashLeaf(bytes);
      const search = searchColumns(record);
      entryBatch.push({
        leaf_index: index,
        entry: bytes,
        leaf_hash: leafHash,
        emitter: parsed.entry.emitter,
        stream: record.stream,
        seq: BigInt(record.seq as number),
        record_hash: base64EncodeFast(sha256(parsed.record)),
        received,
        kind: search.kind,
        session: search.session,
        method: search.method,
        tool: search.tool,
        record_time: search.recordTime,
      });
      range = appendLeafHashes(range, [leafHash], (n) => {
        if (n.level > 0 && n.level % 8 === 0) nodes.push(n);
      });
      if (entryBatch.length >= 256) await flushEntries();
      await reachCheckpoints();
    }
    await flushEntries();
    if (!next.done)
      throw new TransferError(
        'EXPORT_ROOT_MISMATCH',
        `checkpoint ${next.value.size} is beyond the ${range.size} exported entries (entries were dropped)`,
      );
    await checkpointBatch.flush();
    if (!newest) throw new TransferError('EXPORT_CHECKPOINT_INVALID', 'the export has no checkpoint');
    if (newest.size !== range.size)
      throw new TransferError(
        'EXPORT_ROOT_MISMATCH',
        `${range.size} entries, but the newest checkpoint has size ${newest.size}`,
      );
    if (String(newest.size) !== manifest.treeSize || base64Encode(newest.root) !== manifest.root)
      throw new TransferError('EXPORT_MANIFEST_INVALID', 'the manifest names another tree head');
    await any
      .insertInto('tree_heads')
      .values({ id: 1, tree_size: newest.size, root_hash: newest.root, note: newest.note })
      .execute();

    // Cosignatures: on a checkpoint of this log, by a configured witness whose key verifies them.
    const cosignatures = new BatchInserter(any, spec('cosignatures'));
    let noteOf: { size: bigint; note: string } | undefined;
    for await (const row of readTable(dir, manifest, spec('cosignatures'))) {
      const size = row.tree_size as bigint;
      if (noteOf?.size !== size) {
        const c = await any
          .selectFrom('checkpoints')
          .select('note')
          .where('tree_size', '=', size)
          .executeTakeFirst();
        await cosignatures.flush();
        const stored = c ?? (newest.size === size ? newest : undefined);
        if (!stored)
          throw new TransferError(
            'EXPORT_COSIGNATURE_INVALID',
            `cosignature on checkpoint ${size}, which is not exported`,
          );
        noteOf = { size, note: stored.note as string };
      }
      const vkey = witnessKeys.get(row.witness as string);
      if (vkey === undefined)
        throw new TransferError(
          'EXPORT_COSIGNATURE_INVALID',
          `cosignature by ${String(row.witness)}, not a configured witness`,
        );
      try {
        verifyCosignature(`${noteOf.note}${row.line as string}`, vkey);
      } catch (err) {
        throw new TransferError(
          'EXPORT_COSIGNATURE_INVALID',
          `cosignature of ${String(row.witness)} on checkpoint ${size}: ${(err as Error).message}`,
        );
      }
      await cosignatures.add(row);
    }
    await cosignatures.flush();

    const blobs = new BatchInserter(any, spec('blobs'));
    for await (const row of readTable(dir, manifest, spec('blobs'))) {
      const bytes = row.bytes as Uint8Array;
      if (hexEncode(sha256(bytes)) !== row.sha256 || BigInt(bytes.length) !== row.size)
        throw new TransferError(
          'EXPORT_BLOB_INVALID',
          `blob ${String(row.sha256)}: bytes do not match its hash`,
        );
      await blobs.add(row);
    }
    await blobs.flush();

    const incidents = new BatchInserter(any, spec('incidents'));
    for await (const row of readTable(dir, manifest, spec('incidents'))) await incidents.add(row);
    await incidents.flush();
    await sql`select setval('incidents_id_seq', greatest((select max(id) from incidents), 1), (select count(*) > 0 from incidents))`.execute(
      trx,
    );
    await importSealed(trx, dir, manifest, newest.size);
    return { origin: log.origin, treeSize: newest.size, root: base64Encode(newest.root) };
  });
}

/**
 * Loads the sealed tables: operator actions (record indices within the tree), erasures (of a known
 * action), sealed values (S matching its hash and size, and not erased: an export must not bring an
 * erased value back), their derived columns (of a loaded value), readers (a token's SHA-256 only) and
 * holds.
 */
async function importSealed(
  trx: Transaction<Database>,
  dir: string,
  manifest: Manifest,
  treeSize: bigint,
): Promise<void> {
  const any = trx as unknown as Transaction<any>;
  const invalid = (table: string, message: string) =>
    new TransferError('EXPORT_ROW_INVALID', `${table}.jsonl: ${message}`);

  const actions = new BatchInserter(any, spec('operator_actions'));
  for await (const row of readTable(dir, manifest, spec('operator_actions'))) {
    const index = row.record_index as bigint | null;
    if (index !== null && (index < 0n || index >= treeSize))
      throw invalid('operator_actions', `action ${String(row.id)} names entry ${index}, beyond the tree`);
    const fields = JSON.parse(row.fields as string) as unknown;
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields))
      throw invalid('operator_actions', `action ${String(row.id)}: fields are not an object`);
    await actions.add(row);
  }
  await actions.flush();
  await sql`select setval('operator_actions_id_seq', greatest((select max(id) from operator_actions), 1), (select count(*) > 0 from operator_actions))`.execute(
    trx,
  );

  const erased = new Set<string>();
  const erasures = new BatchInserter(any, spec('erasures'));
  for await (const row of readTable(dir, manifest, spec('erasures'))) {
    if (!/^[0-9a-f]{64}$/.test(row.sha256 as string))
      throw invalid('erasures', `${String(row.sha256)} is not a commitment`);
    erased.add(row.sha256 as string);
    await erasures.add(row);
  }
  // The action each erasure names must exist (the foreign key checks it on insert).
  await erasures.flush();

  const sealed = new BatchInserter(any, spec('sealed'));
  for await (const row of readTable(dir, manifest, spec('sealed'))) {
    const bytes = row.bytes as Uint8Array;
    if (hexEncode(sha256(bytes)) !== row.sha256 || BigInt(bytes.length) !== row.size)
      throw new TransferError(
        'EXPORT_SEALED_INVALID',
        `sealed value ${String(row.sha256)}: bytes do not match its commitment`,
      );
    if (erased.has(row.sha256 as string))
      throw new TransferError(
        'EXPORT_SEALED_INVALID',
        `sealed value ${String(row.sha256)} was erased: the export must not hold it`,
      );
    await sealed.add(row);
  }
  await sealed.flush();

  const columns = new BatchInserter(any, spec('sealed_columns'));
  for await (const row of readTable(dir, manifest, spec('sealed_columns'))) await columns.add(row);
  await columns.flush();
  const orphan = await sql<{ sha256: string }>`
    select c.sha256 from sealed_columns c where not exists (select 1 from sealed s where s.sha256 = c.sha256)
    limit 1`.execute(trx);
  if (orphan.rows[0])
    throw invalid('sealed_columns', `a column derived from ${orphan.rows[0].sha256}, which is not exported`);

  const readers = new BatchInserter(any, spec('readers'));
  for await (const row of readTable(dir, manifest, spec('readers'))) {
    if (!/^[0-9a-f]{64}$/.test(row.token_sha256 as string))
      throw invalid('readers', `reader ${String(row.name)}: token_sha256 is not a SHA-256`);
    await readers.add(row);
  }
  await readers.flush();

  const holds = new BatchInserter(any, spec('holds'));
  for await (const row of readTable(dir, manifest, spec('holds'))) await holds.add(row);
  await holds.flush();
}
