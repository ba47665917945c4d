// Streaming pulls on the primary (SPEC.md 13.1), read straight from the stream's body: what a
// stream carries and in which order, and each of the conditions that end it. No time is asserted:
// the fake clock drives control records and health, and the ends are awaited, not timed.

import assert from "node:assert/strict";
import { UnavailableError } from "../../src/core/errors.ts";
import {
  REPLICA_STREAM_ACK_MS,
  STREAM_BATCH_MS_MAX,
  STREAM_CONTROL_INTERVAL_MS,
  STREAM_TICK_MS,
} from "../../src/core/limits.ts";
import { decodeStreamRun } from "../../src/wal/stream_codec.ts";
import { appendRecords, replicaOf, withPrimary } from "../helpers/primary_fixture.ts";
import { eventually, lsnsThrough, StreamTap } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();
const PAYLOAD = utf8.encode('{"op":"put","collection":"c","key":"k","value":1}');
const STREAM = { maxCount: 1000, maxBytes: 1 << 20 };

/** The LSNs of the frames in one chunk (whole frames only). */
function lsnsOf(chunk: Uint8Array): number[] {
  const run = decodeStreamRun(chunk);
  assert.equal(run.offset, chunk.byteLength, "whole frames only");
  return run.items.flatMap((item) => item.kind === "frames" ? item.frames.map((f) => f.lsn) : []);
}

Deno.test("a stream opens with a control record, then the backlog, then one chunk per group commit", async () => {
  await withPrimary({}, async ({ primary }) => {
    await appendRecords(primary, 3);
    const opened = await primary.openStream({ replicaId: "r1", sinceLsn: 0, ...STREAM });
    assert.equal(opened.startLsn, 0);
    assert.equal(opened.currentLsn, 3);
    const tap = new StreamTap(opened.body);
    const first = decodeStreamRun((await tap.chunk())!);
    assert.equal(first.items[0]?.kind, "control", "the stream opens with a control record");
    assert.deepEqual(first.items[0]?.kind === "control" && first.items[0].control, {
      currentLsn: 3,
      commitLsn: 3,
      term: 1,
      timeline: 1,
    });
    await tap.readUntil((read) => read.lsns.length >= 3);
    // Two records of one request are one group commit: one chunk, holding exactly both frames.
    const appended = await primary.append([PAYLOAD, PAYLOAD]);
    const chunk = await tap.chunk();
    const run = decodeStreamRun(chunk!);
    assert.equal(run.offset, chunk!.byteLength, "whole frames only");
    assert.deepEqual(
      run.items.flatMap((i) => i.kind === "frames" ? i.frames.map((f) => f.lsn) : []),
      [
        appended.firstLsn,
        appended.lastLsn,
      ],
    );
    await primary.append([PAYLOAD]);
    await tap.readUntil((read) => read.lsns.length >= 6);
    assert.deepEqual(tap.read.lsns, lsnsThrough(6));
    assert.equal(primary.streams.size, 1);
    await tap.cancel();
  });
});

Deno.test("with --stream-batch-ms, the group commits after a delivery reach a stream as one chunk", async () => {
  // The fixture's clock stands still: by it, no interval passes until the batch's timer fires.
  await withPrimary({ primary: { streamBatchMs: STREAM_BATCH_MS_MAX } }, async ({ primary }) => {
    const opened = await primary.openStream({ replicaId: "r1", sinceLsn: 0, ...STREAM });
    const tap = new StreamTap(opened.body);
    await tap.chunk(); // the opening control record
    await primary.append([PAYLOAD]); // after a quiet interval: at once, alone
    assert.deepEqual(lsnsOf((await tap.chunk())!), [1]);
    for (let i = 0; i < 3; i++) await primary.append([PAYLOAD]);
    assert.deepEqual(lsnsOf((await tap.chunk())!), [2, 3, 4], "one chunk for three commits");
    await tap.cancel();
  });
});

Deno.test("a stream never repeats or skips a frame when group commits land during its catch-up", async () => {
  await withPrimary({ spool: { tailBytesMax: 0 } }, async ({ primary }) => {
    await appendRecords(primary, 50);
    // Small catch-up reads: the stream goes back to the spool many times while writes go on.
    const opened = await primary.openStream({ sinceLsn: 10, maxCount: 3, maxBytes: 1 << 20 });
    const tap = new StreamTap(opened.body);
    const writes = (async () => {
      for (let i = 0; i < 30; i++) await primary.append([PAYLOAD]);
    })();
    await tap.readUntil((read) => read.lsns.length >= 3);
    await writes;
    await tap.readUntil((read) => read.lsns.length >= 70);
    assert.deepEqual(tap.read.lsns, lsnsThrough(80).slice(10));
    await tap.cancel();
  });
});

Deno.test("a stream past its unsent-bytes cap ends, drops what it held, and closes at a frame", async () => {
  await withPrimary({ primary: { streamUnsentBytesMax: 4096 } }, async ({ primary, spool }) => {
    const opened = await primary.openStream({ replicaId: "r1", ...STREAM });
    const big = utf8.encode(
      `{"op":"put","collection":"c","key":"k","value":"${"x".repeat(1000)}"}`,
    );
    // Nobody reads: every group commit stays queued until the cap is passed.
    for (let i = 0; i < 10 && primary.streams.size > 0; i++) {
      await primary.append([big]);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await eventually("the stream to end", () => primary.streams.size === 0);
    assert.deepEqual(primary.streams.endedByReason(), { unsent_bytes_cap: 1 });
    assert.equal(spool.stats().commitListeners, 0, "its listener is gone");
    const read = await new StreamTap(opened.body).rest();
    assert.deepEqual(read, { lsns: [], controls: 0 }, "what was queued was dropped, not sent");
  });
});

Deno.test("a stream ends after stream_max_ms, cleanly", async () => {
  await withPrimary({ primary: { streamMaxMs: 20 } }, async ({ primary }) => {
    await appendRecords(primary, 2);
    const opened = await primary.openStream({ replicaId: "r1", ...STREAM });
    const read = await new StreamTap(opened.body).rest();
    assert.deepEqual(read.lsns, [1, 2]);
    assert.deepEqual(primary.streams.endedByReason(), { max_age: 1 });
  });
});

Deno.test("shutdown ends every stream and opens no new one", async () => {
  await withPrimary({}, async ({ primary }) => {
    const taps = await Promise.all(
      ["r1", "r2", "r3"].map(async (replicaId) =>
        new StreamTap((await primary.openStream({ replicaId, ...STREAM })).body)
      ),
    );
    assert.equal(primary.streams.size, 3);
    primary.streams.endAll("shutdown");
    for (const tap of taps) await tap.rest();
    assert.ok(taps.every((tap) => tap.done), "every body ended cleanly");
    assert.equal(primary.streams.size, 0);
    await assert.rejects(primary.openStream({ replicaId: "r4", ...STREAM }), UnavailableError);
  });
});

Deno.test("a stream ends when its replica's slot is invalidated, at once", async () => {
  await withPrimary(
    { primary: { caps: { lagMaxRecords: 2, retainedBytesMax: 0, idleTimeoutMs: 0 } } },
    async ({ primary }) => {
      const opened = await primary.openStream({ replicaId: "r1", ...STREAM });
      const other = await primary.openStream({ replicaId: "r2", ...STREAM });
      await appendRecords(primary, 5);
      primary.ack("r2", { appliedLsn: 5, durableLsn: 5 });
      assert.deepEqual(primary.invalidateSlots(), ["r1"]);
      assert.equal(primary.streams.countOf("r1"), 0);
      assert.equal(primary.streams.countOf("r2"), 1, "another replica's stream goes on");
      await new StreamTap(opened.body).rest();
      assert.deepEqual(primary.streams.endedByReason(), { slot_invalidated: 1 });
      await other.body.cancel();
    },
  );
});

Deno.test("a stream ends when its slot is dropped, and the tick ends any stream whose slot is gone", async () => {
  await withPrimary({}, async ({ primary, slots }) => {
    const dropped = await primary.openStream({ replicaId: "r1", ...STREAM });
    assert.ok(await primary.dropSlot("r1"));
    await new StreamTap(dropped.body).rest();
    const vanished = await primary.openStream({ replicaId: "r2", ...STREAM });
    slots.delete("r2");
    primary.streams.tick();
    await new StreamTap(vanished.body).rest();
    assert.deepEqual(primary.streams.endedByReason(), { slot_dropped: 2 });
  });
});

Deno.test("a stream whose client goes away ends at once and leaves nothing behind", async () => {
  await withPrimary({}, async ({ primary, spool }) => {
    const controller = new AbortController();
    await primary.openStream({ replicaId: "r1", ...STREAM, signal: controller.signal });
    const cancelled = await primary.openStream({ replicaId: "r2", ...STREAM });
    assert.equal(primary.streams.size, 2);
    assert.equal(spool.stats().commitListeners, 1, "the hub listens once for all its streams");
    assert.equal(spool.stats().waiters, 0, "a stream is not a held long-poll");
    controller.abort();
    assert.equal(primary.streams.countOf("r1"), 0, "the abort ended it in the same turn");
    await cancelled.body.cancel();
    assert.equal(primary.streams.size, 0);
    assert.equal(spool.stats().commitListeners, 0);
    assert.deepEqual(primary.streams.endedByReason(), { client_gone: 2 });
  });
});

Deno.test("an idle stream carries a control record within every control interval", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    const tap = new StreamTap((await primary.openStream({ replicaId: "r1", ...STREAM })).body);
    await tap.readUntil((read) => read.controls >= 1);
    for (let second = 1; second <= 20; second++) {
      clock.advance(1000);
      primary.streams.tick();
    }
    // Sent whenever the next tick would come too late: at least one per control interval.
    const expected = 1 + Math.floor(20_000 / (STREAM_CONTROL_INTERVAL_MS - STREAM_TICK_MS));
    assert.ok(expected >= 1 + 20_000 / STREAM_CONTROL_INTERVAL_MS);
    await tap.readUntil((read) => read.controls >= expected);
    assert.equal(tap.read.controls, expected);
    await tap.cancel();
  });
});

Deno.test("an open stream is not a sign of life; a streaming replica's acks are, for 60 s", async () => {
  await withPrimary({}, async ({ primary, clock }) => {
    primary.register("r1");
    primary.register("r2");
    const acking = await primary.openStream({ replicaId: "r1", ...STREAM });
    const silent = await primary.openStream({ replicaId: "r2", ...STREAM });
    await appendRecords(primary, 1);
    await eventually("the record to go out", () => replicaOf(primary, "r2")!.lastSentLsn === 1);
    const seenBefore = replicaOf(primary, "r2")!.lastSeenAtUnixMs;
    let r2Unhealthy = false;
    // A minute of fake time, a second at a time; r1 acks as a streaming replica does.
    for (let ms = 1000; ms <= 60_000; ms += 1000) {
      clock.advance(1000);
      if (ms % REPLICA_STREAM_ACK_MS === 0) primary.ack("r1", { appliedLsn: 1, durableLsn: 1 });
      primary.sweepHealth();
      primary.streams.tick();
      assert.equal(replicaOf(primary, "r1")!.healthy, true, `r1 healthy at ${ms} ms`);
      r2Unhealthy ||= !replicaOf(primary, "r2")!.healthy;
    }
    assert.ok(r2Unhealthy, "a replica that only holds a stream open turns unhealthy");
    assert.equal(replicaOf(primary, "r2")!.lastSeenAtUnixMs, seenBefore, "sending is not seeing");
    assert.equal(replicaOf(primary, "r2")!.lastSentLsn, 1, "what was sent is noted");
    assert.equal(primary.streams.size, 2, "both streams are still open");
    await acking.body.cancel();
    await silent.body.cancel();
  });
});

Deno.test("a primary that may no longer serve (fencing) ends its streams before a frame goes out", async () => {
  let mayServe = true;
  await withPrimary({ primary: { mayServe: () => mayServe } }, async ({ primary }) => {
    const tap = new StreamTap((await primary.openStream({ replicaId: "r1", ...STREAM })).body);
    await appendRecords(primary, 1);
    await tap.readUntil((read) => read.lsns.length >= 1);
    mayServe = false;
    await appendRecords(primary, 1);
    const read = await tap.rest();
    assert.deepEqual(read.lsns, [1], "nothing served once fenced");
    assert.deepEqual(primary.streams.endedByReason(), { fenced: 1 });
  });
});
