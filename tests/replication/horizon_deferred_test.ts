// SPEC.md section 4, invalidation by the lag and byte caps, read as PostgreSQL reads its own
// `max_slot_wal_keep_size`: a slot is lost only when WAL it needs would be removed. The primary's
// materialised state is a floor nothing invalidates, so a slot at or past the state's applied LSN
// retains nothing the state does not, and no cap invalidates it. Without this, a snapshot taken
// while the state lagged started its slot past the lag cap: invalidated at once, re-bootstrap
// after re-bootstrap until the state caught up.

import assert from "node:assert/strict";
import { appendRecords, withPrimary } from "../helpers/primary_fixture.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";
import { slotView } from "../../src/http/views.ts";

const WAIT_BOUND_MS = 10_000;
/** A backlog waits an hour to be applied, unless someone waits for it. */
const HOUR_MS = 3_600_000;
const LAG_CAP_RECORDS = 2;

Deno.test("a slot at the lagging state's floor outlives the lag cap until the state passes it", async () => {
  const logger = createMemoryLogger();
  let stateFloor = (): number => 0;
  const caps = { lagMaxRecords: LAG_CAP_RECORDS, retainedBytesMax: 0, idleTimeoutMs: 0 };
  const primary = { caps, stateFloor: () => stateFloor() };
  await withPrimary({ primary, logger }, async ({ primary, kv, slots }) => {
    await primary.append([putPayload("k1")]);
    await withApplier({ spool: primary.spool, kv, lingerMs: HOUR_MS }, async (state) => {
      stateFloor = () => state.appliedLsn();
      assert.ok(await state.waitApplied(1, { timeoutMs: WAIT_BOUND_MS }));
      await appendRecords(primary, 5); // LSN 2-6; the state lingers at 1
      assert.equal(state.appliedLsn(), 1, "the state lags the head by 5, past the cap of 2");
      await primary.pinSlot("snapshot-r1", 1); // where a snapshot taken now starts
      await primary.pinSlot("behind", 0); // a slot the state has passed
      for (let sweep = 0; sweep < 3; sweep++) primary.invalidateSlots();
      assert.equal(slots.get("snapshot-r1")!.invalidationReason, undefined);
      assert.equal(slots.get("behind")!.invalidationReason, "horizon");
      const deferred = logger.lines.filter((line) => line.event === "slot.horizon_deferred");
      assert.equal(deferred.length, 1, "said once, not once per sweep");
      assert.equal(deferred[0]!.replica_id, "snapshot-r1");
      assert.equal(deferred[0]!.state_applied_lsn, 1);
      const view = (id: string) => slotView(primary, slots.get(id)!);
      assert.equal(view("snapshot-r1").horizon_deferred, true, "status shows why it is kept");
      assert.equal(view("behind").horizon_deferred, false);
      // The state passes the slot: now the slot alone keeps WAL, and the cap applies.
      assert.ok(await state.waitApplied(6, { timeoutMs: WAIT_BOUND_MS }));
      primary.invalidateSlots();
      assert.equal(slots.get("snapshot-r1")!.invalidationReason, "horizon");
      assert.equal(view("snapshot-r1").horizon_deferred, false);
    });
  });
});
