// Shared test helpers: a witness app on a fresh store, and a tiny in-memory C2SP log built with the
// client-lib core (a legitimate log: signed checkpoints, RFC 6962 roots, tlog-tiles).
import type { Test } from 'tap';
import { createTestStore, forEachStore, type TestStore } from '@vigil/store';
import {
  consistencyProof,
  formatCheckpoint,
  generateKey,
  hashChildren,
  rootFromLeafHashes,
  signNote,
} from '@vigil/client';
import { useNodeCrypto } from '@vigil/client/node';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../src/app.js';
import { loadConfig, type WitnessConfig } from '../src/config.js';
import type { WitnessDatabase } from '../src/db/schema.js';
import { migrateWitness } from '../src/db/open.js';
import { createWitnessStore } from '../src/db/store.js';
import type { WitnessStore } from '../src/store.js';

useNodeCrypto();

/** A fixed witness identity for tests (seed 0x07 repeated); its name matches litewitness's tests. */
export const WITNESS_KEY = generateKey('example.com/witness', new Uint8Array(32).fill(7));

export function testConfig(overrides: Partial<Record<string, string>> = {}): WitnessConfig {
  return loadConfig({ LOG_LEVEL: 'silent', ...overrides });
}

export interface TestWitness {
  app: FastifyInstance;
  store: WitnessStore;
  /** Closes the app and the database handle (the TestStore itself is cleaned up by forEachStore). */
  close(): Promise<void>;
}

/** Opens (and migrates) the store and builds a witness app on it. */
export async function openTestWitness(
  testStore: TestStore,
  deps: Partial<AppDeps> = {},
  config: WitnessConfig = testConfig(),
): Promise<TestWitness> {
  const opened = await testStore.open<WitnessDatabase>();
  await migrateWitness(opened.db);
  const store = createWitnessStore(opened.db);
  const app = await buildApp(config, { store, signerKey: WITNESS_KEY.signerKey, ...deps });
  await app.ready();
  let closed = false;
  return {
    app,
    store,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await opened.close();
    },
  };
}

/** forEachStore plus a witness app that is closed at the end of the subtest. */
export function forEachWitness(
  t: Test,
  fn: (t: Test, witness: TestWitness, testStore: TestStore) => Promise<void>,
  deps: Partial<AppDeps> = {},
): void {
  forEachStore(t, async (t, testStore) => {
    const witness = await openTestWitness(testStore, deps);
    t.teardown(() => witness.close());
    await fn(t, witness, testStore);
  });
}

export { createTestStore };

/** Leaf hash number i of a test log (distinct per `salt`). */
export function leafHash(i: number, salt = 0): Uint8Array {
  const h = new Uint8Array(32);
  h[0] = 0x2a;
  h[1] = i & 0xff;
  h[2] = (i >> 8) & 0xff;
  h[3] = salt;
  return h;
}

/**
 * An in-memory log: leaf hashes, signed checkpoints, consistency proofs and tlog-tiles, all from the
 * client-lib core. `rewrite(index, salt)` replaces a leaf to simulate a log rewritten behind the
 * witness's back (same key, different history).
 */
export class TestLog {
  readonly origin: string;
  readonly signerKey: string;
  readonly vkey: string;
  leaves: Uint8Array[] = [];

  constructor(origin: string, seedByte = 1) {
    this.origin = origin;
    const key = generateKey(origin, new Uint8Array(32).fill(seedByte));
    this.signerKey = key.signerKey;
    this.vkey = key.verifierKey;
  }

  append(n: number, salt = 0): void {
    for (let i = 0; i < n; i++) this.leaves.push(leafHash(this.leaves.length, salt));
  }

  root(size = this.leaves.length): Uint8Array {
    return rootFromLeafHashes(this.leaves.slice(0, size));
  }

  /** A signed checkpoint note for the first `size` leaves. */
  checkpoint(size = this.leaves.length, signers: string[] = [this.signerKey]): string {
    const text = formatCheckpoint({
      origin: this.origin,
      size: BigInt(size),
      root: this.root(size),
      extensions: [],
    });
    return signNote(text, signers);
  }

  /** getNode over the current leaves: the complete subtree of 2^level leaves at index * 2^level. */
  node(level: number, index: bigint): Uint8Array {
    const width = 1 << level;
    const start = Number(index) * width;
    if (start + width > this.leaves.length) throw new Error(`node ${level}/${index} is not complete`);
    return this.subtreeRoot(start, width);
  }

  subtreeRoot(start: number, width: number): Uint8Array {
    if (width === 1) return this.leaves[start]!;
    const half = width / 2;
    return hashChildren(this.subtreeRoot(start, half), this.subtreeRoot(start + half, half));
  }

  proof(oldSize: number, newSize = this.leaves.length): Uint8Array[] {
    return consistencyProof(BigInt(oldSize), BigInt(newSize), (level, index) => this.node(level, index));
  }

  /** The bytes of tile `level`/`index` with `width` hashes (tlog-tiles, height 8). */
  tile(level: number, index: bigint, width: number): Uint8Array {
    const out = new Uint8Array(width * 32);
    for (let i = 0; i < width; i++) {
      out.set(this.node(level * 8, index * 256n + BigInt(i)), i * 32);
    }
    return out;
  }
}
