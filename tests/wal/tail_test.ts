// SPEC.md section 3, in-memory tail: recent frames, bounded by bytes, shared by every reader.

import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameTail } from "../../src/wal/tail.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import {
  type DecodedFrame,
  decodeFrameRun,
  decodeWholeFrame,
  encodeFrameV3,
  frameV3ByteLength,
} from "../../src/wal/frame.ts";
import { encodeGroupCommit } from "../../src/wal/group_commit.ts";
import { emptyRawFrames } from "../../src/wal/range_read.ts";
import type { TailMemoryReport } from "../helpers/tail_memory_probe.ts";

const MEMORY_PROBE = new URL("../helpers/tail_memory_probe.ts", import.meta.url).pathname;

function frame(lsn: number, payloadBytes = 10): DecodedFrame {
  const payload = new Uint8Array(payloadBytes).fill(lsn % 256);
  return decodeWholeFrame(
    encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn, timestampMs: lsn, payload }),
  );
}

Deno.test("FrameTail evicts the oldest frames past its byte budget", () => {
  const size = frame(1).byteLength;
  const tail = new FrameTail(3 * size);
  for (let lsn = 1; lsn <= 5; lsn++) tail.push(frame(lsn));
  assert.equal(tail.count, 3);
  assert.equal(tail.firstLsn, 3);
  assert.equal(tail.lastLsn, 5);
  assert.equal(tail.byteLength, 3 * size);
  assert.equal(tail.has(2), false);
  assert.equal(tail.get(4)?.lsn, 4);
});

Deno.test("FrameTail.readSince() returns the stored frames, views of their bytes, bounded by count and bytes", () => {
  const tail = new FrameTail(1 << 20);
  const frames = Array.from({ length: 10 }, (_, i) => frame(i + 1));
  frames.forEach((f) => tail.push(f));
  const read = tail.readSince(3, 4, 1 << 20);
  assert.deepEqual(read.map((f) => f.lsn), [4, 5, 6, 7]);
  assert.deepEqual(read[0], frames[3], "every field equal");
  assert.equal(read[0]!.bytes.buffer, frames[3]!.bytes.buffer, "no copy: a view of its buffer");
  assert.equal(read[0]!.payload.buffer, frames[3]!.bytes.buffer);
  assert.deepEqual(tail.readSince(3, 100, 2 * frames[0]!.byteLength).map((f) => f.lsn), [4, 5]);
  assert.deepEqual(tail.readSince(3, 100, 1).map((f) => f.lsn), [4], "one frame at least");
  assert.deepEqual(tail.readSince(10, 100, 1 << 20), []);
});

Deno.test("FrameTail with a zero budget holds nothing", () => {
  const tail = new FrameTail(0);
  tail.push(frame(1));
  assert.equal(tail.count, 0);
  assert.equal(tail.has(1), false);
});

Deno.test("FrameTail.dropThrough() forgets pruned frames and a gap restarts the tail", () => {
  const tail = new FrameTail(1 << 20);
  for (let lsn = 1; lsn <= 10; lsn++) tail.push(frame(lsn));
  tail.dropThrough(6);
  assert.equal(tail.firstLsn, 7);
  tail.push(frame(20));
  assert.equal(tail.firstLsn, 20);
  assert.equal(tail.count, 1);
});

Deno.test("FrameTail stays correct across many evictions (compaction)", () => {
  const tail = new FrameTail(100 * frame(1).byteLength);
  for (let lsn = 1; lsn <= 20_000; lsn++) tail.push(frame(lsn));
  assert.equal(tail.count, 100);
  assert.equal(tail.firstLsn, 19_901);
  assert.deepEqual(tail.readSince(19_990, 100, 1 << 20).map((f) => f.lsn).slice(0, 3), [
    19_991,
    19_992,
    19_993,
  ]);
});

/** The frames of one group commit of `records` payloads after `previousLsn`: views into one buffer. */
function groupCommit(previousLsn: number, records: number, payloadBytes = 100) {
  const payloads = Array.from({ length: records }, () => new Uint8Array(payloadBytes).fill(7));
  const frameBytes = records * frameV3ByteLength(payloadBytes);
  const append = { payloads, frameBytes, resolve: () => {}, reject: () => {} };
  const commit = encodeGroupCommit([append], { term: 1, previousLsn, timestampMs: 0 });
  return { ...commit, frames: decodeFrameRun(commit.buffer).frames };
}

Deno.test("FrameTail counts each group-commit buffer once and evicts whole buffers", () => {
  const bufferBytes = groupCommit(0, 4).buffer.byteLength;
  // Room for two and a half buffers: keeping half of the oldest would still pin all of it.
  const tail = new FrameTail(2 * bufferBytes + bufferBytes / 2);
  const groups = [groupCommit(0, 4), groupCommit(4, 4), groupCommit(8, 4)];
  for (const { frames } of groups) frames.forEach((f) => tail.push(f));
  assert.equal(tail.firstLsn, 5, "the oldest buffer went whole");
  assert.equal(tail.count, 8);
  assert.equal(tail.byteLength, 2 * bufferBytes);
  const held = tail.get(5)!;
  assert.deepEqual(held, groups[1]!.frames[0]);
  assert.equal(held.bytes.buffer, groups[1]!.buffer.buffer, "the common case keeps the buffer");
  tail.dropThrough(6);
  assert.equal(tail.byteLength, 2 * bufferBytes, "a buffer counts while any of its frames is held");
  tail.dropThrough(8);
  assert.equal(tail.byteLength, bufferBytes);
});

Deno.test("FrameTail copies out a frame whose buffer is larger than the whole budget", () => {
  const { frames } = groupCommit(0, 50);
  const tail = new FrameTail(3 * frames[0]!.byteLength);
  frames.forEach((f) => tail.push(f));
  assert.deepEqual([tail.firstLsn, tail.lastLsn], [48, 50]);
  assert.equal(tail.byteLength, 3 * frames[0]!.byteLength);
  const held = tail.get(50)!;
  assert.ok(held.bytes.buffer !== frames[49]!.bytes.buffer, "a copy, not a view of the big one");
  assert.equal(held.bytes.buffer.byteLength, held.byteLength, "a buffer of its own size");
  assert.deepEqual(held.bytes, frames[49]!.bytes);
  assert.deepEqual(decodeWholeFrame(held.bytes).payload, held.payload);
  assert.equal(held.payload.buffer, held.bytes.buffer, "the payload views the copy");
});

Deno.test("FrameTail keeps alive at most its budget plus one group commit, counting the buffers its frames view", async () => {
  // Live bytes can only be counted with a forced garbage collection, so in a child process.
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--v8-flags=--expose-gc", "-A", MEMORY_PROBE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  const report = JSON.parse(decoder.decode(stdout)) as TailMemoryReport;
  for (const [scenario, { liveBytes, boundBytes, pushedBytes }] of Object.entries(report)) {
    assert.ok(pushedBytes > 10 * boundBytes, `${scenario}: far more went through than the bound`);
    assert.ok(
      liveBytes <= boundBytes,
      `${scenario}: ${liveBytes} bytes still alive, more than ${boundBytes}`,
    );
  }
});

/** The bytes of `frames`, back to back. */
function concat(frames: readonly DecodedFrame[]): Uint8Array {
  return concatBytes(frames.map((f) => f.bytes));
}

/** A tail holding LSNs 1-12 as three group commits of four. */
function threeGroups(): { tail: FrameTail; frames: DecodedFrame[]; buffers: Uint8Array[] } {
  const tail = new FrameTail(1 << 20);
  const groups = [groupCommit(0, 4), groupCommit(4, 4), groupCommit(8, 4)];
  for (const { frames } of groups) frames.forEach((f) => tail.push(f));
  return { tail, frames: groups.flatMap((g) => g.frames), buffers: groups.map((g) => g.buffer) };
}

Deno.test("FrameTail.appendRaw() takes one view per group-commit buffer, bounded like readSince", () => {
  const { tail, frames, buffers } = threeGroups();
  const raw = emptyRawFrames(2);
  assert.equal(tail.appendRaw(raw, { maxCount: 100, maxBytes: 1 << 20 }), false, "ran out");
  assert.deepEqual([raw.count, raw.lastLsn, raw.chunks.length], [10, 12, 3]);
  assert.equal(raw.chunks[0]!.buffer, buffers[0]!.buffer, "views, no copy");
  assert.deepEqual(
    raw.chunks.reduce((sum, c) => sum + c.byteLength, 0),
    concat(frames.slice(2)).byteLength,
  );
  const size = frames[0]!.byteLength;
  for (const [maxCount, maxBytes, expected] of [[5, 1 << 20, 5], [100, 3 * size, 3], [100, 1, 1]]) {
    const bounded = emptyRawFrames(2);
    assert.equal(tail.appendRaw(bounded, { maxCount: maxCount!, maxBytes: maxBytes! }), true);
    assert.equal(bounded.count, expected);
    assert.equal(bounded.lastLsn, 2 + expected!);
    const flat = concatBytes(bounded.chunks);
    assert.deepEqual(flat, concat(frames.slice(2, 2 + expected!)), "exactly those frames' bytes");
  }
  assert.equal(tail.appendRaw(emptyRawFrames(12), { maxCount: 10, maxBytes: 1 << 20 }), false);
});

Deno.test("FrameTail drops part of a buffer's frames (prune, truncation) and keeps the rest readable", () => {
  const { tail, frames } = threeGroups();
  tail.dropThrough(6);
  assert.deepEqual([tail.firstLsn, tail.lastLsn, tail.count], [7, 12, 6]);
  tail.dropAfter(9);
  assert.deepEqual([tail.firstLsn, tail.lastLsn, tail.count], [7, 9, 3]);
  assert.deepEqual(tail.readSince(0, 100, 1 << 20), frames.slice(6, 9));
  assert.deepEqual(tail.get(7), frames[6]);
  const raw = emptyRawFrames(6);
  tail.appendRaw(raw, { maxCount: 100, maxBytes: 1 << 20 });
  assert.deepEqual(raw.chunks.map((c) => c.byteLength), [
    2 * frames[0]!.byteLength,
    frames[0]!.byteLength,
  ]);
  const next = groupCommit(9, 2);
  next.frames.forEach((f) => tail.push(f));
  assert.deepEqual(tail.readSince(8, 100, 1 << 20).map((f) => f.lsn), [9, 10, 11]);
  tail.dropAfter(6);
  assert.equal(tail.count, 0);
  assert.equal(tail.byteLength, 0);
});

Deno.test("property: FrameTail reads what a plain list of its frames would give, through pushes (frame by frame or whole group commits), drops and reads", () => {
  const step = fc.oneof(
    fc.record({
      kind: fc.constant("push" as const),
      records: fc.integer({ min: 1, max: 6 }),
      whole: fc.boolean(),
    }),
    fc.record({ kind: fc.constant("dropThrough" as const), back: fc.integer({ min: 0, max: 10 }) }),
    fc.record({ kind: fc.constant("dropAfter" as const), back: fc.integer({ min: 0, max: 4 }) }),
  );
  const read = fc.record({
    since: fc.integer({ min: 0, max: 40 }),
    maxCount: fc.integer({ min: 1, max: 12 }),
    frames: fc.integer({ min: 1, max: 8 }),
  });
  fc.assert(
    fc.property(
      fc.array(step, { maxLength: 12 }),
      fc.array(read, { maxLength: 6 }),
      (steps, reads) => {
        const tail = new FrameTail(1 << 20);
        let model: DecodedFrame[] = [];
        let lsn = 0;
        for (const s of steps) {
          if (s.kind === "push") {
            const { frames, buffer, firstLsn, ends } = groupCommit(lsn, s.records, 20);
            if (s.whole) tail.pushRun(buffer, firstLsn, ends);
            else frames.forEach((f) => tail.push(f));
            model.push(...frames);
            lsn += s.records;
          } else if (s.kind === "dropThrough") {
            const through = Math.max(0, lsn - s.back);
            tail.dropThrough(through);
            model = model.filter((f) => f.lsn > through);
          } else {
            const after = Math.max(model[0]?.lsn ?? 0, lsn - s.back);
            tail.dropAfter(after);
            model = model.filter((f) => f.lsn <= after);
            lsn = model.length > 0 ? after : lsn; // an emptied tail takes any next LSN
            if (model.length === 0) tail.clear();
          }
          assert.equal(tail.count, model.length);
          assert.equal(tail.firstLsn, model[0]?.lsn);
          assert.equal(tail.lastLsn, model[model.length - 1]?.lsn);
        }
        const size = frameV3ByteLength(20);
        for (const r of reads) {
          const maxBytes = r.frames * size;
          const from = model.filter((f) => f.lsn > r.since);
          const expected = from.slice(0, Math.max(1, Math.min(r.maxCount, r.frames)));
          if (from.length === 0) expected.length = 0;
          assert.deepEqual(tail.readSince(r.since, r.maxCount, maxBytes), expected);
          if (!tail.has(r.since + 1)) continue;
          const raw = emptyRawFrames(r.since);
          tail.appendRaw(raw, { maxCount: r.maxCount, maxBytes });
          const flat = concatBytes(raw.chunks);
          assert.deepEqual(flat, concat(expected));
          assert.equal(raw.count, expected.length);
        }
      },
    ),
  );
});

Deno.test("FrameTail.pushRun() of a whole group commit is the same as pushing its frames, evictions included", () => {
  const groups = [groupCommit(0, 4), groupCommit(4, 4), groupCommit(8, 4)];
  const bufferBytes = groups[0]!.buffer.byteLength;
  const byRun = new FrameTail(2 * bufferBytes + bufferBytes / 2);
  const byFrame = new FrameTail(2 * bufferBytes + bufferBytes / 2);
  for (const { buffer, firstLsn, ends, frames } of groups) {
    byRun.pushRun(buffer, firstLsn, ends);
    frames.forEach((f) => byFrame.push(f));
  }
  for (const tail of [byRun, byFrame]) {
    assert.deepEqual([tail.firstLsn, tail.lastLsn, tail.byteLength], [5, 12, 2 * bufferBytes]);
  }
  assert.deepEqual(byRun.readSince(0, 100, 1 << 20), byFrame.readSince(0, 100, 1 << 20));
  // A gap, and a buffer larger than the whole budget, go frame by frame (a copy each).
  const small = new FrameTail(3 * groups[0]!.frames[0]!.byteLength);
  const big = groupCommit(20, 50);
  small.pushRun(big.buffer, big.firstLsn, big.ends);
  assert.deepEqual([small.firstLsn, small.lastLsn], [68, 70]);
  assert.ok(small.get(70)!.bytes.buffer !== big.buffer.buffer, "a copy");
  assert.deepEqual(small.get(70), big.frames[49]);
});
