// The frames the primary hands to the state's apply worker travel packed in one transferred
// buffer: per frame LSN and term (float64), payload length (uint32) and payload, little-endian.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  PACKED_FRAME_HEADER_BYTES,
  packFrames,
  rawApplyFrames,
  rawFrameBuffer,
  RawFramesRejectedError,
  unpackFrames,
} from "../../src/state/apply_batch.ts";
import { frameV3ByteLength } from "../../src/wal/frame.ts";
import { encodeGroupCommit } from "../../src/wal/group_commit.ts";

const utf8 = new TextEncoder();

Deno.test("packFrames: golden bytes of one frame", () => {
  const buffer = packFrames([{ lsn: 258, term: 3, payload: utf8.encode("ab") }]);
  assert.deepEqual([...new Uint8Array(buffer)], [
    ...[0, 0, 0, 0, 0, 0x20, 0x70, 0x40], // 258 as a float64
    ...[0, 0, 0, 0, 0, 0, 0x08, 0x40], // 3 as a float64
    ...[2, 0, 0, 0], // payload length
    0x61,
    0x62,
  ]);
  assert.equal(buffer.byteLength, PACKED_FRAME_HEADER_BYTES + 2);
});

Deno.test("unpackFrames(packFrames(frames)) gives the frames back, empty payloads and the largest LSNs included", () => {
  const frame = fc.record({
    lsn: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    term: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    payload: fc.uint8Array({ maxLength: 300 }),
  });
  fc.assert(fc.property(fc.array(frame, { maxLength: 40 }), (frames) => {
    const back = unpackFrames(packFrames(frames));
    assert.deepEqual(
      back.map((f) => ({ ...f, payload: [...f.payload] })),
      frames.map((f) => ({ ...f, payload: [...f.payload] })),
    );
  }));
});

Deno.test("unpackFrames refuses a buffer cut inside a header or a payload", () => {
  const buffer = packFrames([{ lsn: 1, term: 1, payload: utf8.encode("hello") }]);
  for (const cut of [1, PACKED_FRAME_HEADER_BYTES - 1, PACKED_FRAME_HEADER_BYTES + 4]) {
    assert.throws(() => unpackFrames(buffer.slice(0, cut)), /is whole/);
  }
});

/** A group commit's stored bytes: frames of `payloads` with LSNs after `afterLsn`. */
function storedFrames(afterLsn: number, payloads: Uint8Array[]): Uint8Array {
  let frameBytes = 0;
  for (const payload of payloads) frameBytes += frameV3ByteLength(payload.byteLength);
  const append = { payloads, frameBytes, resolve: () => {}, reject: () => {} };
  return encodeGroupCommit([append], { term: 4, previousLsn: afterLsn, timestampMs: 9 }).buffer;
}

Deno.test("rawFrameBuffer + rawApplyFrames: the stored frames of several chunks come back as LSN, term and payload", () => {
  const payloads = [utf8.encode("a"), utf8.encode(""), utf8.encode("ccc")];
  const first = storedFrames(10, payloads.slice(0, 2));
  const second = storedFrames(12, payloads.slice(2));
  const raw = {
    chunks: [first, second],
    count: 3,
    byteLength: first.byteLength + second.byteLength,
    lastLsn: 13,
  };
  const buffer = rawFrameBuffer(raw);
  assert.equal(buffer.byteLength, raw.byteLength);
  const frames = rawApplyFrames(buffer, 10);
  assert.deepEqual(frames.map((f) => [f.lsn, f.term, [...f.payload]]), [
    [11, 4, [0x61]],
    [12, 4, []],
    [13, 4, [0x63, 0x63, 0x63]],
  ]);
  assert.equal(frames[0]!.payload.buffer, buffer, "payloads view the transferred buffer");
});

Deno.test("rawApplyFrames refuses any flipped bit, a cut, and LSNs that do not follow", () => {
  const stored = storedFrames(0, [utf8.encode("hello"), utf8.encode("world")]);
  fc.assert(fc.property(
    fc.integer({ min: 0, max: stored.byteLength - 1 }),
    fc.integer({ min: 0, max: 7 }),
    (at, bit) => {
      const damaged = stored.slice();
      damaged[at]! ^= 1 << bit;
      assert.throws(() => rawApplyFrames(damaged.buffer, 0), RawFramesRejectedError);
    },
  ));
  assert.throws(
    () => rawApplyFrames(stored.slice(0, stored.byteLength - 1).buffer, 0),
    RawFramesRejectedError,
  );
  assert.throws(() => rawApplyFrames(stored.slice().buffer, 1), /LSN 1 where 2 was due/);
  assert.equal(rawApplyFrames(stored.slice().buffer, 0).length, 2);
});
