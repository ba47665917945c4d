// SPEC.md section 3, the seek index persisted beside a sealed segment: a pure codec whose output is
// used only when it checks out against the segment (CRC, first LSN, last LSN, size, checkpoints).
// It also keeps the segment's SHA-256 (SPEC.md 13.2), computed once when the segment was sealed.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import {
  checkpointCount,
  decodeSidecar,
  encodeSidecar,
  sidecarPath,
} from "../../src/wal/seek_sidecar.ts";

const segment = { firstLsn: 101, lastLsn: 300, sizeBytes: 50_000 };
const sha256 = "0f".repeat(16) + "a5".repeat(16);
const offsets = [0, 9_000, 18_000, 40_000]; // 200 records: checkpoints at ordinals 0, 64, 128, 192

Deno.test("encodeSidecar() and decodeSidecar() round-trip the checkpoint offsets", () => {
  assert.equal(checkpointCount(200), 4);
  const decoded = decodeSidecar(encodeSidecar({ ...segment, sha256, offsets }), segment);
  assert.deepEqual(decoded, { offsets, sha256 });
  assert.equal(sidecarPath("/w/00000000000000000101.wal"), "/w/00000000000000000101.idx");
});

Deno.test("decodeSidecar() refuses a sidecar with any flipped bit", () => {
  const bytes = encodeSidecar({ ...segment, sha256, offsets });
  for (let bit = 0; bit < bytes.byteLength * 8; bit++) {
    const damaged = bytes.slice();
    damaged[bit >> 3]! ^= 1 << (bit & 7);
    assert.ok("reason" in decodeSidecar(damaged, segment), `bit ${bit}`);
  }
  assert.ok("reason" in decodeSidecar(bytes.subarray(0, bytes.byteLength - 1), segment));
});

Deno.test("decodeSidecar() refuses a sidecar of another first LSN, last LSN or size", () => {
  const bytes = encodeSidecar({ ...segment, sha256, offsets });
  for (const other of [{ firstLsn: 102 }, { lastLsn: 299 }, { sizeBytes: 49_999 }]) {
    assert.ok("reason" in decodeSidecar(bytes, { ...segment, ...other }), JSON.stringify(other));
  }
});

Deno.test("decodeSidecar() refuses checkpoints a segment of that many records cannot have", () => {
  const cases = [
    [0, 9_000, 18_000], // too few for 200 records
    [1, 9_000, 18_000, 40_000], // the first record is at offset 0
    [0, 18_000, 9_000, 40_000], // offsets rise
    [0, 9_000, 18_000, 50_000], // inside the file
  ];
  for (const bad of cases) {
    const bytes = encodeSidecar({ ...segment, sha256, offsets: bad });
    assert.ok("reason" in decodeSidecar(bytes, segment), JSON.stringify(bad));
  }
});

Deno.test("decodeSidecar() refuses a version 1 sidecar, which has no digest: the scan rebuilds it", () => {
  const bytes = encodeSidecar({ ...segment, sha256, offsets });
  bytes[4] = 1;
  const view = new DataView(bytes.buffer);
  view.setUint32(bytes.byteLength - 4, crc32(bytes.subarray(0, bytes.byteLength - 4)), true);
  assert.deepEqual(decodeSidecar(bytes, segment), { reason: "bad magic or version" });
});
