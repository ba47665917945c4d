// SPEC.md section 8: a snapshot starts at the state's applied LSN and pins the replica's slot
// there. A new snapshot first lets the state apply what it may (a waiter ends its lingers and
// rests), so it starts at the head rather than behind it: a start far behind the head gave the new
// slot a lag past `--slot-lag-max-records`, invalidated before the replica could replay.

import assert from "node:assert/strict";
import { SnapshotServer } from "../../src/replication/snapshot.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const WAIT_BOUND_MS = 10_000;
/** A small backlog waits an hour to be applied, unless someone waits for it. */
const HOUR_MS = 3_600_000;

Deno.test("a new snapshot starts at the head although the state was lingering behind it", async () => {
  await withPrimary({}, async ({ primary, kv }) => {
    await primary.append([putPayload("k1")]);
    await withApplier({ spool: primary.spool, kv, lingerMs: HOUR_MS }, async (state) => {
      assert.ok(await state.waitApplied(1, { timeoutMs: WAIT_BOUND_MS }));
      await primary.append([putPayload("k2")]);
      await new Promise((resolve) => setTimeout(resolve, 20)); // the state lingers meanwhile
      assert.equal(state.appliedLsn(), 1, "the state lingers behind the head");
      const snapshots = new SnapshotServer(primary, state, { concurrencyMax: 1 });
      const opened = await snapshots.open("r1");
      assert.equal(opened.startLsn, 2);
      assert.equal(primary.slots.get("r1")?.restartLsn, 2, "the slot is pinned at the head");
      const lines = (await new Response(opened.body).text()).trimEnd().split("\n");
      const keys = lines.slice(1, -1).map((line) => JSON.parse(line).key);
      assert.deepEqual(keys, ["k1", "k2"]);
    });
  });
});
