// `--stream-batch-ms` (README, streaming pulls): with an interval, the group commits a stream hub
// fans out reach the streams at most once per interval, contiguous ones merged into one commit,
// byte for byte; a commit after a quiet interval goes at once; 0 keeps SPEC.md 13.1's "each as
// soon as it is durable". Time here is a manual clock: nothing waits.

import assert from "node:assert/strict";
import fc from "fast-check";
import { type BatchTimer, CommitBatcher } from "../../src/replication/commit_batcher.ts";
import type { GroupCommit } from "../../src/wal/commit_feed.ts";
import { concatBytes } from "../../src/core/bytes.ts";

/** A clock moved by hand, with the timers it fires as it moves. */
class ManualTimer implements BatchTimer {
  nowMs = 0;
  #timers: Array<{ atMs: number; run: () => void } | undefined> = [];

  now = () => this.nowMs;

  schedule = (run: () => void, ms: number) => {
    const index = this.#timers.push({ atMs: this.nowMs + ms, run }) - 1;
    return () => {
      this.#timers[index] = undefined;
    };
  };

  /** Moves the clock by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.nowMs + ms;
    for (;;) {
      const due = this.#timers
        .map((timer, index) => ({ timer, index }))
        .filter(({ timer }) => timer !== undefined && timer.atMs <= until)
        .sort((a, b) => a.timer!.atMs - b.timer!.atMs)[0];
      if (due === undefined) break;
      this.#timers[due.index] = undefined;
      this.nowMs = due.timer!.atMs;
      due.timer!.run();
    }
    this.nowMs = until;
  }
}

/** Group commits of `sizes` records each, from LSN 1, each frame one byte (its LSN). */
function commits(sizes: readonly number[]): GroupCommit[] {
  let lsn = 0;
  return sizes.map((size) => {
    const firstLsn = lsn + 1;
    lsn += size;
    const bytes = Uint8Array.from({ length: size }, (_, i) => (firstLsn + i) % 256);
    return { firstLsn, lastLsn: lsn, bytes };
  });
}

function batcherOver(batchMs: number) {
  const timer = new ManualTimer();
  const delivered: Array<GroupCommit & { atMs: number }> = [];
  const batcher = new CommitBatcher(
    batchMs,
    (c) => delivered.push({ ...c, atMs: timer.nowMs }),
    timer,
  );
  return { timer, delivered, batcher };
}

Deno.test("interval 0: each group commit is delivered at once, as it came", () => {
  const { delivered, batcher } = batcherOver(0);
  const input = commits([1, 3, 2]);
  for (const commit of input) batcher.push(commit);
  assert.deepEqual(delivered.map(({ atMs: _, ...c }) => c), input);
  assert.equal(batcher.held, 0);
});

Deno.test("an interval holds the commits that follow a delivery and sends them as one, byte for byte", () => {
  const { timer, delivered, batcher } = batcherOver(4);
  const [a, b, c, d] = commits([1, 2, 3, 1]);
  batcher.push(a!); // after a quiet time: at once
  assert.equal(delivered.length, 1);
  timer.advance(1);
  batcher.push(b!);
  timer.advance(1);
  batcher.push(c!);
  assert.equal(delivered.length, 1, "held within the interval");
  assert.equal(batcher.held, 2);
  timer.advance(2);
  assert.equal(delivered.length, 2);
  assert.deepEqual(delivered[1], {
    firstLsn: b!.firstLsn,
    lastLsn: c!.lastLsn,
    bytes: concatBytes([b!.bytes, c!.bytes]),
    atMs: 4,
  });
  timer.advance(10);
  batcher.push(d!); // quiet again: at once
  assert.equal(delivered.length, 3);
  assert.equal(delivered[2]!.atMs, 14);
});

Deno.test("held commits with a gap between them go as two commits, each run merged (the stream reads the gap)", () => {
  const { timer, delivered, batcher } = batcherOver(4);
  const [a, b, c, d, e] = commits([1, 1, 2, 1, 1]);
  batcher.push(a!);
  batcher.push(b!);
  batcher.push(d!); // c was made while no stream listened
  batcher.push(e!);
  timer.advance(4);
  assert.deepEqual(
    delivered.map((commit) => [commit.firstLsn, commit.lastLsn, commit.bytes.byteLength]),
    [[1, 1, 1], [2, 2, 1], [d!.firstLsn, e!.lastLsn, 2]],
  );
  assert.equal(c!.lastLsn + 1, d!.firstLsn);
});

Deno.test("a clock that steps back never holds a commit: the wait is at most the interval", () => {
  const { timer, delivered, batcher } = batcherOver(4);
  const [a, b] = commits([1, 1]);
  timer.nowMs = 1_000;
  batcher.push(a!);
  timer.nowMs = 10; // the wall clock stepped back
  batcher.push(b!);
  assert.equal(delivered.length, 2, "delivered at once, not in 994 ms");
});

Deno.test("flush() delivers what is held now; clear() drops it and its timer", () => {
  const { timer, delivered, batcher } = batcherOver(50);
  const [a, b, c] = commits([1, 1, 1]);
  batcher.push(a!);
  batcher.push(b!);
  batcher.flush();
  assert.equal(delivered.length, 2);
  batcher.push(c!);
  batcher.clear();
  timer.advance(100);
  assert.equal(delivered.length, 2, "nothing after clear()");
});

Deno.test("property: every frame delivered once, in order, and deliveries at least the interval apart", () => {
  const step = fc.record({ size: fc.integer({ min: 1, max: 5 }), gapMs: fc.nat({ max: 12 }) });
  fc.assert(fc.property(fc.nat({ max: 8 }), fc.array(step, { maxLength: 60 }), (batchMs, steps) => {
    const { timer, delivered, batcher } = batcherOver(batchMs);
    const input = commits(steps.map((s) => s.size));
    input.forEach((commit, i) => {
      timer.advance(steps[i]!.gapMs);
      batcher.push(commit);
    });
    timer.advance(batchMs);
    assert.equal(batcher.held, 0, "nothing held once an interval passed");
    assert.deepEqual(
      concatBytes(delivered.map((c) => c.bytes)),
      concatBytes(input.map((c) => c.bytes)),
    );
    delivered.forEach((commit, i) => {
      const previous = delivered[i - 1];
      assert.equal(commit.firstLsn, (previous?.lastLsn ?? 0) + 1, "no gap, nothing twice");
      assert.equal(commit.bytes.byteLength, commit.lastLsn - commit.firstLsn + 1);
      if (previous !== undefined) assert.ok(commit.atMs - previous.atMs >= batchMs);
    });
  }));
});
