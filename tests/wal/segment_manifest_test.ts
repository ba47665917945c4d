// SPEC.md section 3, "open cost must not grow with the number of sealed segments": the manifest of
// sealed segments and their sizes is a pure codec with a CRC; anything damaged decodes to nothing.

import assert from "node:assert/strict";
import { decodeManifest, encodeManifest } from "../../src/wal/segment_manifest.ts";

const entries = [
  { firstLsn: 1, sizeBytes: 67_108_900 },
  { firstLsn: 62_001, sizeBytes: 67_109_000 },
];

Deno.test("encodeManifest() and decodeManifest() round-trip, empty included", () => {
  assert.deepEqual(decodeManifest(encodeManifest(entries)), entries);
  assert.deepEqual(decodeManifest(encodeManifest([])), []);
});

Deno.test("decodeManifest() refuses a manifest with any flipped bit or a cut end", () => {
  const bytes = encodeManifest(entries);
  for (let bit = 0; bit < bytes.byteLength * 8; bit++) {
    const damaged = bytes.slice();
    damaged[bit >> 3]! ^= 1 << (bit & 7);
    assert.equal(decodeManifest(damaged), undefined, `bit ${bit}`);
  }
  for (let cut = 0; cut < bytes.byteLength; cut++) {
    assert.equal(decodeManifest(bytes.subarray(0, cut)), undefined, `cut at ${cut}`);
  }
});
