// Defects a review found in the replication core, each pinned by the rule it broke: a durable write
// is never answered as failed (SPEC.md 6, 9.2), a replica with a pull open is seen (section 5),
// acks and registrations agree with commit waits, and capacity comes back.

import assert from "node:assert/strict";
import { NotFoundError, OverloadedError } from "../../src/core/errors.ts";
import { REPLICAS_MAX } from "../../src/core/limits.ts";
import { CommitWaiter } from "../../src/replication/commit_waiter.ts";
import { statusView } from "../../src/http/views.ts";
import { segmentFileName } from "../../src/wal/segment.ts";
import {
  appendRecords,
  replicaOf,
  SEGMENT_FILLING_PAYLOAD,
  withPrimary,
} from "../helpers/primary_fixture.ts";

const ackOne = { kind: "ack_n" as const, n: 1 };
const PAYLOAD = new TextEncoder().encode('{"op":"put","collection":"c","key":"k","value":1}');
/** Long enough never to pass in a passing test. */
const HELD_MS = 60_000;

Deno.test("a write that cannot wait is refused before it is durable, never after", async () => {
  await withPrimary(
    { primary: { waiter: new CommitWaiter({ waitsMax: 1 }) } },
    async ({ primary, spool }) => {
      primary.register("r1");
      const controller = new AbortController();
      const held = primary.append([PAYLOAD], {
        policy: ackOne,
        timeoutMs: HELD_MS,
        signal: controller.signal,
      });
      // The held write is durable (its wait holds the one place) before the next one comes.
      await spool.waitForAppend(0, { timeoutMs: HELD_MS });
      const before = spool.currentLsn();
      await assert.rejects(
        primary.append([PAYLOAD], { policy: ackOne, timeoutMs: HELD_MS }),
        OverloadedError,
      );
      assert.equal(spool.currentLsn(), before, "the refused write was not appended");
      controller.abort();
      assert.equal((await held).commit.outcome, "timed_out");
      const local = await primary.append([PAYLOAD]);
      assert.equal(local.lastLsn, before + 1, "writes that do not wait are not held back");
    },
  );
});

Deno.test("a replica with a pull held open stays healthy past the health window", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    primary.register("r1");
    const epoch = primary.epoch.value;
    const partial = primary.counters().partialResyncTotal;
    const controller = new AbortController();
    const pull = primary.pull({
      replicaId: "r1",
      maxCount: 10,
      maxBytes: 1 << 20,
      awaitTimeoutMs: HELD_MS,
      signal: controller.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    for (let i = 0; i < 12; i++) {
      clock.advance(25_000);
      primary.sweepHealth();
    }
    assert.equal(replicaOf(primary, "r1")!.healthy, true, "an open pull counts as seen");
    assert.equal(primary.epoch.value, epoch, "no health flips");
    controller.abort();
    await pull;
    assert.equal(primary.counters().partialResyncTotal, partial + 1, "one resume, no more");
    clock.advance(6_000);
    primary.sweepHealth();
    assert.equal(replicaOf(primary, "r1")!.healthy, false, "gone quiet, it turns unhealthy");
  });
});

Deno.test("an ack without durable_lsn reports applied only: no durable position moves", async () => {
  await withPrimary({}, async ({ primary, slots }) => {
    await appendRecords(primary, 5);
    primary.register("r1");
    const state = primary.ack("r1", { appliedLsn: 5 });
    assert.equal(state.lastAckedLsn, 5);
    assert.equal(state.lastDurableLsn, 0);
    assert.equal(slots.get("r1")!.restartLsn, 0, "the slot keeps its WAL");
    const write = await primary.append([PAYLOAD], { policy: ackOne, timeoutMs: 0 });
    assert.equal(write.commit.outcome, "timed_out", "an applied-only ack makes nothing durable");
    assert.equal(primary.waiter.watermark(1), 0);
  });
});

Deno.test("a re-registered replica counts in commit waits from its durable position", async () => {
  await withPrimary(
    { primary: { commitPolicyFloor: { kind: "regions", regions: ["eu"] } } },
    async ({ primary, spool }) => {
      // Straight to the spool: through the primary each write would wait for the floor.
      for (let i = 0; i < 10; i++) await spool.append([PAYLOAD]);
      primary.register("r1", { region: "eu" });
      primary.ack("r1", { appliedLsn: 10, durableLsn: 10 });
      assert.ok(primary.unregister("r1"));
      primary.register("r1", { region: "eu" });
      assert.equal(primary.waiter.watermark(1), 10, "the waiter starts where the replica stands");
      assert.equal(primary.commitWatermark(), 10, "regions reads the same positions");
      const reached = await primary.waiter.wait(10, ackOne, { timeoutMs: 0 });
      assert.equal(reached.outcome, "reached");
    },
  );
});

Deno.test("an unregistered replica's ack is refused until it registers again", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 3);
    primary.register("r1");
    primary.unregister("r1");
    assert.throws(() => primary.ack("r1", { appliedLsn: 3, durableLsn: 3 }), NotFoundError);
    assert.equal(replicaOf(primary, "r1"), undefined, "the unregister holds");
    assert.equal(primary.waiter.registeredCount(), 0);
  });
});

Deno.test("invalidated slots are reclaimed after the grace period and their replicas forgotten", async () => {
  const graceMs = 60_000;
  await withPrimary(
    {
      primary: {
        caps: { lagMaxRecords: 0, retainedBytesMax: 0, idleTimeoutMs: 1000 },
        slotReclaimAfterMs: graceMs,
      },
    },
    async ({ primary, slots, clock }) => {
      // Edge replicas that come and go under new ids fill every place once.
      for (let i = 0; i < REPLICAS_MAX; i++) primary.register(`edge-${i}`);
      assert.throws(() => primary.register("one-more"), OverloadedError);
      clock.advance(2000);
      await primary.runRetention();
      assert.equal(slots.get("edge-0")!.invalidationReason, "idle-timeout");
      assert.throws(() => primary.register("one-more"), OverloadedError, "grace not over yet");
      clock.advance(graceMs);
      await primary.runRetention();
      assert.equal(slots.size, 0, "every invalidated slot was reclaimed");
      primary.sweepHealth();
      assert.equal(primary.replicas().length, 0, "unhealthy replicas with no slot are forgotten");
      assert.equal(primary.register("one-more").resumeLsn, 0, "a new replica finds room");
    },
  );
});

Deno.test("lag comes from memory: a damaged sealed segment breaks no status, topology or lag", async () => {
  await withPrimary(
    { spool: { segmentBytesMax: 4096, tailBytesMax: 0 } },
    async ({ primary, spool, clock }) => {
      primary.register("r1");
      for (let i = 0; i < 4; i++) {
        await primary.append([SEGMENT_FILLING_PAYLOAD]);
        clock.advance(1000);
      }
      const first = spool.segments()[0]!;
      const path = `${spool.dir}/${segmentFileName(first.firstLsn)}`;
      const bytes = await Deno.readFile(path);
      bytes[bytes.byteLength >> 1]! ^= 0x10;
      await Deno.writeFile(path, bytes);
      const replica = replicaOf(primary, "r1")!;
      assert.equal(primary.lagMs(replica), 4000, "the age of LSN 1, from the append times");
      assert.equal(primary.topology({ includeReplicas: true }).replicas[0]!.lag_ms, 4000);
      const status = statusView(primary, { appliedLsn: 0, commitPolicy: { kind: "local" } });
      assert.equal((status.replicas as Array<{ lag_ms: number }>)[0]!.lag_ms, 4000);
    },
  );
});
