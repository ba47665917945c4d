// Read-ahead for catching-up readers (src/wal/read_ahead.ts): a raw range read that fills its
// budget reads the next range in the background; the reader's next pull starts from those bytes
// instead of a read of its own and gets exactly what it would have read. Entries are taken once,
// expire, stay within their bounds, and go when the files change (truncation, pruning).

import assert from "node:assert/strict";
import { concatBytes } from "../../src/core/bytes.ts";
import { denoFileSystem, joinPath } from "../../src/core/files.ts";
import { READ_AHEAD_ENTRIES_MAX, READ_AHEAD_TTL_MS } from "../../src/core/limits.ts";
import type { RawFrames } from "../../src/wal/range_read.ts";
import { ReadAhead } from "../../src/wal/read_ahead.ts";
import type { Segment } from "../../src/wal/segment.ts";
import { Spool } from "../../src/wal/spool.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { eventually } from "../helpers/stream_tap.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();
const RECORDS = 600;
const PULL = 50;

function payloadOf(lsn: number): Uint8Array {
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value: lsn }));
}

/** A spool of RECORDS records in sealed segments (no tail), reads recorded. */
async function sealedSpool(dir: string) {
  const walDir = joinPath(dir, "wal");
  const options = { walDir, timeline: 1, term: 1, segmentBytesMax: 16_384, tailBytesMax: 0 };
  const writer = await Spool.open(options);
  for (let lsn = 1; lsn <= RECORDS; lsn++) await writer.append([payloadOf(lsn)]);
  await writer.close();
  const fs = recordingFileSystem();
  return { spool: await Spool.open({ ...options, fs }), fs };
}

/** `raw` holds exactly the bytes of the frames `readSince(since)` decodes. */
async function assertReadSinceBytes(spool: Spool, since: number, raw: RawFrames): Promise<void> {
  const frames = await spool.readSince(since, PULL, 1 << 20);
  assert.equal(raw.count, frames.length);
  assert.deepEqual(
    concatBytes(raw.chunks, raw.byteLength),
    concatBytes(frames.map((f) => f.bytes), frames.reduce((n, f) => n + f.byteLength, 0)),
  );
}

Deno.test("pulls that go on where the last ended get exactly readSince's bytes, segment after segment", async () => {
  await withTempDir(async (dir) => {
    const { spool } = await sealedSpool(dir);
    try {
      const pulls = [];
      for (let since = 0; since < RECORDS;) {
        const raw = await spool.readRawSince(since, PULL, 1 << 20);
        pulls.push({ since, raw });
        since = raw.lastLsn;
      }
      assert.ok(pulls.length > 2 * spool.segments().length, "several pulls per segment");
      for (const { since, raw } of pulls) await assertReadSinceBytes(spool, since, raw);
    } finally {
      await spool.close();
    }
  });
});

Deno.test("the next pull starts from the bytes read ahead: its only read is the one ahead of it", async () => {
  await withTempDir(async (dir) => {
    const { spool, fs } = await sealedSpool(dir);
    try {
      await spool.readSince(0, 1, 1 << 20); // loads the first segment's seek index
      fs.reads.length = 0;
      const first = await spool.readRawSince(0, PULL, 1 << 20);
      await eventually("the read ahead of the first pull", () => fs.reads.length >= 2);
      const ahead = fs.reads[1]!;
      assert.ok(ahead.position > fs.reads[0]!.position);
      assert.ok(spool.stats().readAheadBytes > 0);
      const second = await spool.readRawSince(first.lastLsn, PULL, 1 << 20);
      assert.equal(second.count, PULL);
      await eventually("the read ahead of the second pull", () => fs.reads.length >= 3);
      // A read of its own would start at or before the first frame it serves (the read-ahead's).
      assert.ok(fs.reads[2]!.position > ahead.position, JSON.stringify(fs.reads));
    } finally {
      await spool.close();
    }
    assert.equal(spool.stats().readAheadBytes, 0, "a closed spool holds none");
  });
});

Deno.test("after a truncation and new appends, the next pull gets the new bytes, not those read ahead before", async () => {
  await withTempDir(async (dir) => {
    const { spool, fs } = await sealedSpool(dir);
    try {
      await spool.readSince(0, 1, 1 << 20);
      fs.reads.length = 0;
      const first = await spool.readRawSince(0, PULL, 1 << 20);
      await eventually("the read ahead of the first pull", () => fs.reads.length >= 2);
      await spool.truncateAfter(first.lastLsn + 10);
      assert.equal(spool.stats().readAheadBytes, 0, "dropped by the truncation");
      for (let lsn = first.lastLsn + 11; lsn <= first.lastLsn + 60; lsn++) {
        await spool.append([
          utf8.encode(JSON.stringify({ op: "delete", collection: "c", key: `n${lsn}` })),
        ]);
      }
      const next = await spool.readRawSince(first.lastLsn, PULL, 1 << 20);
      assert.equal(next.count, PULL);
      await assertReadSinceBytes(spool, first.lastLsn, next);
    } finally {
      await spool.close();
    }
  });
});

Deno.test("ReadAhead: taken once, expired after its TTL, oldest dropped past the entry bound, a pruned segment's dropped", async () => {
  await withTempDir(async (dir) => {
    const path = joinPath(dir, "segment");
    await Deno.writeFile(path, new Uint8Array(4096).map((_, i) => i & 0xff));
    const segment = { path } as Segment;
    let nowMs = 0;
    const ahead = new ReadAhead(() => nowMs);
    const fs = denoFileSystem();
    ahead.schedule(fs, segment, { offset: 100, lsn: 7, size: 10 });
    assert.equal(ahead.take(segment, 8), undefined, "another LSN");
    const entry = ahead.take(segment, 7)!;
    assert.equal(entry.offset, 100);
    assert.deepEqual([...(await entry.bytes)!], Array.from({ length: 10 }, (_, i) => 100 + i));
    assert.equal(ahead.take(segment, 7), undefined, "taken once");
    ahead.schedule(fs, segment, { offset: 0, lsn: 1, size: 8 });
    nowMs += READ_AHEAD_TTL_MS + 1;
    assert.equal(ahead.take(segment, 1), undefined, "expired");
    for (let lsn = 1; lsn <= READ_AHEAD_ENTRIES_MAX + 1; lsn++) {
      ahead.schedule(fs, segment, { offset: lsn, lsn, size: 1 });
    }
    assert.equal(ahead.stats.entries, READ_AHEAD_ENTRIES_MAX);
    assert.equal(ahead.take(segment, 1), undefined, "the oldest went first");
    ahead.schedule(fs, segment, { offset: 4090, lsn: 99, size: 10 });
    assert.equal(await ahead.take(segment, 99)!.bytes, undefined, "a short read is no entry");
    const other = { path } as Segment;
    ahead.schedule(fs, other, { offset: 0, lsn: 5, size: 4 });
    ahead.drop([segment]);
    assert.deepEqual(ahead.stats, { entries: 1, bytes: 4 }, "a pruned segment's entries go");
    assert.ok(ahead.take(other, 5), "the others stay");
    ahead.clear();
    assert.deepEqual(ahead.stats, { entries: 0, bytes: 0 });
    // Let the reads started above end before the test does.
    await Promise.all([2, 3].map((lsn) => ahead.take(segment, lsn)?.bytes));
  });
});
