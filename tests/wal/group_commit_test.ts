// SPEC.md section 3, group commit: the appends of one commit become one buffer of v3 frames with
// consecutive LSNs; mirrored frames are copied as they are, and must follow each other.

import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeGroupCommit, type PendingAppend } from "../../src/wal/group_commit.ts";
import { decodeWholeFrame, encodeFrameV3, frameV3ByteLength } from "../../src/wal/frame.ts";
import { LsnGapError } from "../../src/core/errors.ts";

function append(payloads: Uint8Array[]): PendingAppend<void> {
  const frameBytes = payloads.reduce((sum, p) => sum + frameV3ByteLength(p.byteLength), 0);
  return { payloads, frameBytes, resolve: () => {}, reject: () => {} };
}

Deno.test("property: a group commit's buffer is each payload's v3 frame back to back, and `ends` says where each ends", () => {
  const appends = fc.array(
    fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 4 }),
    {
      minLength: 1,
      maxLength: 5,
    },
  );
  fc.assert(
    fc.property(appends, fc.integer({ min: 0, max: 2 ** 40 }), (payloadLists, previousLsn) => {
      const stamp = { term: 7, previousLsn, timestampMs: 1234 };
      const commit = encodeGroupCommit(payloadLists.map(append), stamp);
      const expected = payloadLists.flat().map((payload, i) =>
        encodeFrameV3({
          term: 7,
          ownershipEpoch: 0,
          lsn: previousLsn + 1 + i,
          timestampMs: 1234,
          payload,
        })
      );
      let offset = 0;
      const ends = expected.map((frame) => (offset += frame.byteLength));
      assert.deepEqual(commit.ends, ends);
      assert.deepEqual(commit.buffer, new Uint8Array(expected.flatMap((frame) => [...frame])));
      assert.equal(commit.firstLsn, previousLsn + 1);
      assert.equal(commit.firstTimestampMs, 1234);
    }),
  );
});

Deno.test("mirrored frames are copied byte for byte, their own time first, and a gap writes nothing", () => {
  const frames = [5, 6].map((lsn) =>
    decodeWholeFrame(
      encodeFrameV3({
        term: 3,
        ownershipEpoch: 0,
        lsn,
        timestampMs: 50 + lsn,
        payload: new Uint8Array([lsn]),
      }),
    )
  );
  const mirrored = { ...append([]), payloads: frames.map((f) => f.payload), frames };
  mirrored.frameBytes = frames.reduce((sum, f) => sum + f.byteLength, 0);
  const commit = encodeGroupCommit([mirrored], { term: 9, previousLsn: 4, timestampMs: 1 });
  assert.deepEqual(commit.buffer, new Uint8Array([...frames[0]!.bytes, ...frames[1]!.bytes]));
  assert.deepEqual([commit.firstLsn, commit.firstTimestampMs], [5, 55]);
  assert.deepEqual(commit.ends, [
    frames[0]!.byteLength,
    frames[0]!.byteLength + frames[1]!.byteLength,
  ]);
  assert.throws(
    () => encodeGroupCommit([mirrored], { term: 9, previousLsn: 3, timestampMs: 1 }),
    LsnGapError,
  );
});
