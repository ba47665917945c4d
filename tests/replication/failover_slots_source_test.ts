// Failover slots on the primary's side (SPEC.md 13.4): a cluster leader's control records carry
// its edges' live slots, a plain primary's carry none; a standby's retention keeps the WAL the
// mirrored slots need; a new leader adopts them so an edge resumes partially.

import assert from "node:assert/strict";
import { decodeStreamRun } from "../../src/wal/stream_codec.ts";
import { adoptMirroredSlots } from "../../src/replication/failover_slots_source.ts";
import { appendRecords, SEGMENT_FILLING_PAYLOAD, withPrimary } from "../helpers/primary_fixture.ts";
import { StreamTap } from "../helpers/stream_tap.ts";
import type { Primary } from "../../src/replication/primary.ts";

const STREAM = { maxCount: 1000, maxBytes: 1 << 20 };

/** The control record a new stream of `replicaId` opens with. */
async function openingControl(primary: Primary, replicaId: string) {
  const opened = await primary.openStream({ replicaId, sinceLsn: 0, ...STREAM });
  const tap = new StreamTap(opened.body);
  const first = decodeStreamRun((await tap.chunk())!).items[0];
  await tap.cancel();
  assert.equal(first?.kind, "control");
  return first.kind === "control" ? first.control : undefined;
}

Deno.test("a cluster leader's control records carry its edges' live slots, not the members'", async () => {
  const options = { primary: { failoverSlots: true, members: new Set(["n2"]) } };
  await withPrimary(options, async ({ primary }) => {
    await appendRecords(primary, 3);
    primary.register("n2", { sinceLsn: 0 });
    primary.register("edge-b", { sinceLsn: 2, region: "eu" });
    primary.register("edge-a", { sinceLsn: 1 });
    primary.register("edge-c", { sinceLsn: 0 });
    const slot = primary.slots.get("edge-c")!;
    primary.slots.set({ ...slot, invalidationReason: "idle-timeout", invalidatedAtUnixMs: 1 });
    const control = await openingControl(primary, "n2");
    assert.deepEqual(control?.slots, [
      { id: "edge-a", restart_lsn: 1 },
      { id: "edge-b", restart_lsn: 2, region: "eu" },
    ]);
  });
});

Deno.test("a plain primary's control records carry no slots", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 2);
    primary.register("edge-a", { sinceLsn: 1 });
    const control = await openingControl(primary, "edge-a");
    assert.equal(control?.slots, undefined);
    assert.equal(primary.controlRecord().slots, undefined);
  });
});

Deno.test("retention never prunes past the extra floor (a standby's mirrored slots)", async () => {
  let floor = 3;
  const options = {
    spool: { segmentBytesMax: 4096 },
    primary: { pruneFloor: () => floor },
  };
  await withPrimary(options, async ({ primary, spool }) => {
    await appendRecords(primary, 8, SEGMENT_FILLING_PAYLOAD);
    await primary.runRetention();
    assert.ok(spool.oldestLsn() <= 4, `the records after LSN 3 stay (oldest ${spool.oldestLsn()})`);
    assert.ok(spool.oldestLsn() > 1, "what is below the floor is pruned");
    floor = Infinity;
    await primary.runRetention();
    assert.ok(spool.oldestLsn() > 4, "with no mirrored slot the floor is open");
  });
});

Deno.test("adoptMirroredSlots() creates live slots (members and existing ones skipped): the edge resumes partially", async () => {
  await withPrimary({ spool: { segmentBytesMax: 4096 } }, async ({ primary, clock }) => {
    await appendRecords(primary, 6, SEGMENT_FILLING_PAYLOAD);
    primary.register("edge-old", { sinceLsn: 5 });
    const adopted = await adoptMirroredSlots(primary.slots, [
      { id: "edge-a", restart_lsn: 3 },
      { id: "n2", restart_lsn: 1 },
      { id: "edge-old", restart_lsn: 2 },
    ], { members: new Set(["n2", "n1"]), timeline: primary.timeline, nowMs: clock.now });
    assert.deepEqual(adopted, ["edge-a"]);
    assert.equal(primary.slots.get("n2"), undefined);
    assert.equal(primary.slots.get("edge-old")?.restartLsn, 5, "an existing slot is kept");
    // Retention keeps what the adopted slot pins.
    await primary.runRetention();
    assert.ok(primary.spool.oldestLsn() <= 4);
    // The edge comes back at or after its restart LSN: served partially, not re-bootstrapped.
    const before = primary.counters().partialResyncTotal;
    assert.equal(primary.register("edge-a", { sinceLsn: 4 }).resumeLsn, 3);
    const pulled = await primary.pull({
      replicaId: "edge-a",
      sinceLsn: 4,
      maxCount: 10,
      maxBytes: 1 << 20,
      awaitTimeoutMs: 0,
    });
    assert.deepEqual(pulled.frames.map((frame) => frame.lsn), [5, 6]);
    assert.equal(primary.counters().partialResyncTotal, before + 1);
    assert.equal(primary.counters().fullResyncTotal, 0);
  });
});
