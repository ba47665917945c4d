// Tests read like SPEC.md section 2 (log frames). Golden bytes were produced independently with
// Python's struct + zlib.crc32, so they pin the layout and the CRC, not this encoder's opinion.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeFrame,
  decodeFrameRun,
  decodeWholeFrame,
  encodeFrameV3,
  FRAME_V3_HEADER_BYTES,
  frameHeaderAt,
  frameV3ByteLength,
} from "../../src/wal/frame.ts";
import { CorruptFrameError } from "../../src/core/errors.ts";
import { FRAME_PAYLOAD_BYTES_MAX } from "../../src/core/limits.ts";

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

const utf8 = new TextEncoder();

const GOLDEN_V3 = hex(`
  52 44 4c 57 03 05 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00 89 67 45 23 01 00 00 00 00 a8 da
  76 9b 01 00 00 36 00 00 00 7b 22 6f 70 22 3a 22 70 75 74 22 2c 22 63 6f 6c 6c 65 63 74 69 6f 6e
  22 3a 22 75 73 65 72 73 22 2c 22 6b 65 79 22 3a 22 75 31 22 2c 22 76 61 6c 75 65 22 3a 31 7d 7c
  0f 44 3a`);
const GOLDEN_V3_PAYLOAD = utf8.encode('{"op":"put","collection":"users","key":"u1","value":1}');
const GOLDEN_V3_FIELDS = {
  term: 5,
  ownershipEpoch: 9,
  lsn: 0x01_2345_6789,
  timestampMs: 1_767_225_600_000,
  payload: GOLDEN_V3_PAYLOAD,
};

const GOLDEN_V2 = hex(`
  52 44 4c 57 02 2a 00 00 00 00 00 00 00 7b 68 e5 cf 8b 01 00 00 05 00 00 00 68 65 6c 6c 6f f3 a3
  4a e0`);

const GOLDEN_V1 = hex(`
  52 44 4c 57 01 4d 00 00 00 00 00 00 00 06 00 00 00 00 00 00 00 6c 65 67 61 63 79`);

Deno.test("encodeFrameV3() writes every field at its SPEC.md offset, with the zlib CRC", () => {
  const frame = encodeFrameV3(GOLDEN_V3_FIELDS);
  assert.deepEqual(frame, GOLDEN_V3);
  assert.equal(frame.byteLength, frameV3ByteLength(GOLDEN_V3_PAYLOAD.byteLength));
});

Deno.test("decodeFrame() reads the golden v3 frame field by field", () => {
  const result = decodeFrame(GOLDEN_V3);
  assert.equal(result.status, "ok");
  if (result.status !== "ok") return;
  const { frame } = result;
  assert.equal(frame.version, 3);
  assert.equal(frame.term, 5);
  assert.equal(frame.ownershipEpoch, 9);
  assert.equal(frame.lsn, 0x01_2345_6789);
  assert.equal(frame.timestampMs, 1_767_225_600_000);
  assert.deepEqual(frame.payload, GOLDEN_V3_PAYLOAD);
  assert.equal(frame.byteLength, GOLDEN_V3.byteLength);
  assert.deepEqual(frame.bytes, GOLDEN_V3);
});

Deno.test("decodeFrame() reads a v2 frame (reddb legacy) as term 0 with its timestamp", () => {
  const result = decodeFrame(GOLDEN_V2);
  assert.equal(result.status, "ok");
  if (result.status !== "ok") return;
  assert.equal(result.frame.version, 2);
  assert.equal(result.frame.term, 0);
  assert.equal(result.frame.ownershipEpoch, 0);
  assert.equal(result.frame.lsn, 42);
  assert.equal(result.frame.timestampMs, 1_700_000_000_123);
  assert.deepEqual(result.frame.payload, utf8.encode("hello"));
  assert.equal(result.frame.byteLength, GOLDEN_V2.byteLength);
});

Deno.test("decodeFrame() reads a v1 frame (u64 length, no CRC) as term 0, timestamp 0", () => {
  const result = decodeFrame(GOLDEN_V1, 0, { legacyV1: true });
  assert.equal(result.status, "ok");
  if (result.status !== "ok") return;
  assert.equal(result.frame.version, 1);
  assert.equal(result.frame.term, 0);
  assert.equal(result.frame.timestampMs, 0);
  assert.equal(result.frame.lsn, 77);
  assert.deepEqual(result.frame.payload, utf8.encode("legacy"));
});

Deno.test("decodeFrame() refuses v1 unless asked: it has no CRC to check", () => {
  assert.equal(decodeFrame(GOLDEN_V1).status, "corrupt");
  // The reason: a v3 frame whose version byte loses bit 1 reads as a plausible v1 frame.
  const flipped = GOLDEN_V3.slice();
  flipped[4] = 1;
  assert.equal(decodeFrame(flipped, 0, { legacyV1: true }).status, "ok");
  assert.equal(decodeFrame(flipped).status, "corrupt");
});

Deno.test("decodeFrame() reads mixed versions back to back at their offsets", () => {
  const mixed = new Uint8Array([...GOLDEN_V2, ...GOLDEN_V3, ...GOLDEN_V1]);
  const versions: number[] = [];
  let offset = 0;
  while (offset < mixed.byteLength) {
    const result = decodeFrame(mixed, offset, { legacyV1: true });
    assert.equal(result.status, "ok");
    if (result.status !== "ok") return;
    versions.push(result.frame.version);
    offset += result.frame.byteLength;
  }
  assert.deepEqual(versions, [2, 3, 1]);
});

Deno.test("decodeFrame() detects a flipped bit anywhere after the magic of a v3 frame", () => {
  for (let byte = 4; byte < GOLDEN_V3.byteLength; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = GOLDEN_V3.slice();
      damaged[byte]! ^= 1 << bit;
      const result = decodeFrame(damaged);
      assert.notEqual(result.status, "ok", `flip of byte ${byte} bit ${bit} went unnoticed`);
    }
  }
});

Deno.test("decodeFrame() detects a flipped bit anywhere after the magic of a v2 frame", () => {
  for (let byte = 4; byte < GOLDEN_V2.byteLength; byte++) {
    const damaged = GOLDEN_V2.slice();
    damaged[byte]! ^= 0x10;
    assert.notEqual(decodeFrame(damaged).status, "ok", `flip of byte ${byte} went unnoticed`);
  }
});

Deno.test("decodeFrame() calls a bad magic and an unknown version corrupt", () => {
  const badMagic = GOLDEN_V3.slice();
  badMagic[0] = 0x58;
  assert.deepEqual(decodeFrame(badMagic), { status: "corrupt", reason: "bad magic" });
  const badVersion = GOLDEN_V3.slice();
  badVersion[4] = 9;
  assert.deepEqual(decodeFrame(badVersion), { status: "corrupt", reason: "unknown version 9" });
});

Deno.test("decodeFrame() calls every proper prefix of a frame incomplete, never ok", () => {
  for (let length = 1; length < GOLDEN_V3.byteLength; length++) {
    const result = decodeFrame(GOLDEN_V3.subarray(0, length));
    assert.equal(result.status, "incomplete", `prefix of ${length} bytes`);
  }
  for (let length = 5; length < GOLDEN_V1.byteLength; length++) {
    const prefix = GOLDEN_V1.subarray(0, length);
    assert.equal(decodeFrame(prefix, 0, { legacyV1: true }).status, "incomplete");
  }
});

Deno.test("decodeFrame() calls a length above 256 MiB corrupt, not incomplete", () => {
  const frame = GOLDEN_V3.slice();
  new DataView(frame.buffer).setUint32(37, FRAME_PAYLOAD_BYTES_MAX + 1, true);
  assert.equal(decodeFrame(frame.subarray(0, FRAME_V3_HEADER_BYTES)).status, "corrupt");
  const v1 = GOLDEN_V1.slice();
  new DataView(v1.buffer).setUint32(17, 1, true); // high word of the u64 length
  assert.equal(decodeFrame(v1, 0, { legacyV1: true }).status, "corrupt");
});

Deno.test("decodeWholeFrame() refuses trailing bytes and truncation", () => {
  assert.throws(() => decodeWholeFrame(new Uint8Array([...GOLDEN_V3, 0])), CorruptFrameError);
  assert.throws(() => decodeWholeFrame(GOLDEN_V3.subarray(0, 50)), CorruptFrameError);
  assert.equal(decodeWholeFrame(GOLDEN_V3).lsn, 0x01_2345_6789);
});

Deno.test("encodeFrameV3() refuses fields that do not fit an exact u64", () => {
  const fields = { ...GOLDEN_V3_FIELDS, lsn: 2 ** 53 };
  assert.throws(() => encodeFrameV3(fields), CorruptFrameError);
  assert.throws(() => encodeFrameV3({ ...GOLDEN_V3_FIELDS, term: -1 }), CorruptFrameError);
});

const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const frameFields = fc.record({
  term: u53,
  ownershipEpoch: u53,
  lsn: u53,
  timestampMs: u53,
  payload: fc.uint8Array({ maxLength: 600 }),
});

Deno.test("property: decodeFrame(encodeFrameV3(f)) gives back f", () => {
  fc.assert(
    fc.property(frameFields, (fields) => {
      const encoded = encodeFrameV3(fields);
      const result = decodeFrame(encoded);
      assert.equal(result.status, "ok");
      if (result.status !== "ok") return;
      const { version: _v, byteLength, bytes: _b, ...decoded } = result.frame;
      assert.deepEqual({ ...decoded, payload: decoded.payload.slice() }, { ...fields });
      assert.equal(byteLength, encoded.byteLength);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: any single flipped bit after the magic is detected", () => {
  fc.assert(
    fc.property(frameFields, fc.nat(), fc.integer({ min: 0, max: 7 }), (fields, at, bit) => {
      const encoded = encodeFrameV3(fields);
      const index = 4 + (at % (encoded.byteLength - 4));
      encoded[index]! ^= 1 << bit;
      assert.notEqual(decodeFrame(encoded).status, "ok");
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: frames decode at any offset inside a larger buffer", () => {
  fc.assert(
    fc.property(fc.array(frameFields, { minLength: 1, maxLength: 8 }), (all) => {
      const parts = all.map((fields) => encodeFrameV3(fields));
      const joined = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let offset = 0;
      for (const part of parts) {
        joined.set(part, offset);
        offset += part.byteLength;
      }
      offset = 0;
      for (const fields of all) {
        const result = decodeFrame(joined, offset);
        assert.equal(result.status, "ok");
        if (result.status !== "ok") return;
        assert.equal(result.frame.lsn, fields.lsn);
        offset += result.frame.byteLength;
      }
    }),
    { numRuns: 100 },
  );
});

/** What `decodeFrame` says frame by frame along `bytes`, until the first frame that is not ok. */
function decodeOneByOne(bytes: Uint8Array) {
  const frames = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const result = decodeFrame(bytes, offset);
    if (result.status !== "ok") return { frames, offset, stop: result };
    frames.push(result.frame);
    offset += result.frame.byteLength;
  }
  return { frames, offset };
}

Deno.test("decodeFrameRun() reads v2 and v3 frames back to back, and stops at v1 as decodeFrame does", () => {
  const mixed = new Uint8Array([...GOLDEN_V3, ...GOLDEN_V2, ...GOLDEN_V3, ...GOLDEN_V1]);
  const run = decodeFrameRun(mixed);
  assert.deepEqual(run.frames.map((f) => f.version), [3, 2, 3]);
  assert.deepEqual(run, decodeOneByOne(mixed));
  assert.deepEqual(run.stop, { status: "corrupt", reason: "v1 frame (no CRC) not accepted" });
});

Deno.test("property: decodeFrameRun() gives what decodeFrame() gives frame by frame, intact, flipped or cut", () => {
  fc.assert(
    fc.property(
      fc.array(frameFields, { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.integer({ min: 0, max: 7 }),
      fc.constantFrom("intact", "flipped", "cut"),
      (fieldsList, at, bit, damage) => {
        const frames = fieldsList.map((fields) => encodeFrameV3(fields));
        const bytes = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
        frames.reduce((offset, f) => (bytes.set(f, offset), offset + f.byteLength), 0);
        const index = at % bytes.byteLength;
        if (damage === "flipped") bytes[index]! ^= 1 << bit;
        const body = damage === "cut" ? bytes.subarray(0, index) : bytes;
        const run = decodeFrameRun(body);
        assert.deepEqual(run, decodeOneByOne(body));
        if (damage === "intact") assert.equal(run.frames.length, frames.length);
        if (damage === "flipped") assert.ok(run.stop !== undefined, "a flipped bit is detected");
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("frameHeaderAt() reads LSN and length of v2 and v3 frames without their CRC, and refuses what decodeFrame refuses", () => {
  const bytes = new Uint8Array([...GOLDEN_V3, ...GOLDEN_V2, ...GOLDEN_V1]);
  const view = new DataView(bytes.buffer);
  assert.deepEqual(frameHeaderAt(bytes, view, 0), {
    status: "ok",
    lsn: GOLDEN_V3_FIELDS.lsn,
    byteLength: GOLDEN_V3.byteLength,
  });
  assert.deepEqual(frameHeaderAt(bytes, view, GOLDEN_V3.byteLength), {
    status: "ok",
    lsn: 0x2a,
    byteLength: GOLDEN_V2.byteLength,
  });
  const v1At = GOLDEN_V3.byteLength + GOLDEN_V2.byteLength;
  assert.deepEqual(frameHeaderAt(bytes, view, v1At), {
    status: "corrupt",
    reason: "v1 frame (no CRC) not accepted",
  });
  const payloadFlipped = GOLDEN_V3.slice();
  payloadFlipped[50]! ^= 1;
  const flippedView = new DataView(payloadFlipped.buffer);
  assert.equal(frameHeaderAt(payloadFlipped, flippedView, 0).status, "ok", "the CRC is not read");
  const magic = GOLDEN_V3.slice();
  magic[0]! ^= 1;
  assert.deepEqual(frameHeaderAt(magic, new DataView(magic.buffer), 0), {
    status: "corrupt",
    reason: "bad magic",
  });
  const header = GOLDEN_V3.subarray(0, 30);
  assert.deepEqual(frameHeaderAt(header, new DataView(header.buffer, 0, 30), 0), {
    status: "incomplete",
    bytesNeeded: 11,
  });
});
