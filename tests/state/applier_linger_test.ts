// SPEC.md section 8: the materialised state applies every durable record, in batches. A small
// backlog lingers so that one KV commit covers many group commits; a `min_lsn` read must never
// wait for that linger, and a commit's worth of records does not linger at all. The linger here is
// an hour, so a test that passed through it would hang, not pass.

import assert from "node:assert/strict";
import { StateApplier } from "../../src/state/applier.ts";
import { STATE_APPLY_LINGER_BELOW_RECORDS } from "../../src/core/limits.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { eventually, settledWithin } from "../helpers/stream_tap.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const WAIT_BOUND_MS = 10_000;
const HOUR_MS = 3_600_000;

Deno.test("a min_lsn read ends the linger of a small backlog: it is applied at once", async () => {
  await withPrimary({}, async ({ spool, kv }) => {
    for (let i = 1; i <= 3; i++) await spool.append([putPayload(`k${i}`)]);
    await withApplier({ spool, kv, lingerMs: HOUR_MS }, async (state) => {
      // Some turns of the event loop: the backlog lingers, nothing is applied.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(state.appliedLsn(), 0);
      assert.ok(await state.waitApplied(3, { timeoutMs: WAIT_BOUND_MS }), "the read ended it");
      assert.equal((await state.get("c", "k3"))?.lsn, 3);
      // A read already waiting when the next backlog arrives: no linger at all.
      const held = state.waitApplied(4, { timeoutMs: WAIT_BOUND_MS });
      await spool.append([putPayload("k4")]);
      assert.ok(await held);
    });
  });
});

Deno.test("a backlog of a commit's worth is applied without lingering", async () => {
  await withPrimary({}, async ({ spool, kv }) => {
    const count = STATE_APPLY_LINGER_BELOW_RECORDS;
    const payloads = Array.from({ length: count }, (_, i) => putPayload(`k${i}`));
    await spool.append(payloads);
    await withApplier({ spool, kv, lingerMs: HOUR_MS }, async (state) => {
      // No read waits: only the size of the backlog can make it apply within the hour.
      await eventually("the backlog was applied", () => state.appliedLsn() === count);
    });
  });
});

Deno.test("stop() ends a linger at once", async () => {
  await withPrimary({}, async ({ spool, kv }) => {
    await spool.append([putPayload("k1")]);
    const state = await StateApplier.open({ spool, kv, lingerMs: HOUR_MS });
    state.start();
    await new Promise((resolve) => setTimeout(resolve, 1));
    // A linger that ignored the stop would hold it for an hour.
    assert.equal((await settledWithin(state.stop())).outcome, "settled");
  });
});
