// The frames the primary hands to the state's apply worker travel packed in one transferred
// buffer: per frame LSN and term (float64), payload length (uint32) and payload, little-endian.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  PACKED_FRAME_HEADER_BYTES,
  packFrames,
  unpackFrames,
} from "../../src/state/apply_batch.ts";

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
