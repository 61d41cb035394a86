// `vigil-witness export <dir>` / `vigil-witness import <dir>`: the witness's state (the logs it
// trusts, the newest checkpoint it cosigned per origin, every checkpoint it cosigned, its evidence)
// moves between stores in the format of `vigil-server export` (manifest + JSON Lines). The key file
// does not: copy it separately. The import loads into an empty store in one transaction and checks
// every stored note against its log's key; a witness restored behind what it cosigned could be led to
// cosign a fork, so the newest checkpoint per log must be at least every cosigned size.
import { bytesEqual, openNote, parseCheckpoint, parseVerifierKey } from '@vigil/client';
import {
  BatchInserter,
  TransferError,
  dumpTable,
  prepareExportDir,
  readManifest,
  readTable,
  refuseNonEmpty,
  writeManifest,
  type TableSpec,
} from '@vigil/store';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { WitnessDatabase } from './db/schema.js';

export const WITNESS_EXPORT_FORMAT = 'vigil-witness-export';
export const WITNESS_EXPORT_VERSION = 1;

export const WITNESS_TABLES: readonly TableSpec[] = [
  {
    name: 'logs',
    key: ['origin'],
    columns: {
      origin: 'text',
      vkey: 'text',
      url: 'text',
      pull_interval_ms: 'int',
      disabled_at: 'timestamptz',
      created_at: 'timestamptz',
    },
  },
  {
    name: 'latest_checkpoints',
    key: ['origin'],
    columns: {
      origin: 'text',
      tree_size: 'int8',
      root_hash: 'bytea',
      note: 'text',
      cosigned_at: 'timestamptz',
    },
  },
  {
    name: 'cosigned_checkpoints',
    key: ['id'],
    columns: {
      id: 'int8',
      origin: 'text',
      tree_size: 'int8',
      root_hash: 'bytea',
      note: 'text',
      cosigned_at: 'timestamptz',
    },
  },
  {
    name: 'evidence',
    key: ['id'],
    columns: {
      id: 'int8',
      origin: 'text',
      kind: 'text',
      source: 'text',
      old_size: 'int8',
      new_size: 'int8',
      old_note: 'text',
      new_note: 'text',
      proof: 'text',
      prefix_root: 'bytea',
      detected_at: 'timestamptz',
    },
  },
];
const spec = (name: string): TableSpec => WITNESS_TABLES.find((t) => t.name === name)!;

/** Writes the witness's state to `dir` (created; must be empty) from one consistent snapshot. */
export async function exportWitness(
  db: Kysely<WitnessDatabase>,
  dir: string,
): Promise<Record<string, string>> {
  await prepareExportDir(dir);
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const tables = [];
      for (const t of WITNESS_TABLES) tables.push(await dumpTable(trx, t, dir));
      await writeManifest(dir, {
        format: WITNESS_EXPORT_FORMAT,
        version: WITNESS_EXPORT_VERSION,
        exportedAt: new Date().toISOString(),
        tables,
      });
      return Object.fromEntries(tables.map((t) => [t.name, t.rows]));
    });
}

/** Checks that `note` is signed by the log and commits to `size` (and `root` when given). */
function checkNote(
  where: string,
  note: string,
  log: { origin: string; vkey: string },
  size: bigint,
  root?: Uint8Array | null,
): void {
  let c;
  try {
    c = parseCheckpoint(openNote(note, [log.vkey]).text);
  } catch (err) {
    throw new TransferError(
      'EXPORT_CHECKPOINT_INVALID',
      `${where}: not signed by the log key (${(err as Error).message})`,
    );
  }
  if (c.origin !== log.origin || c.size !== size || (root && !bytesEqual(root, c.root)))
    throw new TransferError('EXPORT_CHECKPOINT_INVALID', `${where}: the row does not match its signed note`);
}

/** Loads an export into an empty, migrated witness store in one transaction. */
export async function importWitness(db: Kysely<WitnessDatabase>, dir: string): Promise<{ logs: number }> {
  const manifest = await readManifest(dir, WITNESS_EXPORT_FORMAT, WITNESS_EXPORT_VERSION, WITNESS_TABLES);
  await refuseNonEmpty(
    db,
    WITNESS_TABLES.map((t) => t.name),
  );
  return db.transaction().execute(async (trx) => {
    const any = trx as unknown as Transaction<any>;
    const logs = new Map<string, { origin: string; vkey: string }>();
    const logOf = (origin: unknown, where: string) => {
      const log = logs.get(origin as string);
      if (!log)
        throw new TransferError('EXPORT_ROW_INVALID', `${where}: log ${String(origin)} is not exported`);
      return log;
    };
    for await (const row of readTable(dir, manifest, spec('logs'))) {
      const origin = row.origin as string;
      if (parseVerifierKey(row.vkey as string).name !== origin)
        throw new TransferError('EXPORT_ROW_INVALID', `log ${origin}: its key is not named by its origin`);
      logs.set(origin, { origin, vkey: row.vkey as string });
      await any.insertInto('logs').values(row).execute();
    }
    const cosignedMax = new Map<string, bigint>();
    const cosigned = new BatchInserter(any, spec('cosigned_checkpoints'));
    for await (const row of readTable(dir, manifest, spec('cosigned_checkpoints'))) {
      const size = row.tree_size as bigint;
      const where = `cosigned checkpoint ${String(row.origin)} ${size}`;
      checkNote(where, row.note as string, logOf(row.origin, where), size, row.root_hash as Uint8Array);
      const origin = row.origin as string;
      if (size > (cosignedMax.get(origin) ?? -1n)) cosignedMax.set(origin, size);
      await cosigned.add(row);
    }
    await cosigned.flush();
    const latest = new BatchInserter(any, spec('latest_checkpoints'));
    for await (const row of readTable(dir, manifest, spec('latest_checkpoints'))) {
      const size = row.tree_size as bigint;
      const where = `newest checkpoint of ${String(row.origin)}`;
      const log = logOf(row.origin, where);
      if (row.note !== null)
        checkNote(where, row.note as string, log, size, row.root_hash as Uint8Array | null);
      else if (size !== 0n)
        throw new TransferError('EXPORT_CHECKPOINT_INVALID', `${where}: size ${size} without a note`);
      const max = cosignedMax.get(log.origin);
      if (max !== undefined && size < max)
        throw new TransferError(
          'EXPORT_ROLLBACK',
          `${where}: size ${size} is behind the cosigned size ${max} (a rolled-back witness could cosign a fork)`,
        );
      await latest.add(row);
    }
    await latest.flush();
    const evidence = new BatchInserter(any, spec('evidence'));
    for await (const row of readTable(dir, manifest, spec('evidence'))) {
      const where = `evidence ${String(row.id)}`;
      const log = logOf(row.origin, where);
      checkNote(`${where} old note`, row.old_note as string, log, row.old_size as bigint);
      checkNote(`${where} new note`, row.new_note as string, log, row.new_size as bigint);
      await evidence.add(row);
    }
    await evidence.flush();
    for (const table of ['cosigned_checkpoints', 'evidence'])
      await sql`select setval(${`${table}_id_seq`}, greatest((select max(id) from ${sql.table(table)}), 1), (select count(*) > 0 from ${sql.table(table)}))`.execute(
        trx,
      );
    return { logs: logs.size };
  });
}
