import assert from "node:assert/strict";
import {
  capAtFork,
  mirroredPruneFloor,
  parseMirroredSlots,
  parseSlotsDocument,
  slotsDocument,
  SlotsDocumentThrottle,
} from "../../src/cluster/failover_slots.ts";

const SLOTS = [{ id: "edge-1", restart_lsn: 120 }, { id: "edge-2", restart_lsn: 80 }];

Deno.test("mirroredPruneFloor() is the lowest mirrored restart LSN, open when none", () => {
  assert.equal(mirroredPruneFloor(SLOTS), 80);
  assert.equal(mirroredPruneFloor([]), Infinity);
});

Deno.test("capAtFork() keeps no slot past the new leader's fork", () => {
  assert.deepEqual(capAtFork(SLOTS, 100), [
    { id: "edge-1", restart_lsn: 100 },
    { id: "edge-2", restart_lsn: 80 },
  ]);
});

Deno.test("slotsDocument() carries the term, the time and the slots", () => {
  assert.deepEqual(JSON.parse(slotsDocument(SLOTS, { term: 3, writtenAtUnixMs: 5 })), {
    term: 3,
    written_at_unix_ms: 5,
    slots: SLOTS,
  });
});

Deno.test("SlotsDocumentThrottle writes a change at once, then at most once per interval", () => {
  const throttle = new SlotsDocumentThrottle(10_000);
  assert.equal(throttle.shouldWrite(SLOTS, 0), true);
  assert.equal(throttle.shouldWrite(SLOTS, 20_000), false, "nothing changed");
  const moved = [{ id: "edge-1", restart_lsn: 130 }, SLOTS[1]!];
  assert.equal(throttle.shouldWrite(moved, 25_000), true);
  const movedAgain = [{ id: "edge-1", restart_lsn: 140 }, SLOTS[1]!];
  assert.equal(throttle.shouldWrite(movedAgain, 30_000), false, "within 10 s of the last write");
  assert.equal(throttle.shouldWrite(movedAgain, 35_000), true);
  // A day of slots moving every second is one write per interval: 8 640 writes, not 86 400.
  const day = new SlotsDocumentThrottle(10_000);
  let writes = 0;
  for (let s = 0; s < 86_400; s++) {
    if (day.shouldWrite([{ id: "e", restart_lsn: s }], s * 1000)) writes++;
  }
  assert.equal(writes, 8_640);
});

Deno.test("parseMirroredSlots() keeps the well-formed entries only", () => {
  assert.deepEqual(
    parseMirroredSlots([
      { id: "edge-1", restart_lsn: 4, region: "eu" },
      { id: "edge-2", restart_lsn: -1 },
      { id: "", restart_lsn: 1 },
      { id: "edge-3", restart_lsn: 1, region: 3 },
      42,
    ]),
    [{ id: "edge-1", restart_lsn: 4, region: "eu" }],
  );
  assert.deepEqual(parseMirroredSlots({ id: "edge-1" }), []);
});

Deno.test("parseSlotsDocument() reads slotsDocument(), none from a missing or malformed one", () => {
  assert.deepEqual(
    parseSlotsDocument(slotsDocument(SLOTS, { term: 2, writtenAtUnixMs: 1 })),
    SLOTS,
  );
  assert.deepEqual(parseSlotsDocument(undefined), []);
  assert.deepEqual(parseSlotsDocument("{not json"), []);
  assert.deepEqual(parseSlotsDocument("null"), []);
});
