// SPEC.md 13.4, "Commit LSN": in a cluster the materialised state applies only records at or
// below the commit LSN (`applyUpTo`), so reads and snapshots never show what a failover could
// lose; it goes on when `capRaised()` says the cap rose. Waits end on events, never on time.

import assert from "node:assert/strict";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { eventually } from "../helpers/stream_tap.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const WAIT_BOUND_MS = 10_000;

Deno.test("a capped StateApplier applies up to its cap and goes on when capRaised() says it rose", async () => {
  await withPrimary({}, async ({ spool, kv }) => {
    for (let i = 1; i <= 5; i++) await spool.append([putPayload(`k${i}`)]);
    let cap = 2;
    let capReads = 0;
    const applyUpTo = () => {
      capReads += 1;
      return cap;
    };
    await withApplier({ spool, kv, applyUpTo }, async (state) => {
      assert.ok(await state.waitApplied(2, { timeoutMs: WAIT_BOUND_MS }));
      // Once it has read the cap again with nothing left under it, it is idle at the cap.
      const readsAtTwo = capReads;
      await eventually("the applier looked at its cap again", () => capReads >= readsAtTwo + 2);
      assert.equal(state.appliedLsn(), 2, "nothing past the cap");
      assert.equal((await state.get("c", "k2"))?.lsn, 2);
      assert.equal(await state.get("c", "k3"), undefined, "an uncommitted record is not readable");
      cap = 4;
      state.capRaised();
      assert.ok(await state.waitApplied(4, { timeoutMs: WAIT_BOUND_MS }));
      const readsAtFour = capReads;
      await eventually("the applier looked at its cap again", () => capReads >= readsAtFour + 2);
      assert.equal(state.appliedLsn(), 4, "again nothing past the cap");
      assert.equal(await state.get("c", "k5"), undefined);
      // A record appended above the cap waits too; raising the cap past it applies both.
      await spool.append([putPayload("k6")]);
      cap = 6;
      state.capRaised();
      assert.ok(await state.waitApplied(6, { timeoutMs: WAIT_BOUND_MS }));
      assert.equal((await state.get("c", "k6"))?.lsn, 6);
    });
  });
});

Deno.test("a cap at or above the current LSN applies every durable record, as without one", async () => {
  await withPrimary({}, async ({ spool, kv }) => {
    await withApplier({ spool, kv, applyUpTo: () => Number.MAX_SAFE_INTEGER }, async (state) => {
      for (let i = 1; i <= 3; i++) await spool.append([putPayload(`k${i}`)]);
      assert.ok(await state.waitApplied(3, { timeoutMs: WAIT_BOUND_MS }));
      assert.equal((await state.get("c", "k3"))?.lsn, 3);
    });
  });
});
