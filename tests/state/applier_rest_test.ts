// SPEC.md section 8: the materialised state applies every durable record, in batches, behind the
// writes. When the writes outrun a batch (the backlog grew while it applied), the apply rests before
// the next (a multiple of the time the batch took) so that its CPU goes to the writes; a `min_lsn`
// read and a stop end the rest. An apply that gains on the writes, or one past the yield bound,
// never rests. The rests here are an hour long, so a test that passed through one would hang.

import assert from "node:assert/strict";
import { STATE_APPLY_BATCH_RECORDS, STATE_APPLY_YIELD_LAG_MS } from "../../src/core/limits.ts";
import type { Spool } from "../../src/wal/spool.ts";
import type { StateApplier } from "../../src/state/applier.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { eventually, settledWithin } from "../helpers/stream_tap.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const WAIT_BOUND_MS = 10_000;
const HOUR_MS = 3_600_000;
/** Any batch that takes any time at all rests for the whole hour. */
const HOUR_REST = { ratio: HOUR_MS * 1000, maxMs: HOUR_MS };
/**
 * Records appended in one call: a group commit of them costs the spool a fraction of what applying
 * them costs the state, so writes made of such appends outrun the apply.
 */
const APPEND_RUN = 2000;

/** Appends `APPEND_RUN` records at a time until stopped: writes that outrun the apply. */
function keepWriting(spool: Spool): { stop: () => Promise<void> } {
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await spool.append(Array.from({ length: APPEND_RUN }, (_, j) => putPayload(`w${j}`, i)));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** Runs `body` while the writes outrun the apply and it has begun a rest. */
async function whileResting(
  body: (state: StateApplier, spool: Spool) => Promise<void>,
): Promise<void> {
  await withPrimary({}, async ({ spool, kv, clock }) => {
    const writes = keepWriting(spool);
    try {
      await withApplier({ spool, kv, clock: clock.read, rest: HOUR_REST }, async (state) => {
        await eventually("a rest between two batches", () => state.applyStatus().resting);
        await body(state, spool);
      });
    } finally {
      await writes.stop();
    }
  });
}

Deno.test("when the writes outrun a batch, the apply rests before the next; a min_lsn read ends the rest at once", async () => {
  await whileResting(async (state, spool) => {
    const applied = state.appliedLsn();
    const restedBefore = state.restedMs;
    await turns(5);
    assert.equal(state.appliedLsn(), applied, "nothing is applied during a rest");
    assert.ok(spool.currentLsn() > applied, "the writes went on meanwhile");
    const restedDuring = state.restedMs;
    assert.ok(restedDuring > restedBefore, "the rest under way counts as rested time");
    const head = spool.currentLsn();
    assert.ok(await state.waitApplied(head, { timeoutMs: WAIT_BOUND_MS }), "the read ended it");
    assert.ok(state.restedMs >= restedDuring, "an ended rest stays counted");
    assert.ok((await state.get("c", "w0")) !== undefined);
  });
});

Deno.test("stop() ends a rest at once", async () => {
  await whileResting(async (state) => {
    // A rest that ignored the stop would hold it for an hour.
    assert.equal((await settledWithin(state.stop())).outcome, "settled");
  });
});

Deno.test("an apply that gains on the writes never rests: a backlog of several batches is applied while a write comes", async () => {
  await withPrimary({}, async ({ spool, kv, clock }) => {
    // More than one batch's worth, in whole appends.
    const count = Math.ceil((STATE_APPLY_BATCH_RECORDS + 1) / APPEND_RUN) * APPEND_RUN;
    for (let lsn = 0; lsn < count; lsn += APPEND_RUN) {
      await spool.append(Array.from({ length: APPEND_RUN }, (_, i) => putPayload(`k${lsn + i}`)));
    }
    await withApplier({ spool, kv, clock: clock.read, rest: HOUR_REST }, async (state) => {
      // Appended while the first batch applies: writes came, but the backlog shrank. No read
      // waits: a rest after the first batch would last the hour.
      await spool.append([putPayload("late")]);
      await eventually("the backlog was applied", () => state.appliedLsn() === count + 1);
      assert.equal(state.applyStatus().resting, false);
      assert.equal(state.restedMs, 0, "it never rested");
    });
  });
});

Deno.test("past STATE_APPLY_YIELD_LAG_MS behind, the apply keeps up without rests while writes flow", async () => {
  await withPrimary({}, async ({ spool, kv, clock }) => {
    // The applier's clock runs past the bound ahead of the spool's: every record looks that old.
    const late = () => clock.read() + STATE_APPLY_YIELD_LAG_MS + 1000;
    await spool.append([putPayload("first")]);
    const writes = keepWriting(spool);
    try {
      await withApplier({ spool, kv, clock: late, rest: HOUR_REST }, async (state) => {
        await eventually("a first batch", () => state.appliedLsn() > 0);
        // Batch after batch while the writes go on: one rest would stop it short of the goal.
        const goal = spool.currentLsn() + 200;
        await eventually("the apply to follow the writes", () => state.appliedLsn() >= goal);
        assert.equal(state.applyStatus().resting, false);
      });
    } finally {
      await writes.stop();
    }
  });
});
