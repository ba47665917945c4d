// SPEC.md section 3, repair on open: the scan that keeps no frame (repair, index builds) checks a
// v3 frame where it lies instead of building it, and must refuse exactly what `decodeFrame`
// refuses, and stop where and why the decoding scan stops.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import {
  decodeFrame,
  encodeFrameV3,
  type FrameHead,
  frameV3CheckedAt,
} from "../../src/wal/frame.ts";
import { type ScanEnd, scanFrameHeads, scanFrames } from "../../src/wal/frame_scan.ts";
import { MemFs } from "../helpers/mem_fs.ts";

const utf8 = new TextEncoder();

function frame(lsn: number, text: string): Uint8Array {
  return encodeFrameV3({
    term: 3,
    ownershipEpoch: 0,
    lsn,
    timestampMs: 1_700_000_000_000 + lsn,
    payload: utf8.encode(text),
  });
}

/** A v2 frame (read-only version; the spool still reads it): magic, 2, LSN, time, length, CRC. */
function frameV2(lsn: number, text: string): Uint8Array {
  const payload = utf8.encode(text);
  const bytes = new Uint8Array(25 + payload.byteLength + 4);
  const view = new DataView(bytes.buffer);
  bytes.set([0x52, 0x44, 0x4c, 0x57, 2]);
  view.setBigUint64(5, BigInt(lsn), true);
  view.setBigUint64(13, BigInt(1_700_000_000_000), true);
  view.setUint32(21, payload.byteLength, true);
  bytes.set(payload, 25);
  return fixCrc(bytes);
}

/** Recomputes the CRC of a frame spanning all of `bytes` (so a damaged field stays CRC-valid). */
function fixCrc(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.byteLength - 4;
  view.setUint32(crcAt, crc32(bytes.subarray(4, crcAt)), true);
  return bytes;
}

function checkedAt(bytes: Uint8Array, offset = 0): { length: number; head: FrameHead } {
  const head = { lsn: -1, timestampMs: -1, byteLength: -1 };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { length: frameV3CheckedAt(bytes, view, offset, head), head };
}

Deno.test("frameV3CheckedAt() accepts exactly the v3 frames decodeFrame accepts, whatever bit flips", () => {
  const good = frame(41, "a payload of some length");
  const { length, head } = checkedAt(good);
  assert.equal(length, good.byteLength);
  assert.deepEqual(head, { lsn: 41, timestampMs: 1_700_000_000_041, byteLength: good.byteLength });
  for (let bit = 0; bit < good.byteLength * 8; bit++) {
    const damaged = good.slice();
    damaged[bit >> 3]! ^= 1 << (bit & 7);
    const decoded = decodeFrame(damaged);
    const checked = checkedAt(damaged).length;
    assert.equal(checked > 0, decoded.status === "ok", `bit ${bit}`);
  }
  // A field past 2^53 with a good CRC: refused by both.
  const huge = good.slice();
  huge[28] = 0xff; // the LSN's top byte
  assert.equal(decodeFrame(fixCrc(huge)).status, "corrupt");
  assert.equal(checkedAt(huge).length, 0);
});

Deno.test("frameV3CheckedAt() leaves torn frames, v2 frames and other bytes to decodeFrame", () => {
  const good = frame(7, "hello");
  for (let cut = 0; cut < good.byteLength; cut++) {
    assert.equal(checkedAt(good.subarray(0, cut)).length, 0, `cut at ${cut}`);
  }
  const v2 = frameV2(9, "old");
  assert.equal(decodeFrame(v2).status, "ok");
  assert.equal(checkedAt(v2).length, 0);
  const two = new Uint8Array([...frame(1, "x"), ...frame(2, "y")]);
  assert.equal(checkedAt(two, frame(1, "x").byteLength).head.lsn, 2);
});

/** Both scans over the same file bytes: where they stop and the LSNs they visit. */
async function bothScans(bytes: Uint8Array): Promise<Array<{ end: ScanEnd; lsns: number[] }>> {
  const fs = new MemFs();
  await fs.mkdirp("/d");
  const file = await fs.open("/d/f", { write: true, create: true });
  await file.writeAt(bytes, 0);
  const range = { start: 0, end: bytes.byteLength, reuse: true };
  const out = [];
  for (const scan of [scanFrames, scanFrameHeads]) {
    const lsns: number[] = [];
    const end = await scan(file, range, (f: FrameHead) => lsns.push(f.lsn) > 0);
    out.push({ end, lsns });
  }
  file.close();
  return out;
}

Deno.test("scanFrameHeads() stops where and why scanFrames() stops: end, torn tail, bad CRC, v2 frames", async () => {
  const frames = Array.from({ length: 5 }, (_, i) => frame(i + 1, `record ${i + 1}`));
  const whole = new Uint8Array(frames.flatMap((f) => [...f]));
  const flipped = whole.slice();
  flipped[frames[0]!.byteLength + frames[1]!.byteLength + 50]! ^= 0x08;
  const cases = [
    whole,
    whole.subarray(0, whole.byteLength - 3),
    flipped,
    new Uint8Array([...whole, 0x52, 0x44]),
    new Uint8Array([...frameV2(1, "old"), ...frame(2, "new")]),
  ];
  for (const [i, bytes] of cases.entries()) {
    const [decoding, checking] = await bothScans(bytes);
    assert.deepEqual(checking, decoding, `case ${i}`);
  }
});
