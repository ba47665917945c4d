// SPEC.md section 4, retention: a prune never removes WAL a slot pins, even a slot pinned while
// the prune waited behind another one. Real files and Deno KV.

import assert from "node:assert/strict";
import { appendRecords, SEGMENT_FILLING_PAYLOAD, withPrimary } from "../helpers/primary_fixture.ts";
import { observedFileSystem } from "../helpers/observed_fs.ts";

Deno.test("pruneThrough() reads the slots' floor when the prune starts: a slot pinned while it waits keeps its WAL", async () => {
  const fs = observedFileSystem();
  const spool = { segmentBytesMax: 4096, tailBytesMax: 0, fs };
  await withPrimary({ spool }, async ({ primary }) => {
    // One record per segment: segment n holds LSN n, and 8 is the active one.
    await appendRecords(primary, 8, SEGMENT_FILLING_PAYLOAD);
    const held = fs.holdRemoves();
    const first = primary.pruneThrough(2);
    await held.started;
    // No slot yet: this prune would go through 8, but it has to wait for the first one.
    const second = primary.pruneThrough(8);
    await primary.pinSlot("snapshot-1", 4);
    held.release();
    await Promise.all([first, second]);
    assert.equal(primary.spool.oldestLsn(), 5, "records after the pinned LSN 4 survive");
    const frames = await primary.spool.readSince(4, 100, 1 << 20);
    assert.deepEqual(frames.map((frame) => frame.lsn), [5, 6, 7, 8]);
  });
});
