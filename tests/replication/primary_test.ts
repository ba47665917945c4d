// SPEC.md sections 4 to 7 through the Primary: registry, slots, retention, resume planning and its
// counters, progress, topology epoch, and writes with commit policies. Real files and Deno KV.

import assert from "node:assert/strict";
import {
  BadRequestError,
  NotFoundError,
  RebootstrapRequiredError,
  TermMismatchError,
} from "../../src/core/errors.ts";
import {
  appendRecords,
  replicaOf,
  SEGMENT_FILLING_PAYLOAD,
  withPrimary,
} from "../helpers/primary_fixture.ts";
import type { Primary } from "../../src/replication/primary.ts";
import { decodeCatalog } from "../../src/slots/catalog.ts";
import { CATALOG_FILE_NAME } from "../../src/slots/slot_store.ts";
import { joinPath } from "../../src/core/files.ts";

/** Waits (bounded) until the spool holds `lsn`, so an ack of it is not beyond the head. */
async function durable(primary: Primary, lsn: number): Promise<void> {
  for (let i = 0; i < 1000 && primary.spool.currentLsn() < lsn; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  assert.ok(primary.spool.currentLsn() >= lsn, `LSN ${lsn} became durable`);
}

const smallSegments = { spool: { segmentBytesMax: 4096, tailBytesMax: 0 } };

function pullOptions(replicaId: string | undefined, sinceLsn?: number) {
  return { replicaId, sinceLsn, maxCount: 1000, maxBytes: 1 << 20, awaitTimeoutMs: 0 };
}

Deno.test("register() again keeps the LSNs, does not duplicate, and returns restart_lsn (40 after ack(40, 40))", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 50);
    assert.equal(primary.register("r1").resumeLsn, 0);
    primary.ack("r1", { appliedLsn: 40, durableLsn: 40 });
    const epoch = primary.epoch.value;
    const again = primary.register("r1");
    assert.equal(again.resumeLsn, 40);
    assert.equal(again.currentLsn, 50);
    assert.equal(primary.replicas().length, 1);
    assert.equal(replicaOf(primary, "r1")!.lastAckedLsn, 40);
    assert.equal(primary.epoch.value, epoch, "a reconnect does not move the epoch");
  });
});

Deno.test("a slot survives restart: ack(10, 8) gives restart 8, confirmed 10, flush = apply = 8", async () => {
  await withPrimary({}, async (fixture) => {
    await appendRecords(fixture.primary, 12);
    fixture.primary.register("r1");
    fixture.primary.ack("r1", { appliedLsn: 10, durableLsn: 8 });
    const restarted = await fixture.restart();
    const slot = restarted.slots.get("r1")!;
    assert.equal(slot.restartLsn, 8);
    assert.equal(slot.confirmedWriteLsn, 10);
    assert.equal(slot.confirmedFlushLsn, 8);
    assert.equal(slot.confirmedApplyLsn, 8);
    assert.equal(slot.active, true);
    assert.equal(restarted.primary.register("r1").resumeLsn, 8);
  });
});

Deno.test("the floor follows the slowest slot: acks (5,5) and (3,2) give floor 2, a prune through 6 keeps 3..6", async () => {
  await withPrimary(smallSegments, async ({ primary, spool, slots }) => {
    await appendRecords(primary, 6, SEGMENT_FILLING_PAYLOAD);
    primary.register("fast");
    primary.register("slow");
    primary.ack("fast", { appliedLsn: 5, durableLsn: 5 });
    primary.ack("slow", { appliedLsn: 3, durableLsn: 2 });
    await slots.flushNow();
    assert.equal(slots.persistedFloor(), 2);
    await primary.pruneThrough(6);
    assert.equal(spool.oldestLsn(), 3);
    const frames = await spool.readSince(2, 100, 1 << 20);
    assert.deepEqual(frames.map((f) => f.lsn), [3, 4, 5, 6]);
  });
});

Deno.test("pruneThrough() persists pending slot changes before it prunes", async () => {
  await withPrimary({ ...smallSegments, flushIntervalMs: 60_000 }, async (fixture) => {
    await appendRecords(fixture.primary, 6, SEGMENT_FILLING_PAYLOAD);
    fixture.primary.register("r1");
    await fixture.slots.flushNow();
    fixture.primary.ack("r1", { appliedLsn: 5, durableLsn: 5 }); // in memory only, for a minute
    await fixture.primary.pruneThrough(6);
    assert.equal(fixture.spool.oldestLsn(), 6);
    // What a crash right now would reload (the catalog as persisted, read without closing
    // anything) pins exactly what was kept.
    const persisted = decodeCatalog(Deno.readFileSync(joinPath(fixture.dir, CATALOG_FILE_NAME)));
    assert.equal(persisted.slots.find((s) => s.replicaId === "r1")!.restartLsn, 5);
  });
});

Deno.test("a lag cap of 3 invalidates the slow slot (horizon) and releases the floor", async () => {
  await withPrimary(
    {
      ...smallSegments,
      primary: { caps: { lagMaxRecords: 3, retainedBytesMax: 0, idleTimeoutMs: 0 } },
    },
    async ({ primary, spool, slots }) => {
      primary.register("fast");
      primary.register("slow");
      await appendRecords(primary, 10, SEGMENT_FILLING_PAYLOAD);
      primary.ack("fast", { appliedLsn: 9, durableLsn: 9 });
      primary.ack("slow", { appliedLsn: 2, durableLsn: 2 });
      await primary.runRetention();
      const slow = slots.get("slow")!;
      assert.equal(slow.invalidationReason, "horizon");
      assert.equal(slots.get("fast")!.invalidationReason, undefined);
      assert.equal(spool.oldestLsn(), 10, "the floor is now the fast slot's restart (9)");
      assert.equal(primary.counters().invalidations.horizon, 1);
    },
  );
});

Deno.test("a byte cap invalidates a slot retaining too much WAL", async () => {
  await withPrimary(
    {
      ...smallSegments,
      primary: { caps: { lagMaxRecords: 0, retainedBytesMax: 3 * 4200, idleTimeoutMs: 0 } },
    },
    async ({ primary, slots }) => {
      primary.register("r1");
      await appendRecords(primary, 5, SEGMENT_FILLING_PAYLOAD);
      await primary.runRetention();
      assert.equal(slots.get("r1")!.invalidationReason, "horizon");
    },
  );
});

Deno.test("an idle slot is invalidated with idle-timeout", async () => {
  await withPrimary(
    { primary: { caps: { lagMaxRecords: 0, retainedBytesMax: 0, idleTimeoutMs: 60_000 } } },
    async ({ primary, slots, clock }) => {
      primary.register("r1");
      clock.advance(60_001);
      await primary.runRetention();
      assert.equal(slots.get("r1")!.invalidationReason, "idle-timeout");
    },
  );
});

Deno.test("resuming from an LSN whose records were pruned invalidates the slot with wal-removed", async () => {
  await withPrimary(smallSegments, async ({ primary, spool, slots }) => {
    await appendRecords(primary, 6, SEGMENT_FILLING_PAYLOAD);
    primary.register("r1", { sinceLsn: 6 });
    await spool.pruneThrough(4);
    await assert.rejects(
      () => primary.pull(pullOptions("r1", 2)),
      (error: RebootstrapRequiredError) => error.details.invalidation_reason === "wal-removed",
    );
    assert.equal(slots.get("r1")!.invalidationReason, "wal-removed");
  });
});

Deno.test("a blip resumes by partial resync from the declared since_lsn, or from restart_lsn", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 20);
    primary.register("r1");
    primary.ack("r1", { appliedLsn: 12, durableLsn: 12 });
    const declared = await primary.pull(pullOptions("r1", 15));
    assert.equal(declared.startLsn, 15);
    assert.equal(declared.frames[0]!.lsn, 16);
    primary.register("r1"); // a reconnect
    const fromSlot = await primary.pull(pullOptions("r1"));
    assert.equal(fromSlot.startLsn, 12);
    assert.equal(fromSlot.frames[0]!.lsn, 13);
    assert.equal(primary.counters().partialResyncTotal, 2);
    assert.equal(primary.counters().fullResyncTotal, 0);
  });
});

Deno.test("a new replica declaring since_lsn 0 while LSN 1 is pruned must bootstrap from a snapshot, never the head", async () => {
  await withPrimary(smallSegments, async ({ primary, spool, slots }) => {
    await appendRecords(primary, 6, SEGMENT_FILLING_PAYLOAD);
    await spool.pruneThrough(3);
    await assert.rejects(
      () => primary.pull(pullOptions("newbie", 0)),
      (error: RebootstrapRequiredError) => {
        assert.equal(error.code, "rebootstrap_required");
        assert.equal(error.details.invalidation_reason, "wal-removed");
        assert.equal(error.details.snapshot_url, "/v1/snapshot");
        assert.equal(error.details.oldest_lsn, 4);
        return true;
      },
    );
    assert.throws(() => primary.register("newbie2", { sinceLsn: 0 }), RebootstrapRequiredError);
    assert.equal(slots.get("newbie"), undefined, "no slot at the head");
    assert.equal(slots.get("newbie2"), undefined);
  });
});

Deno.test("past the cap a pull is a full re-bootstrap and bumps only the full counter", async () => {
  await withPrimary(
    { primary: { caps: { lagMaxRecords: 3, retainedBytesMax: 0, idleTimeoutMs: 0 } } },
    async ({ primary }) => {
      primary.register("r1");
      await appendRecords(primary, 10);
      primary.invalidateSlots();
      const before = primary.counters();
      await assert.rejects(
        () => primary.pull(pullOptions("r1")),
        (error: RebootstrapRequiredError) => error.details.invalidation_reason === "horizon",
      );
      const after = primary.counters();
      assert.equal(after.fullResyncTotal, before.fullResyncTotal + 1);
      assert.equal(after.partialResyncTotal, before.partialResyncTotal);
    },
  );
});

Deno.test("a steady-state pull bumps neither counter", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 5);
    await primary.pull(pullOptions("r1", 0)); // the first pull after (implicit) register
    const before = primary.counters();
    for (let since = 1; since < 5; since++) await primary.pull(pullOptions("r1", since));
    assert.deepEqual(primary.counters(), before);
  });
});

Deno.test("a pull after the replica was unhealthy counts as a partial resync", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    await appendRecords(primary, 5);
    await primary.pull(pullOptions("r1", 0));
    clock.advance(10_000);
    primary.sweepHealth();
    assert.equal(replicaOf(primary, "r1")!.healthy, false);
    await primary.pull(pullOptions("r1", 5));
    assert.equal(primary.counters().partialResyncTotal, 2);
    assert.equal(replicaOf(primary, "r1")!.healthy, true);
  });
});

Deno.test("progress: lag = max sent - min acked (120 - 70 = 50), safe replay = min durable (60)", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 120);
    assert.equal(primary.progress(), undefined);
    await primary.pull({ ...pullOptions("a", 0), maxCount: 120 });
    await primary.pull({ ...pullOptions("b", 0), maxCount: 100 });
    primary.ack("a", { appliedLsn: 100, durableLsn: 60 });
    primary.ack("b", { appliedLsn: 70, durableLsn: 70 });
    assert.deepEqual(primary.progress(), { lagLsn: 50, safeReplayLsn: 60 });
  });
});

Deno.test("the topology epoch rises on register, unregister, rebootstrapping and health flips, not on reconnect", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    let epoch = primary.epoch.value;
    const rises = (what: string) => {
      assert.ok(primary.epoch.value > epoch, `${what} moves the epoch`);
      epoch = primary.epoch.value;
    };
    primary.register("r1");
    rises("register");
    primary.register("r1");
    await primary.pull(pullOptions("r1", 0));
    primary.ack("r1", { appliedLsn: 0 });
    assert.equal(primary.epoch.value, epoch, "reconnects, pulls and acks do not");
    primary.setRebootstrapping("r1", true);
    rises("rebootstrapping on");
    primary.setRebootstrapping("r1", true);
    assert.equal(primary.epoch.value, epoch, "no change, no move");
    primary.setRebootstrapping("r1", false);
    rises("rebootstrapping off");
    clock.advance(6000);
    primary.sweepHealth();
    rises("turning unhealthy");
    primary.register("r1");
    rises("turning healthy again");
    assert.equal(primary.unregister("r1"), true);
    rises("unregister");
    assert.equal(primary.unregister("r1"), false);
    assert.equal(primary.epoch.value, epoch, "unregistering an unknown id does not");
  });
});

Deno.test("lag_ms is the age of the oldest record the replica has not acked, 0 when caught up", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    primary.register("r1");
    await appendRecords(primary, 3);
    clock.advance(1500);
    await appendRecords(primary, 2);
    clock.advance(500);
    assert.equal(await primary.lagMs(replicaOf(primary, "r1")!), 2000);
    primary.ack("r1", { appliedLsn: 3 });
    assert.equal(await primary.lagMs(replicaOf(primary, "r1")!), 500);
    primary.ack("r1", { appliedLsn: 5 });
    assert.equal(await primary.lagMs(replicaOf(primary, "r1")!), 0);
  });
});

Deno.test("ack() refuses an LSN beyond the head and an unknown replica, and changes nothing", async () => {
  await withPrimary({}, async ({ primary, slots }) => {
    await appendRecords(primary, 3);
    primary.register("r1");
    assert.throws(() => primary.ack("r1", { appliedLsn: 4 }), BadRequestError);
    assert.throws(() => primary.ack("ghost", { appliedLsn: 1 }), NotFoundError);
    assert.equal(slots.get("r1")!.restartLsn, 0);
    assert.equal(slots.get("ghost"), undefined);
  });
});

Deno.test("an invalidated slot ignores acks", async () => {
  await withPrimary(
    { primary: { caps: { lagMaxRecords: 1, retainedBytesMax: 0, idleTimeoutMs: 0 } } },
    async ({ primary, slots }) => {
      primary.register("r1");
      await appendRecords(primary, 5);
      primary.invalidateSlots();
      primary.ack("r1", { appliedLsn: 5 });
      assert.equal(slots.get("r1")!.restartLsn, 0);
      assert.equal(slots.get("r1")!.invalidationReason, "horizon");
    },
  );
});

Deno.test("pull() fences terms: older is stale_term, newer is term_ahead", async () => {
  await withPrimary({}, async ({ primary }) => {
    await assert.rejects(
      () => primary.pull({ ...pullOptions("r1", 0), term: 0 }),
      TermMismatchError,
    );
    await assert.rejects(
      () => primary.pull({ ...pullOptions("r1", 0), term: 2 }),
      (error: TermMismatchError) => error.code === "term_ahead",
    );
  });
});

Deno.test("a held pull returns the record appended while it waits", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 2);
    const held = primary.pull({ ...pullOptions("r1", 2), awaitTimeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await appendRecords(primary, 1);
    const result = await held;
    assert.deepEqual(result.frames.map((f) => f.lsn), [3]);
    assert.equal(replicaOf(primary, "r1")!.lastSentLsn, 3);
  });
});

Deno.test("a write with ack_n=1 is reached once a replica acks it durably", async () => {
  await withPrimary({}, async ({ primary }) => {
    primary.register("r1", { region: "eu" });
    const payload = new TextEncoder().encode("{}");
    const writing = primary.append([payload], {
      policy: { kind: "ack_n", n: 1 },
      timeoutMs: 10_000,
    });
    await durable(primary, 1); // the ack may not run ahead of the write
    primary.ack("r1", { appliedLsn: 1, durableLsn: 1 });
    const result = await writing;
    assert.equal(result.firstLsn, 1);
    assert.equal(result.commit.outcome, "reached");
    assert.deepEqual(result.commit.durableReplicas, ["r1"]);
    assert.deepEqual(result.commit.regions, ["eu"]);
  });
});

Deno.test("a write with ack_n=1 and no replica times out, and the record stays readable", async () => {
  await withPrimary({}, async ({ primary, spool }) => {
    const payload = new TextEncoder().encode("{}");
    const result = await primary.append([payload], {
      policy: { kind: "ack_n", n: 1 },
      timeoutMs: 20,
    });
    assert.equal(result.commit.outcome, "timed_out");
    assert.equal((await spool.readSince(0, 10, 1 << 20)).length, 1);
  });
});

Deno.test("unregistering a replica frees a waiting quorum write at once", async () => {
  await withPrimary({}, async ({ primary }) => {
    primary.register("a");
    primary.register("b");
    const writing = primary.append([new TextEncoder().encode("{}")], {
      policy: { kind: "quorum" },
      timeoutMs: 60_000,
    });
    await durable(primary, 1); // the ack may not run ahead of the write
    primary.ack("a", { appliedLsn: 1, durableLsn: 1 });
    primary.unregister("b");
    assert.equal((await writing).commit.outcome, "reached");
  });
});

Deno.test("an invalidated replica is removed from every wait at once", async () => {
  await withPrimary(
    { primary: { caps: { lagMaxRecords: 2, retainedBytesMax: 0, idleTimeoutMs: 0 } } },
    async ({ primary }) => {
      primary.register("a");
      primary.register("b");
      await appendRecords(primary, 5);
      primary.ack("a", { appliedLsn: 5, durableLsn: 5 });
      const writing = primary.append([new TextEncoder().encode("{}")], {
        policy: { kind: "quorum" },
        timeoutMs: 60_000,
      });
      await durable(primary, 6); // the ack may not run ahead of the write
      primary.ack("a", { appliedLsn: 6, durableLsn: 6 });
      primary.invalidateSlots(); // b is 6 behind with a cap of 2
      assert.equal((await writing).commit.outcome, "reached");
    },
  );
});

Deno.test("a per-request policy weaker than the floor is refused before anything is written", async () => {
  await withPrimary(
    { primary: { commitPolicyFloor: { kind: "ack_n", n: 2 } } },
    async ({ primary, spool }) => {
      await assert.rejects(
        () => primary.append([new TextEncoder().encode("{}")], { policy: { kind: "local" } }),
        BadRequestError,
      );
      assert.equal(spool.currentLsn(), 0);
    },
  );
});

Deno.test("the retention timer keeps the spool bounded with one slow replica capped by lag", async () => {
  await withPrimary(
    {
      ...smallSegments,
      primary: {
        caps: { lagMaxRecords: 5, retainedBytesMax: 0, idleTimeoutMs: 0 },
        retentionIntervalMs: 10,
      },
    },
    async ({ primary, spool, slots }) => {
      primary.register("slow");
      primary.start();
      await appendRecords(primary, 30, SEGMENT_FILLING_PAYLOAD);
      // Wait (bounded) for the timer to act; no timing is asserted.
      for (let i = 0; i < 500 && spool.oldestLsn() < 30; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(slots.get("slow")!.invalidationReason, "horizon");
      assert.equal(spool.oldestLsn(), 30, "everything but the active segment was pruned");
      assert.equal(spool.segments().length, 1);
    },
  );
});
