// SPEC.md section 4, slot rules: register, ack, touch, invalidation, retention floor.

import assert from "node:assert/strict";
import {
  ackSlot,
  invalidateSlot,
  invalidationFor,
  newSlot,
  retentionFloor,
  touchSlot,
} from "../../src/slots/slot.ts";

const caps = { lagMaxRecords: 100, retainedBytesMax: 1000, idleTimeoutMs: 60_000 };

Deno.test("newSlot() pins restart and every confirmed position at the start", () => {
  const slot = newSlot({ replicaId: "r1", timeline: 1, restartLsn: 7, nowMs: 5 });
  assert.deepEqual(
    [slot.restartLsn, slot.confirmedWriteLsn, slot.confirmedFlushLsn, slot.confirmedApplyLsn],
    [7, 7, 7, 7],
  );
  assert.equal(slot.active, true);
  assert.equal(slot.invalidationReason, undefined);
});

Deno.test("ackSlot(10, 8) gives restart 8, write 10, flush = apply = 8", () => {
  const slot = ackSlot(newSlot({ replicaId: "r", timeline: 1, restartLsn: 0, nowMs: 0 }), {
    appliedLsn: 10,
    durableLsn: 8,
    nowMs: 1,
  });
  assert.equal(slot.restartLsn, 8);
  assert.equal(slot.confirmedWriteLsn, 10);
  assert.equal(slot.confirmedFlushLsn, 8);
  assert.equal(slot.confirmedApplyLsn, 8);
  assert.equal(slot.lastSeenAtUnixMs, 1);
});

Deno.test("ackSlot() positions only rise: an older ack changes nothing", () => {
  const base = newSlot({ replicaId: "r", timeline: 1, restartLsn: 0, nowMs: 0 });
  const high = ackSlot(base, { appliedLsn: 50, durableLsn: 40, nowMs: 1 });
  const after = ackSlot(high, { appliedLsn: 10, durableLsn: 5, nowMs: 2 });
  assert.equal(after.restartLsn, 40);
  assert.equal(after.confirmedWriteLsn, 50);
});

Deno.test("an invalidated slot ignores acks and touches, and stays invalidated", () => {
  const dead = invalidateSlot(
    newSlot({ replicaId: "r", timeline: 1, restartLsn: 3, nowMs: 0 }),
    "horizon",
    9,
  );
  assert.equal(dead.active, false);
  assert.equal(dead.invalidatedAtUnixMs, 9);
  assert.equal(ackSlot(dead, { appliedLsn: 50, durableLsn: 50, nowMs: 10 }), dead);
  assert.equal(touchSlot(dead, 10), dead);
  assert.equal(invalidateSlot(dead, "idle-timeout", 11).invalidationReason, "horizon");
});

Deno.test("invalidationFor() gives horizon past the lag cap or the byte cap, idle-timeout past idleness", () => {
  const slot = newSlot({ replicaId: "r", timeline: 1, restartLsn: 10, nowMs: 0 });
  assert.equal(
    invalidationFor(slot, { headLsn: 110, retainedBytes: 0, nowMs: 0 }, caps),
    undefined,
  );
  assert.equal(
    invalidationFor(slot, { headLsn: 111, retainedBytes: 0, nowMs: 0 }, caps),
    "horizon",
  );
  assert.equal(
    invalidationFor(slot, { headLsn: 10, retainedBytes: 1001, nowMs: 0 }, caps),
    "horizon",
  );
  assert.equal(
    invalidationFor(slot, { headLsn: 10, retainedBytes: 0, nowMs: 60_001 }, caps),
    "idle-timeout",
  );
  const off = { lagMaxRecords: 0, retainedBytesMax: 0, idleTimeoutMs: 0 };
  assert.equal(
    invalidationFor(slot, { headLsn: 1e9, retainedBytes: 1e12, nowMs: 1e12 }, off),
    undefined,
  );
});

Deno.test("invalidationFor() leaves a slot past a cap live while the state's floor keeps its WAL anyway", () => {
  const slot = newSlot({ replicaId: "r", timeline: 1, restartLsn: 10, nowMs: 0 });
  const pastBoth = { headLsn: 500, retainedBytes: 5000, nowMs: 0 };
  // The state has applied through 10 or less: the WAL after 10 stays whatever becomes of the slot.
  for (const keptAfterLsn of [0, 9, 10]) {
    assert.equal(invalidationFor(slot, { ...pastBoth, keptAfterLsn }, caps), undefined);
  }
  // The state is past the slot: the slot alone keeps the WAL after 10, and the caps apply.
  assert.equal(invalidationFor(slot, { ...pastBoth, keptAfterLsn: 11 }, caps), "horizon");
  assert.equal(invalidationFor(slot, pastBoth, caps), "horizon", "no floor: the caps apply");
  // Idleness is not about retention: it applies whatever the state's floor.
  assert.equal(
    invalidationFor(slot, { ...pastBoth, nowMs: 60_001, keptAfterLsn: 0 }, caps),
    "idle-timeout",
  );
});

Deno.test("retentionFloor() is the smallest restart over live slots only", () => {
  const a = ackSlot(newSlot({ replicaId: "a", timeline: 1, restartLsn: 0, nowMs: 0 }), {
    appliedLsn: 5,
    durableLsn: 5,
    nowMs: 0,
  });
  const b = ackSlot(newSlot({ replicaId: "b", timeline: 1, restartLsn: 0, nowMs: 0 }), {
    appliedLsn: 3,
    durableLsn: 2,
    nowMs: 0,
  });
  assert.equal(retentionFloor([a, b]), 2);
  assert.equal(retentionFloor([a, invalidateSlot(b, "horizon", 0)]), 5);
  assert.equal(retentionFloor([]), undefined);
});
