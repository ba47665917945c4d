// Raw range reads (src/wal/range_read.ts, Spool.readRawSince): the records a raw-frame pull serves
// from the file's bytes are exactly those readSince decodes, byte for byte, whatever the start,
// count and byte budget, across segment boundaries and into the in-memory tail; one read covers a
// pull inside one segment; a damaged header is still corruption, a damaged payload is served as
// stored and left to the receiver's CRC check.

import assert from "node:assert/strict";
import fc from "fast-check";
import { WalCorruptionError } from "../../src/core/errors.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { joinPath } from "../../src/core/files.ts";
import { decodeFrameRun } from "../../src/wal/frame.ts";
import type { RawFrames } from "../../src/wal/range_read.ts";
import { segmentFileName } from "../../src/wal/segment.ts";
import { Spool, type SpoolOptions } from "../../src/wal/spool.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();

/** Deterministic sizes, so a failure replays. */
function sizes(count: number, seed: number, maxBytes: number): number[] {
  let x = seed;
  return Array.from({ length: count }, () => {
    x = (x * 1_103_515_245 + 12_345) & 0x7fff_ffff;
    return 1 + (x % maxBytes);
  });
}

function payloadOf(lsn: number, bytes: number): Uint8Array {
  const text = JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value: "" });
  return utf8.encode(text.slice(0, -3) + `"${"x".repeat(Math.max(0, bytes - text.length))}"}`);
}

/** Appends `count` records in group commits of 1..7 records. */
async function fill(spool: Spool, count: number, seed: number): Promise<void> {
  const lengths = sizes(count, seed, 700);
  let lsn = spool.currentLsn();
  while (lsn < count) {
    const batch = Math.min(count - lsn, 1 + (lengths[lsn]! % 7));
    const payloads = Array.from(
      { length: batch },
      (_, i) => payloadOf(lsn + i + 1, lengths[lsn + i]!),
    );
    await spool.append(payloads);
    lsn += batch;
  }
}

function rawBytes(raw: RawFrames): Uint8Array {
  return concatBytes(raw.chunks, raw.byteLength);
}

/** Asserts that the raw read after `since` is what readSince decodes, byte for byte. */
async function assertSameAsReadSince(
  spool: Spool,
  since: number,
  maxCount: number,
  maxBytes: number,
): Promise<void> {
  const frames = await spool.readSince(since, maxCount, maxBytes);
  const raw = await spool.readRawSince(since, maxCount, maxBytes);
  const where = `since ${since}, max_count ${maxCount}, max_bytes ${maxBytes}`;
  assert.equal(raw.count, frames.length, where);
  assert.equal(raw.lastLsn, frames[frames.length - 1]?.lsn ?? since, where);
  const expected = concatBytes(
    frames.map((f) => f.bytes),
    frames.reduce((n, f) => n + f.byteLength, 0),
  );
  assert.equal(raw.byteLength, expected.byteLength, where);
  assert.deepEqual(rawBytes(raw), expected, where);
}

const SPOOL_OPTIONS: Partial<SpoolOptions> = { segmentBytesMax: 4096, tailBytesMax: 6000 };
const RECORDS = 400;

function open(walDir: string, extra: Partial<SpoolOptions> = {}): Promise<Spool> {
  return Spool.open({ walDir, timeline: 1, term: 1, ...SPOOL_OPTIONS, ...extra });
}

/** Random reads (start anywhere, including the end; small and large budgets). */
function readArbitrary() {
  return fc.record({
    // Every start, and more of them near the end, where the tail and the last segments meet.
    since: fc.oneof(
      fc.integer({ min: 0, max: RECORDS }),
      fc.integer({ min: RECORDS - 40, max: RECORDS }),
    ),
    maxCount: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: RECORDS + 5 })),
    maxBytes: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 400_000 })),
  });
}

Deno.test("readRawSince() returns exactly the frames readSince() returns, across segments and the tail, before and after a restart", async () => {
  await withTempDir(async (dir) => {
    const walDir = joinPath(dir, "wal");
    let spool = await open(walDir);
    try {
      await fill(spool, RECORDS, 7);
      assert.ok(spool.segments().length > 20, "many segments");
      assert.ok(spool.stats().tailRecords < RECORDS / 4, "most records are on disk only");
      const property = fc.asyncProperty(readArbitrary(), async ({ since, maxCount, maxBytes }) => {
        await assertSameAsReadSince(spool, since, maxCount, maxBytes);
      });
      await fc.assert(property, { numRuns: 150 });
      await spool.close();
      // After a restart the sealed segments have no seek index yet and the tail holds the newest.
      spool = await open(walDir);
      await fc.assert(property, { numRuns: 150 });
      for (const since of [0, RECORDS - 1, RECORDS]) {
        await assertSameAsReadSince(spool, since, RECORDS, Number.MAX_SAFE_INTEGER);
        await assertSameAsReadSince(spool, since, 1, 0);
      }
    } finally {
      await spool.close();
    }
  });
});

Deno.test("readRawSince() with no tail reads the active segment's older part from its file", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(joinPath(dir, "wal"), { segmentBytesMax: 1 << 20, tailBytesMax: 0 });
    try {
      await fill(spool, 120, 3);
      assert.equal(spool.segments().length, 1);
      for (const since of [0, 1, 63, 64, 65, 100, 119]) {
        await assertSameAsReadSince(spool, since, 1000, 1 << 20);
        await assertSameAsReadSince(spool, since, 7, 900);
      }
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a raw pull inside one sealed segment reads its byte range with one read, after the index", async () => {
  await withTempDir(async (dir) => {
    const walDir = joinPath(dir, "wal");
    const writer = await open(walDir, { segmentBytesMax: 64 * 1024, tailBytesMax: 0 });
    try {
      await fill(writer, 600, 11);
    } finally {
      await writer.close();
    }
    const fs = recordingFileSystem();
    const spool = await open(walDir, { segmentBytesMax: 64 * 1024, tailBytesMax: 0, fs });
    try {
      const first = spool.segments()[0]!;
      assert.ok(first.lastLsn > 150 && spool.segments().length > 2);
      const path = joinPath(spool.dir, segmentFileName(first.firstLsn));
      await spool.readSince(0, 1, 1 << 20); // builds the first segment's seek index
      fs.reads.length = 0;
      const raw = await spool.readRawSince(70, 50, 1 << 20);
      assert.equal(raw.count, 50);
      // A second read, if it has started, is the read-ahead of the next range.
      assert.equal(fs.reads[0]?.path, path, "one read of the segment file");
      assert.ok(
        fs.reads.length <= 2 && (fs.reads[1]?.position ?? Infinity) > fs.reads[0]!.position,
      );
      assert.equal(raw.chunks.length, 1, "one view of that read");
    } finally {
      await spool.close();
    }
  });
});

/** Flips one bit of the sealed segment holding `lsn`, at `offsetInFrame` of that record's frame. */
async function flipInFrame(spool: Spool, lsn: number, offsetInFrame: number): Promise<void> {
  const info = spool.segments().find((s) => s.firstLsn <= lsn && lsn <= s.lastLsn)!;
  const path = joinPath(spool.dir, segmentFileName(info.firstLsn));
  const bytes = await Deno.readFile(path);
  const run = decodeFrameRun(bytes);
  const frame = run.frames[lsn - info.firstLsn]!;
  bytes[frame.bytes.byteOffset + offsetInFrame]! ^= 0x10;
  await Deno.writeFile(path, bytes);
}

Deno.test("a flipped payload bit in a sealed segment: readSince fails, readRawSince serves the bytes as stored, and the receiver's one-pass check stops at that frame", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(joinPath(dir, "wal"), { tailBytesMax: 0 });
    try {
      await fill(spool, 120, 5);
      await spool.readSince(0, RECORDS, 1 << 20); // every seek index built, verified
      await flipInFrame(spool, 20, 50);
      await assert.rejects(spool.readSince(10, 100, 1 << 20), WalCorruptionError);
      const raw = await spool.readRawSince(10, 100, 1 << 20);
      assert.equal(raw.count, 100, "served from the file's bytes, not decoded");
      const run = decodeFrameRun(rawBytes(raw));
      assert.deepEqual(run.frames.map((f) => f.lsn), [...Array(9)].map((_, i) => 11 + i));
      assert.deepEqual(run.stop, { status: "corrupt", reason: "crc mismatch" });
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a damaged frame header in a sealed segment is corruption for raw reads too, reported once", async () => {
  await withTempDir(async (dir) => {
    const corruptions: string[] = [];
    const spool = await open(joinPath(dir, "wal"), {
      tailBytesMax: 0,
      observer: { corruption: (error) => corruptions.push(error.message) },
    });
    try {
      await fill(spool, 120, 9);
      await spool.readSince(0, RECORDS, 1 << 20);
      await flipInFrame(spool, 30, 1); // the magic
      for (let i = 0; i < 2; i++) {
        await assert.rejects(spool.readRawSince(25, 100, 1 << 20), WalCorruptionError);
      }
      assert.equal(corruptions.length, 1);
      assert.match(corruptions[0]!, /bad magic/);
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a frame larger than the first read's estimate is read whole by a further read, with the same result", async () => {
  await withTempDir(async (dir) => {
    const walDir = joinPath(dir, "wal");
    const options = { segmentBytesMax: 1 << 20, tailBytesMax: 0 };
    const writer = await open(walDir, options);
    try {
      for (let lsn = 1; lsn <= 300; lsn++) {
        await writer.append([payloadOf(lsn, lsn === 120 ? 300_000 : 100)]);
      }
      await writer.append([payloadOf(301, 100)]); // a second segment: the first is sealed
    } finally {
      await writer.close();
    }
    const fs = recordingFileSystem();
    const spool = await open(walDir, { ...options, fs });
    try {
      await spool.readSince(0, 1, 1 << 20);
      fs.reads.length = 0;
      const raw = await spool.readRawSince(60, 100, 1 << 20);
      assert.equal(raw.count, 100);
      // A third read, if it has started, is the read-ahead of the next range (after both).
      const [estimate, rest] = fs.reads;
      assert.ok(
        estimate && rest && rest.position > estimate.position,
        "the estimate, then the rest",
      );
      assert.ok(fs.reads.length <= 3, "then at most the read-ahead");
      for (const since of [0, 100, 118, 119, 120, 250]) {
        await assertSameAsReadSince(spool, since, 100, 1 << 20);
        await assertSameAsReadSince(spool, since, 3, 200);
      }
    } finally {
      await spool.close();
    }
  });
});
