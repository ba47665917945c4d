// SPEC.md section 4, persistence: the catalog file and Deno KV, one generation, coalesced flushes,
// loading that picks the newer valid source and falls back from a corrupt or missing one.

import assert from "node:assert/strict";
import { CATALOG_FILE_NAME, SlotStore } from "../../src/slots/slot_store.ts";
import { KV_SLOTS_META_KEY, KV_SLOTS_PREFIX } from "../../src/slots/slot_kv.ts";
import { SlotStoreCorruptError } from "../../src/core/errors.ts";
import { ackSlot, newSlot, type Slot } from "../../src/slots/slot.ts";
import { encodeCatalog } from "../../src/slots/catalog.ts";
import { joinPath } from "../../src/core/files.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { withTempDir } from "../helpers/temp.ts";

function slot(id: string, restartLsn: number): Slot {
  return newSlot({ replicaId: id, timeline: 1, restartLsn, nowMs: 1000 });
}

async function openStore(
  dir: string,
  extra: { logger?: ReturnType<typeof createMemoryLogger> } = {},
) {
  const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
  const fallbacks: string[] = [];
  try {
    const store = await SlotStore.open({
      dataDir: dir,
      kv,
      timeline: 1,
      flushIntervalMs: 50,
      logger: extra.logger,
      observer: { loadFallback: (source, problem) => fallbacks.push(`${source}: ${problem}`) },
    });
    return { store, kv, fallbacks };
  } catch (error) {
    kv.close();
    throw error;
  }
}

async function seed(dir: string, slots: Slot[]): Promise<void> {
  const { store, kv } = await openStore(dir);
  for (const s of slots) store.set(s);
  await store.close();
  kv.close();
}

async function reload(
  dir: string,
): Promise<{ slots: Slot[]; source: string; fallbacks: string[] }> {
  const { store, kv, fallbacks } = await openStore(dir);
  const result = { slots: store.all(), source: store.loadReport.source, fallbacks };
  await store.close();
  kv.close();
  return result;
}

async function clearKv(dir: string): Promise<void> {
  const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
  for await (const entry of kv.list({ prefix: [] })) await kv.delete(entry.key);
  kv.close();
}

Deno.test("SlotStore persists to both the catalog file and KV with one generation", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5), slot("b", 7)]);
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    const meta = await kv.get<{ generation: number }>([...KV_SLOTS_META_KEY]);
    const entries = await Array.fromAsync(kv.list({ prefix: [...KV_SLOTS_PREFIX] }));
    kv.close();
    assert.equal(entries.length, 2);
    assert.ok(meta.value!.generation >= 1);
    const { decodeCatalog } = await import("../../src/slots/catalog.ts");
    const catalog = decodeCatalog(Deno.readFileSync(joinPath(dir, CATALOG_FILE_NAME)));
    assert.equal(catalog.generation, meta.value!.generation);
    assert.deepEqual(catalog.slots.map((s) => s.replicaId), ["a", "b"]);
  });
});

Deno.test("the catalog alone restores the slots", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [
      slot("a", 5),
      ackSlot(slot("b", 0), { appliedLsn: 10, durableLsn: 8, nowMs: 2 }),
    ]);
    await clearKv(dir);
    const loaded = await reload(dir);
    assert.equal(loaded.source, "catalog");
    assert.deepEqual(loaded.slots.map((s) => [s.replicaId, s.restartLsn, s.confirmedWriteLsn]), [
      ["a", 5, 5],
      ["b", 8, 10],
    ]);
    // After the load both agree again: KV alone now restores the same.
    Deno.removeSync(joinPath(dir, CATALOG_FILE_NAME));
    assert.equal((await reload(dir)).slots.length, 2);
  });
});

Deno.test("Deno KV alone restores the slots", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5), slot("b", 7)]);
    Deno.removeSync(joinPath(dir, CATALOG_FILE_NAME));
    const loaded = await reload(dir);
    assert.equal(loaded.source, "kv");
    assert.deepEqual(loaded.slots.map((s) => s.restartLsn), [5, 7]);
    assert.ok(
      Deno.statSync(joinPath(dir, CATALOG_FILE_NAME)).size > 0,
      "the catalog was rewritten",
    );
  });
});

Deno.test("when the two disagree the newer generation wins", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5)]);
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    const generation =
      (await kv.get<{ generation: number }>([...KV_SLOTS_META_KEY])).value!.generation;
    kv.close();
    // A newer catalog (as if KV's commit was lost in a crash) wins...
    const newer = encodeCatalog({ timeline: 1, generation: generation + 1, slots: [slot("a", 9)] });
    Deno.writeFileSync(joinPath(dir, CATALOG_FILE_NAME), newer);
    let loaded = await reload(dir);
    assert.equal(loaded.source, "catalog");
    assert.equal(loaded.slots[0]!.restartLsn, 9);
    // ...and a newer KV wins over an older catalog.
    const older = encodeCatalog({ timeline: 1, generation: 1, slots: [slot("a", 1)] });
    Deno.writeFileSync(joinPath(dir, CATALOG_FILE_NAME), older);
    loaded = await reload(dir);
    assert.equal(loaded.source, "kv");
    assert.equal(loaded.slots[0]!.restartLsn, 9);
  });
});

Deno.test("a corrupt catalog falls back to KV with a warning and a metric", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5)]);
    const path = joinPath(dir, CATALOG_FILE_NAME);
    const bytes = Deno.readFileSync(path);
    bytes[12]! ^= 0xff;
    Deno.writeFileSync(path, bytes);
    const logger = createMemoryLogger();
    const { store, kv, fallbacks } = await openStore(dir, { logger });
    assert.equal(store.loadReport.source, "kv");
    assert.match(store.loadReport.catalog, /corrupt/);
    assert.equal(store.get("a")!.restartLsn, 5);
    assert.equal(fallbacks.length, 1);
    assert.ok(
      logger.lines.some((line) => line.event === "slots.load_fallback" && line.level === "warn"),
    );
    await store.close();
    kv.close();
  });
});

Deno.test("a corrupt KV copy falls back to the catalog", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5)]);
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    await kv.set([...KV_SLOTS_PREFIX, "a"], { replica_id: "a", restart_lsn: "not a number" });
    kv.close();
    const loaded = await reload(dir);
    assert.equal(loaded.source, "catalog");
    assert.equal(loaded.slots[0]!.restartLsn, 5);
    assert.equal(loaded.fallbacks.length, 1);
  });
});

Deno.test("both copies corrupt: SlotStore refuses to open with a clear message", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5)]);
    Deno.writeFileSync(joinPath(dir, CATALOG_FILE_NAME), new TextEncoder().encode("garbage"));
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    await kv.set([...KV_SLOTS_META_KEY], { generation: "x" });
    kv.close();
    await assert.rejects(() => openStore(dir), (error: Error) => {
      assert.ok(error instanceof SlotStoreCorruptError);
      assert.match(error.message, /catalog corrupt/);
      assert.match(error.message, /KV corrupt/);
      return true;
    });
  });
});

Deno.test("a fresh data directory loads no slots and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const loaded = await reload(dir);
    assert.equal(loaded.source, "none");
    assert.deepEqual(loaded.slots, []);
    assert.throws(() => Deno.statSync(joinPath(dir, CATALOG_FILE_NAME)), Deno.errors.NotFound);
  });
});

Deno.test("persistence is coalesced: 10 000 acks in a burst cause a handful of writes", async () => {
  await withTempDir(async (dir) => {
    const { store, kv } = await openStore(dir);
    store.set(slot("a", 0));
    await store.flushNow();
    const before = store.persistCount;
    let current = store.get("a")!;
    for (let lsn = 1; lsn <= 10_000; lsn++) {
      current = ackSlot(current, { appliedLsn: lsn, durableLsn: lsn, nowMs: 1000 + lsn });
      store.set(current);
    }
    await store.flushNow();
    const writes = store.persistCount - before;
    assert.ok(writes >= 1 && writes <= 3, `${writes} persists for 10 000 acks`);
    await store.close();
    kv.close();
    assert.equal((await reload(dir)).slots[0]!.restartLsn, 10_000);
  });
});

Deno.test("a dropped slot stays dropped after reload, from either copy", async () => {
  await withTempDir(async (dir) => {
    const { store, kv } = await openStore(dir);
    store.set(slot("a", 1));
    store.set(slot("b", 2));
    await store.flushNow();
    store.delete("a");
    await store.close();
    kv.close();
    assert.deepEqual((await reload(dir)).slots.map((s) => s.replicaId), ["b"]);
    await clearKv(dir);
    assert.deepEqual((await reload(dir)).slots.map((s) => s.replicaId), ["b"]);
  });
});

Deno.test("persistedFloor() follows the last persisted state, never a newer unpersisted one", async () => {
  await withTempDir(async (dir) => {
    const { store, kv } = await openStore(dir);
    store.set(slot("a", 0));
    await store.flushNow();
    store.set(ackSlot(store.get("a")!, { appliedLsn: 5, durableLsn: 5, nowMs: 2 }));
    assert.equal(store.persistedFloor(), 0);
    await store.flushNow();
    assert.equal(store.persistedFloor(), 5);
    await store.close();
    kv.close();
  });
});

Deno.test("a KV slot whose restart_lsn changed at rest fails its check: the catalog is used", async () => {
  await withTempDir(async (dir) => {
    await seed(dir, [slot("a", 5)]);
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    const entry = await kv.get<Record<string, unknown>>([...KV_SLOTS_PREFIX, "a"]);
    // Well-formed, plausible, and newer than what was persisted: exactly what must not load.
    await kv.set([...KV_SLOTS_PREFIX, "a"], { ...entry.value!, restart_lsn: 4_000 });
    kv.close();
    const loaded = await reload(dir);
    assert.equal(loaded.source, "catalog");
    assert.equal(loaded.slots[0]!.restartLsn, 5);
    assert.equal(loaded.fallbacks.length, 1);
  });
});
