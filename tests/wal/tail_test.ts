// SPEC.md section 3, in-memory tail: recent frames, bounded by bytes, shared by every reader.

import assert from "node:assert/strict";
import { FrameTail } from "../../src/wal/tail.ts";
import {
  type DecodedFrame,
  decodeWholeFrame,
  encodeFrameV3,
  frameV3ByteLength,
} from "../../src/wal/frame.ts";
import { encodeGroupCommit } from "../../src/wal/group_commit.ts";
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

/** The frames of one group commit of `records` payloads after `previousLsn`: views into one buffer. */
function groupCommit(previousLsn: number, records: number, payloadBytes = 100) {
  const payloads = Array.from({ length: records }, () => new Uint8Array(payloadBytes).fill(7));
  const frameBytes = records * frameV3ByteLength(payloadBytes);
  const append = { payloads, frameBytes, resolve: () => {}, reject: () => {} };
  return encodeGroupCommit([append], { term: 1, previousLsn, timestampMs: 0 });
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
  assert.equal(tail.get(5), groups[1]!.frames[0], "the common case keeps the views: no copy");
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
