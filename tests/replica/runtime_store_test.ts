// The replica's stores at start: CURRENT names the live one; leftovers of an interrupted
// re-bootstrap are deleted; when CURRENT is garbled, other stores are set aside, never deleted.

import assert from "node:assert/strict";
import { KvState } from "../../src/state/kv_state.ts";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { withTempDir } from "../helpers/temp.ts";

async function storeWithRecord(path: string, lsn: number): Promise<void> {
  const kv = await Deno.openKv(path);
  const record = { op: "put" as const, collection: "c", key: "k", value: lsn, ts: 1 };
  await new KvState(kv).apply(
    [{ lsn, record }],
    (applied) => ({ applied_lsn: applied, last_term: 1, last_hash: null }),
  );
  kv.close();
}

function open(dataDir: string, logger = createMemoryLogger()) {
  return ReplicaRuntime.open({
    dataDir,
    replicaId: "r1",
    primaryUrl: "http://127.0.0.1:9",
    logger,
  });
}

Deno.test("ReplicaRuntime.open() uses the store CURRENT names and deletes leftover ones", async () => {
  await withTempDir(async (dir) => {
    await storeWithRecord(`${dir}/state-000002.kv`, 7);
    await storeWithRecord(`${dir}/state-000003.kv`, 1); // an unfinished re-bootstrap
    Deno.writeTextFileSync(`${dir}/CURRENT`, "state-000002.kv\n");
    const runtime = await open(dir);
    assert.equal(runtime.appliedLsn(), 7);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("state-000003")),
      [],
    );
    await runtime.stop();
  });
});

Deno.test("ReplicaRuntime.open() with a garbled CURRENT sets other stores aside, never deletes them", async () => {
  await withTempDir(async (dir) => {
    await storeWithRecord(`${dir}/state-000002.kv`, 7);
    Deno.writeTextFileSync(`${dir}/CURRENT`, "st\u0000ate-00!!\n");
    const logger = createMemoryLogger();
    const runtime = await open(dir, logger);
    assert.equal(runtime.appliedLsn(), 0, "starts empty and will catch up from the primary");
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.ok(names.some((n) => /^state-000002\.kv\.corrupt-\d+$/.test(n)), names.join(", "));
    assert.ok(logger.lines.some((line) => line.event === "replica.store_set_aside"));
    await runtime.stop();
  });
});
