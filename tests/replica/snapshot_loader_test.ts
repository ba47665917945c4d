// The snapshot loader stores a snapshot in batches bounded by entries and by bytes, so a snapshot
// of large values is never gathered whole in memory before it is written.

import assert from "node:assert/strict";
import {
  REPLICA_SNAPSHOT_BATCH_BYTES_MAX,
  SNAPSHOT_LINE_BYTES_MAX,
} from "../../src/core/limits.ts";
import { silentLogger } from "../../src/core/log.ts";
import { loadSnapshot } from "../../src/replica/snapshot_loader.ts";
import { KvState, type StateEntry } from "../../src/state/kv_state.ts";
import {
  type ScriptedEntry,
  scriptedPrimary,
  snapshotLines,
  snapshotResponse,
} from "../helpers/scripted_primary.ts";

const utf8 = new TextEncoder();

/** The bytes of an entry's snapshot line, "\n" included, as the primary sends it. */
function lineBytes(entry: StateEntry): number {
  return utf8.encode(JSON.stringify({ type: "entry", ...entry }) + "\n").byteLength;
}

/** A store that notes the line bytes of each entry of each `putEntries` call. */
class SpyState extends KvState {
  readonly batches: number[][] = [];

  override async putEntries(entries: readonly StateEntry[]): Promise<void> {
    this.batches.push(entries.map(lineBytes));
    await super.putEntries(entries);
  }
}

Deno.test("loadSnapshot() stores large entries in batches of at most REPLICA_SNAPSHOT_BATCH_BYTES_MAX bytes", async () => {
  // Five lines of about a third of the byte bound each: far fewer than SNAPSHOT_PAGE_ENTRIES
  // entries, but together more bytes than one batch may hold.
  const value = "x".repeat(Math.floor(REPLICA_SNAPSHOT_BATCH_BYTES_MAX / 3) - 100);
  const entries: ScriptedEntry[] = [1, 2, 3, 4, 5].map((n) => ({
    collection: "big",
    key: `k${n}`,
    value,
    lsn: n,
  }));
  assert.ok(entries.every((entry) => lineBytes(entry) <= SNAPSHOT_LINE_BYTES_MAX));
  const primary = scriptedPrimary({
    currentLsn: 5,
    snapshot: (request) => snapshotResponse(request, snapshotLines(5, entries)),
  });
  const kv = await Deno.openKv(":memory:");
  try {
    const store = new SpyState(kv);
    const loaded = await loadSnapshot(store, {
      client: primary.client,
      replicaId: "r1",
      signal: new AbortController().signal,
      logger: silentLogger,
      backoff: () => Promise.resolve(),
    });
    assert.deepEqual(loaded, { startLsn: 5, term: 1, entries: 5 });
    assert.ok(store.batches.length > 1, `one putEntries call held ${store.batches[0]?.length}`);
    for (const batch of store.batches) {
      const bytes = batch.reduce((sum, n) => sum + n, 0);
      assert.ok(bytes <= REPLICA_SNAPSHOT_BATCH_BYTES_MAX, `a batch of ${bytes} bytes`);
    }
    assert.equal(store.batches.flat().length, 5);
    for (const entry of entries) {
      assert.equal((await store.get(entry.collection, entry.key))?.value, value);
    }
  } finally {
    kv.close();
  }
});
