// SPEC.md section 3, in-memory tail: recent frames, bounded by bytes, shared by every reader.

import assert from "node:assert/strict";
import { FrameTail } from "../../src/wal/tail.ts";
import { type DecodedFrame, decodeWholeFrame, encodeFrameV3 } from "../../src/wal/frame.ts";

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

Deno.test("FrameTail.readSince() returns the stored objects, bounded by count and bytes", () => {
  const tail = new FrameTail(1 << 20);
  const frames = Array.from({ length: 10 }, (_, i) => frame(i + 1));
  frames.forEach((f) => tail.push(f));
  const read = tail.readSince(3, 4, 1 << 20);
  assert.deepEqual(read.map((f) => f.lsn), [4, 5, 6, 7]);
  assert.equal(read[0], frames[3], "no copy: the very same object");
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
