// The state's backlog bound (SPEC.md section 8: the applied LSN is a retention floor): while the
// WAL the primary's state has not applied fits in `--state-backlog-bytes-max`, writes pass; past it
// a write waits for the apply, and one that waited in vain is refused (503 `overloaded`). WAL is
// counted as retention counts it: whole segment files, the active one always.

import assert from "node:assert/strict";
import fc from "fast-check";
import { OverloadedError } from "../../src/core/errors.ts";
import { BacklogGate, type GatedState, lsnToPass } from "../../src/state/backlog_gate.ts";
import { LsnSignal } from "../../src/state/lsn_signal.ts";
import type { SegmentInfo } from "../../src/wal/segment_set.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { eventually } from "../helpers/stream_tap.ts";

const HOUR_MS = 3_600_000;

/** Segments of `sizes` bytes holding `recordsEach` records each; the last is the active one. */
function segmentsOf(sizes: readonly number[], recordsEach = 10): SegmentInfo[] {
  return sizes.map((sizeBytes, i) => ({
    firstLsn: i * recordsEach + 1,
    lastLsn: (i + 1) * recordsEach,
    sizeBytes,
    sealed: i < sizes.length - 1,
  }));
}

/**
 * The WAL after `lsn` as the bound counts it: whole segments after the one holding `lsn`, and that
 * one's share of records after `lsn` (its bytes taken as evenly spread).
 */
function unappliedAfter(segments: readonly SegmentInfo[], lsn: number): number {
  let bytes = 0;
  for (const segment of segments) {
    const records = segment.lastLsn - segment.firstLsn + 1;
    const after = Math.min(records, Math.max(0, segment.lastLsn - lsn));
    bytes += records === 0 ? 0 : segment.sizeBytes * after / records;
  }
  return bytes;
}

/** A state whose applied LSN the test moves; `applicable` is what it may apply (a cluster cap). */
function fakeState(applicable = Number.MAX_SAFE_INTEGER): GatedState & { applied: LsnSignal } {
  const applied = new LsnSignal();
  return {
    applied,
    appliedLsn: () => applied.value,
    applicableLsn: () => applicable,
    waitApplied: (lsn, options) => applied.waitFor(lsn, options),
  };
}

function gateOver(
  segments: SegmentInfo[],
  state: GatedState,
  options: { bytesMax: number; holdMs?: number },
) {
  const logger = createMemoryLogger();
  const gate = new BacklogGate({
    segments: () => segments,
    retainedBytes: () => segments.reduce((sum, s) => sum + s.sizeBytes, 0),
    state,
    logger,
    ...options,
  });
  return { gate, logger };
}

Deno.test("lsnToPass: the newest segments that fit stay; of the first that does not, the records that hold the bytes too many must be applied", () => {
  const segments = segmentsOf([100, 100, 50]); // LSNs 1-10, 11-20, 21-30 (active), 10 bytes each
  assert.equal(lsnToPass(segments, 1000), 0, "everything fits");
  assert.equal(lsnToPass(segments, 250), 0, "exactly fits");
  assert.equal(lsnToPass(segments, 249), 1, "one byte too many: the first record");
  assert.equal(lsnToPass(segments, 200), 5);
  assert.equal(lsnToPass(segments, 150), 10, "the oldest segment whole");
  assert.equal(lsnToPass(segments, 149), 11);
  assert.equal(lsnToPass(segments, 40), 22, "within the active segment");
  assert.equal(lsnToPass(segments, 0), 30, "a bound of nothing: up to the head");
});

Deno.test("lsnToPass: a state at the LSN it names leaves at most the bound unapplied, one record less more", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          bytes: fc.integer({ min: 0, max: 1000 }),
          records: fc.integer({ min: 1, max: 20 }),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      fc.integer({ min: 0, max: 8000 }),
      (shapes, bytesMax) => {
        let next = 1;
        const segments = shapes.map(({ bytes, records }, i) => {
          const segment = {
            firstLsn: next,
            lastLsn: next + records - 1,
            sizeBytes: bytes,
            sealed: i < shapes.length - 1,
          };
          next += records;
          return segment;
        });
        const lsn = lsnToPass(segments, bytesMax);
        assert.ok(unappliedAfter(segments, lsn) <= bytesMax + 1e-9);
        if (lsn > 0) assert.ok(unappliedAfter(segments, lsn - 1) > bytesMax);
      },
    ),
  );
});

Deno.test("writes pass while the unapplied WAL fits, and always with the bound off", () => {
  const segments = segmentsOf([100, 100, 50]);
  for (const bytesMax of [0, 250]) {
    const { gate, logger } = gateOver(segments, fakeState(), { bytesMax, holdMs: HOUR_MS });
    assert.equal(gate.pass(), undefined, "no wait, not even a promise");
    assert.equal(gate.held, 0);
    assert.deepEqual(logger.lines, []);
  }
});

Deno.test("past the bound a write waits until the state has applied enough, and the hold is logged", async () => {
  const state = fakeState();
  const { gate, logger } = gateOver(segmentsOf([100, 100, 50]), state, {
    bytesMax: 150,
    holdMs: HOUR_MS,
  });
  let passed = false;
  const write = gate.pass()!.then(() => passed = true);
  await eventually("the write to wait", () => state.applied.waiters === 1);
  state.applied.advance(9);
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(passed, false, "the oldest segment's 10 records hold the 100 bytes too many");
  state.applied.advance(10);
  await write;
  assert.equal(gate.held, 1);
  assert.deepEqual(logger.lines.map((line) => [line.level, line.event]), [
    ["warn", "state.writes_held"],
  ]);
  assert.equal(logger.lines[0]!.needed_lsn, 10);
  // The first write that need not wait ends the hold.
  assert.equal(gate.pass(), undefined, "within the bound again: no wait");
  assert.deepEqual(logger.lines.map((line) => [line.level, line.event]), [
    ["warn", "state.writes_held"],
    ["info", "state.writes_released"],
  ]);
  assert.equal(logger.lines[1]!.writes_held, 1);
});

Deno.test("writes held in one episode log it once: held at the first wait, released at the first write that need not wait", async () => {
  const state = fakeState();
  const { gate, logger } = gateOver(segmentsOf([100, 100, 50]), state, {
    bytesMax: 150,
    holdMs: HOUR_MS,
  });
  const writes = [gate.pass()!, gate.pass()!];
  await eventually("both writes to wait", () => state.applied.waiters === 2);
  state.applied.advance(10);
  await Promise.all(writes);
  assert.deepEqual(logger.lines.map((line) => line.event), ["state.writes_held"]);
  assert.equal(gate.pass(), undefined);
  assert.deepEqual(logger.lines.map((line) => line.event), [
    "state.writes_held",
    "state.writes_released",
  ]);
  assert.equal(logger.lines[1]!.writes_held, 2);
});

Deno.test("a write waits only for records the state may apply (a cluster's commit LSN caps them)", async () => {
  const state = fakeState(5);
  const { gate } = gateOver(segmentsOf([100, 100, 50]), state, { bytesMax: 150, holdMs: HOUR_MS });
  const write = gate.pass();
  await eventually("the write to wait", () => state.applied.waiters === 1);
  state.applied.advance(5);
  await write;
});

Deno.test("a write that waited in vain, or whose request ended, is refused as overloaded", async () => {
  const state = fakeState();
  const { gate } = gateOver(segmentsOf([100, 100, 50]), state, { bytesMax: 150, holdMs: 1 });
  await assert.rejects(gate.pass()!, (error: unknown) => {
    assert.ok(error instanceof OverloadedError);
    assert.equal(error.details.needed_lsn, 10);
    return true;
  });
  const patient = gateOver(segmentsOf([100, 100, 50]), state, { bytesMax: 150, holdMs: HOUR_MS });
  const ended = new AbortController();
  const write = patient.gate.pass(ended)!;
  await eventually("the write to wait", () => state.applied.waiters === 1);
  ended.abort();
  await assert.rejects(write, OverloadedError);
  assert.equal(state.applied.waiters, 0);
});

Deno.test("at shutdown (the state's applied LSN answers every wait and holds no new one) held writes are refused", async () => {
  const state = fakeState();
  const { gate } = gateOver(segmentsOf([100, 100, 50]), state, { bytesMax: 150, holdMs: HOUR_MS });
  const held = gate.pass()!;
  await eventually("the write to wait", () => state.applied.waiters === 1);
  state.applied.close();
  await assert.rejects(held, OverloadedError);
  await assert.rejects(gate.pass()!, OverloadedError, "a write that comes after");
});
