// A slot persist that fails tells its caller what happened: a full disk is a DiskFullError (507),
// another I/O failure an UnavailableError (503, retry), never a bare Error (a 500 of an admin drop).

import assert from "node:assert/strict";
import { DiskFullError, UnavailableError } from "../../src/core/errors.ts";
import { joinPath } from "../../src/core/files.ts";
import { newSlot } from "../../src/slots/slot.ts";
import { SlotStore } from "../../src/slots/slot_store.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { withTempDir } from "../helpers/temp.ts";

async function withStore(fn: (store: SlotStore, fs: MemFs) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const kv = await Deno.openKv(joinPath(dir, "ferry.kv"));
    const fs = new MemFs();
    await fs.mkdirp("/data");
    try {
      const store = await SlotStore.open({
        dataDir: "/data",
        kv,
        timeline: 1,
        flushIntervalMs: 50,
        fs,
      });
      try {
        await fn(store, fs);
      } finally {
        fs.capacityBytes = Infinity;
        await store.close().catch(() => undefined);
      }
    } finally {
      kv.close();
    }
  });
}

Deno.test("flushNow() on a full disk rejects with DiskFullError and keeps the change pending", async () => {
  await withStore(async (store, fs) => {
    fs.capacityBytes = 0;
    store.set(newSlot({ replicaId: "r1", timeline: 1, restartLsn: 3, nowMs: 1000 }));
    await assert.rejects(store.flushNow(), DiskFullError);
    assert.ok(store.hasPendingChanges(), "nothing was lost");
    fs.capacityBytes = Infinity;
    await store.flushNow();
    assert.ok(!store.hasPendingChanges());
  });
});

Deno.test("flushNow() after another I/O failure rejects with UnavailableError", async () => {
  await withStore(async (store, fs) => {
    fs.failNextSync = true;
    store.set(newSlot({ replicaId: "r1", timeline: 1, restartLsn: 3, nowMs: 1000 }));
    await assert.rejects(store.flushNow(), UnavailableError);
    await store.flushNow();
  });
});
