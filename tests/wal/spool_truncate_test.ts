// SPEC.md 13.4, "Divergence by (lsn, term)": a returning old primary truncates its log past the
// fork point before it rejoins. `Spool.truncateAfter(lsn)` drops every record after `lsn`, durably:
// later segments go whole, the segment holding the fork is cut after the fork's frame and becomes
// the active segment again (never listed as sealed with its old digest), and appends continue at
// `lsn + 1`. Real files unless a test needs the in-memory layer (many runs of the property).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  NotFoundError,
  UnavailableError,
  WalRemovedError,
  WalTruncateError,
} from "../../src/core/errors.ts";
import {
  denoFileSystem,
  type FileSystem,
  joinPath,
  readFileIfExists,
} from "../../src/core/files.ts";
import { type DecodedFrame, decodeFrameRun } from "../../src/wal/frame.ts";
import { Spool, type SpoolOptions } from "../../src/wal/spool.ts";
import { parseSegmentFileName, segmentFileName } from "../../src/wal/segment.ts";
import { readManifestSizes } from "../../src/wal/segment_manifest.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { wrapFileSystem } from "../helpers/wrapped_fs.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { observedFileSystem } from "../helpers/observed_fs.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();
/** Frames carry the spool clock's time: a fixed clock makes equal histories equal byte for byte. */
const CLOCK_MS = 1_700_000_000_000;
/** Small segments, so a few dozen records span several of them. */
const SEGMENT_BYTES = 1024;
const TIMELINE_DIR = "00000001";

/** A record payload of about `size` bytes naming `tag`. */
function payload(tag: string | number, size = 100): Uint8Array {
  return utf8.encode(`{"key":"k${tag}","pad":"`.padEnd(size - 2, "x") + '"}');
}

function open(walDir: string, extra: Partial<SpoolOptions> = {}): Promise<Spool> {
  const options = { segmentBytesMax: SEGMENT_BYTES, clock: () => CLOCK_MS, ...extra };
  return Spool.open({ walDir, timeline: 1, term: 1, ...options });
}

async function appendMany(spool: Spool, from: number, to: number, tag = ""): Promise<void> {
  for (let i = from; i <= to; i++) await spool.append([payload(`${tag}${i}`)]);
}

/** Every retained record, read back with `readSince` (each frame's CRC checked). */
async function readAll(spool: Spool): Promise<DecodedFrame[]> {
  const frames: DecodedFrame[] = [];
  let since = spool.oldestLsn() - 1;
  while (since < spool.currentLsn()) {
    const page = await spool.readSince(since, 1000, 1 << 20);
    frames.push(...page);
    since = page[page.length - 1]!.lsn;
  }
  return frames;
}

function keysOf(frames: readonly DecodedFrame[]): string[] {
  return frames.map((frame) => JSON.parse(text.decode(frame.payload)).key);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/** Every retained record as stored, read back with `readRawSince`. */
async function readAllRaw(spool: Spool): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let since = spool.oldestLsn() - 1;
  while (since < spool.currentLsn()) {
    const raw = await spool.readRawSince(since, 1000, 1 << 20);
    chunks.push(...raw.chunks);
    since = raw.lastLsn;
  }
  return concat(chunks);
}

/** The segment files of the timeline directory, oldest first: first LSN and bytes. */
async function segmentFiles(
  fs: FileSystem,
  walDir: string,
): Promise<Array<{ firstLsn: number; bytes: Uint8Array }>> {
  const dir = joinPath(walDir, TIMELINE_DIR);
  const firstLsns = (await fs.readDir(dir)).map(parseSegmentFileName)
    .filter((lsn): lsn is number => lsn !== undefined).sort((a, b) => a - b);
  const files = [];
  for (const firstLsn of firstLsns) {
    files.push({ firstLsn, bytes: await wholeFile(fs, joinPath(dir, segmentFileName(firstLsn))) });
  }
  return files;
}

/** The whole log as stored: every segment file, oldest first, end to end. */
async function storedLog(fs: FileSystem, walDir: string): Promise<Uint8Array> {
  return concat((await segmentFiles(fs, walDir)).map((file) => file.bytes));
}

function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Checks that `spool.sealed.list()` tells the truth about the files: each listed segment holds
 * exactly the records its name promises (first LSN to the LSN before the next segment), whole and
 * in order, and its digest is the SHA-256 of the file as it is now.
 */
async function assertListingMatchesFiles(spool: Spool, fs: FileSystem, walDir: string) {
  const files = await segmentFiles(fs, walDir);
  const listed = await spool.sealed.list();
  assert.deepEqual(listed.map((s) => s.firstLsn), files.slice(0, -1).map((f) => f.firstLsn));
  for (const [i, info] of listed.entries()) {
    const bytes = files[i]!.bytes;
    const run = decodeFrameRun(bytes);
    assert.equal(run.stop, undefined, `segment ${info.firstLsn} decodes whole`);
    assert.deepEqual(
      run.frames.map((frame) => frame.lsn),
      Array.from({ length: info.lastLsn - info.firstLsn + 1 }, (_, k) => info.firstLsn + k),
    );
    assert.equal(info.lastLsn, files[i + 1]!.firstLsn - 1);
    assert.equal(info.sizeBytes, bytes.byteLength);
    assert.equal(info.sha256, sha256Of(bytes), `segment ${info.firstLsn}'s digest is current`);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

Deno.test("truncateAfter() in the middle of the active segment drops the records after it, durably", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir, { segmentBytesMax: 1 << 20 });
    await appendMany(spool, 1, 10);
    const before = await readAllRaw(spool);
    const keptBytes = (await spool.readRawSince(0, 6, 1 << 20)).byteLength;
    const result = await spool.truncateAfter(6);
    assert.deepEqual(result, {
      droppedRecords: 4,
      droppedBytes: before.byteLength - keptBytes,
      currentLsn: 6,
    });
    assert.equal(spool.currentLsn(), 6);
    assert.deepEqual((await readAll(spool)).map((f) => f.lsn), range(1, 6));
    assert.deepEqual(await readAllRaw(spool), before.subarray(0, keptBytes));
    assert.deepEqual(await storedLog(denoFileSystem(), walDir), before.subarray(0, keptBytes));
    await spool.close();
    const reopened = await open(walDir, { segmentBytesMax: 1 << 20 });
    assert.equal(reopened.currentLsn(), 6);
    assert.deepEqual(await readAllRaw(reopened), before.subarray(0, keptBytes));
    await reopened.close();
  });
});

Deno.test("after truncateAfter() appends continue at lsn + 1 and reads return the kept records, then the new ones", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 40, "old");
    await spool.truncateAfter(17);
    assert.deepEqual(await spool.append([payload("new18"), payload("new19")]), {
      firstLsn: 18,
      lastLsn: 19,
      timestampMs: CLOCK_MS,
    });
    await appendMany(spool, 20, 30, "new");
    const expected = [
      ...range(1, 17).map((i) => `kold${i}`),
      ...range(18, 30).map((i) => `knew${i}`),
    ];
    assert.deepEqual(keysOf(await readAll(spool)), expected);
    // The raw reads return the same records, byte for byte as the decoded ones.
    assert.deepEqual(
      await readAllRaw(spool),
      concat((await readAll(spool)).map((frame) => frame.bytes)),
    );
    await spool.close();
    const reopened = await open(walDir);
    assert.equal(reopened.currentLsn(), 30);
    assert.deepEqual(keysOf(await readAll(reopened)), expected);
    await reopened.close();
  });
});

Deno.test("truncateAfter() across segments deletes later segments newest first, each deletion fsynced, and reactivates the sealed one", async () => {
  await withTempDir(async (walDir) => {
    const logger = createMemoryLogger();
    const fs = observedFileSystem();
    const spool = await open(walDir, { fs, logger, tailBytesMax: 0 });
    await appendMany(spool, 1, 60);
    const segments = spool.segments();
    assert.ok(segments.length >= 6, `${segments.length} segments`);
    const kept = segments[2]!;
    const lsn = kept.firstLsn + 2;
    const storedBefore = await storedLog(fs, walDir);
    fs.ops.length = 0;
    const result = await spool.truncateAfter(lsn);
    assert.equal(result.droppedRecords, 60 - lsn);
    assert.equal(result.currentLsn, lsn);
    const dir = joinPath(walDir, TIMELINE_DIR);
    const removedPaths = segments.slice(3).map((s) => joinPath(dir, segmentFileName(s.firstLsn)));
    // Newest first, and each deletion is durable before the next: no reopen ever sees a hole.
    const expectedOps = removedPaths.reverse().flatMap((
      path,
    ) => [`remove ${path}`, `syncDir ${dir}`]);
    const segmentOps = fs.ops.filter((op) => op.endsWith(".wal") && op.startsWith("remove"));
    const first = fs.ops.indexOf(segmentOps[0]!);
    assert.deepEqual(fs.ops.slice(first, first + expectedOps.length), expectedOps);
    assert.equal(fs.ops[first - 1], `syncDir ${dir}`, "sidecars and manifest settled before");
    assert.deepEqual(
      spool.segments().map((s) => [s.firstLsn, s.lastLsn, s.sealed]),
      [
        [segments[0]!.firstLsn, segments[0]!.lastLsn, true],
        [segments[1]!.firstLsn, segments[1]!.lastLsn, true],
        [kept.firstLsn, lsn, false],
      ],
    );
    const storedAfter = await storedLog(fs, walDir);
    assert.equal(result.droppedBytes, storedBefore.byteLength - storedAfter.byteLength);
    assert.deepEqual(storedAfter, storedBefore.subarray(0, storedAfter.byteLength));
    assert.equal(spool.retainedBytes(), storedAfter.byteLength);
    // The manifest lists exactly the segments still sealed: the kept one is active again.
    const sealedLsns = [segments[0]!.firstLsn, segments[1]!.firstLsn];
    assert.deepEqual(
      await readManifestSizes(fs, dir, sealedLsns),
      [segments[0]!.sizeBytes, segments[1]!.sizeBytes],
    );
    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    assert.equal(names.filter((name) => name.endsWith(".wal")).length, 3);
    assert.ok(!names.includes(segmentFileName(kept.firstLsn).replace(".wal", ".idx")));
    await assertListingMatchesFiles(spool, fs, walDir);
    const logged = logger.lines.filter((line) => line.event === "spool.truncated");
    assert.equal(logged.length, 1);
    assert.deepEqual(
      [logged[0]!.after_lsn, logged[0]!.dropped_records, logged[0]!.dropped_bytes],
      [lsn, result.droppedRecords, result.droppedBytes],
    );
    assert.equal(logged[0]!.removed_segments, segments.length - 3);
    assert.equal(logged[0]!.level, "info");
    assert.equal((await spool.append([payload("next")])).firstLsn, lsn + 1);
    await spool.close();
    const reopened = await open(walDir);
    assert.equal(reopened.currentLsn(), lsn + 1);
    assert.deepEqual((await readAll(reopened)).map((f) => f.lsn), range(1, lsn + 1));
    await assertListingMatchesFiles(reopened, denoFileSystem(), walDir);
    await reopened.close();
  });
});

Deno.test("truncateAfter() at a segment boundary leaves the sealed segment and its digest as they were", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 60);
    const segments = spool.segments();
    const listedBefore = await spool.sealed.list();
    const lsn = segments[1]!.lastLsn;
    const result = await spool.truncateAfter(lsn);
    assert.equal(result.currentLsn, lsn);
    assert.deepEqual(
      spool.segments().map((s) => [s.firstLsn, s.lastLsn, s.sizeBytes, s.sealed]),
      [
        [segments[0]!.firstLsn, segments[0]!.lastLsn, segments[0]!.sizeBytes, true],
        [segments[1]!.firstLsn, lsn, segments[1]!.sizeBytes, true],
        [lsn + 1, lsn, 0, false],
      ],
    );
    assert.deepEqual(await spool.sealed.list(), listedBefore.slice(0, 2));
    assert.equal(spool.oldestLsn(), 1);
    assert.equal((await spool.append([payload("next")])).firstLsn, lsn + 1);
    await spool.close();
    const reopened = await open(walDir);
    assert.deepEqual(await reopened.sealed.list(), listedBefore.slice(0, 2));
    assert.deepEqual((await readAll(reopened)).map((f) => f.lsn), range(1, lsn + 1));
    await reopened.close();
  });
});

Deno.test("truncateAfter(lsn ≥ currentLsn()) changes nothing", async () => {
  await withTempDir(async (walDir) => {
    const logger = createMemoryLogger();
    const spool = await open(walDir, { logger });
    await appendMany(spool, 1, 30);
    const stored = await storedLog(denoFileSystem(), walDir);
    const segments = spool.segments();
    for (const lsn of [30, 31, 1000]) {
      assert.deepEqual(await spool.truncateAfter(lsn), {
        droppedRecords: 0,
        droppedBytes: 0,
        currentLsn: 30,
      });
    }
    assert.deepEqual(spool.segments(), segments);
    assert.deepEqual(await storedLog(denoFileSystem(), walDir), stored);
    assert.deepEqual(logger.lines.filter((line) => line.event === "spool.truncated"), []);
    assert.equal((await spool.append([payload("next")])).firstLsn, 31);
    await spool.close();
  });
});

Deno.test("truncateAfter() below the oldest retained record throws WalTruncateError; just below it drops everything retained", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 60);
    await spool.pruneThrough(spool.segments()[2]!.lastLsn);
    const oldest = spool.oldestLsn();
    assert.ok(oldest > 1);
    await assert.rejects(spool.truncateAfter(oldest - 2), (error) => {
      assert.ok(error instanceof WalTruncateError);
      assert.equal(error.code, "wal_truncate");
      assert.deepEqual(error.details, { after_lsn: oldest - 2, oldest_lsn: oldest });
      return true;
    });
    assert.equal(spool.currentLsn(), 60, "nothing was dropped");
    await assert.rejects(spool.truncateAfter(0), WalTruncateError);
    const result = await spool.truncateAfter(oldest - 1);
    assert.equal(result.droppedRecords, 60 - oldest + 1);
    assert.equal(spool.currentLsn(), oldest - 1);
    assert.equal(spool.oldestLsn(), oldest);
    assert.deepEqual(await spool.sealed.list(), []);
    assert.equal((await spool.append([payload("again")])).firstLsn, oldest);
    await spool.close();
    const reopened = await open(walDir);
    assert.deepEqual([reopened.oldestLsn(), reopened.currentLsn()], [oldest, oldest]);
    await assert.rejects(reopened.readSince(0, 10, 1 << 20), WalRemovedError);
    await reopened.close();
  });
});

Deno.test("truncateAfter(0) of a spool that kept every record empties it; LSNs start again at 1", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 30);
    assert.equal((await spool.truncateAfter(0)).droppedRecords, 30);
    assert.deepEqual([spool.oldestLsn(), spool.currentLsn(), spool.retainedBytes()], [1, 0, 0]);
    assert.deepEqual(await spool.readSince(0, 10, 1 << 20), []);
    assert.equal((await spool.append([payload("first")])).firstLsn, 1);
    await spool.close();
  });
});

Deno.test("appends and reads asked for during a truncation are refused; appends queued before it are made durable first", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 20);
    const frames = await spool.readSince(0, 20, 1 << 20);
    const queued = spool.append([payload("queued")]);
    const truncation = spool.truncateAfter(5);
    await assert.rejects(spool.append([payload("during")]), UnavailableError);
    await assert.rejects(spool.appendFrames([frames[5]!]), UnavailableError);
    await assert.rejects(spool.readSince(0, 10, 1 << 20), UnavailableError);
    await assert.rejects(spool.readRawSince(0, 10, 1 << 20), UnavailableError);
    assert.equal((await queued).firstLsn, 21);
    assert.equal((await truncation).droppedRecords, 16);
    // A mirrored frame for LSN 6 follows the truncated log; the old LSN 21 no longer would.
    assert.equal((await spool.appendFrames([frames[5]!])).firstLsn, 6);
    assert.deepEqual((await readAll(spool)).map((f) => f.lsn), range(1, 6));
    await spool.close();
    await assert.rejects(spool.truncateAfter(3), UnavailableError);
  });
});

/**
 * `inner` with file reads that, once `hold(path?)` was called, wait until `release()`: every read,
 * or only those of `path`. `reached` resolves when the first read is held.
 */
function holdingReads(inner: FileSystem) {
  let heldPath: string | undefined | null = null;
  const held = Promise.withResolvers<void>();
  const reached = Promise.withResolvers<void>();
  const fs = wrapFileSystem(inner, (handle, path) => ({
    readAt: async (buffer, position) => {
      if (heldPath === undefined || heldPath === path) {
        reached.resolve();
        await held.promise;
      }
      return await handle.readAt(buffer, position);
    },
  }));
  const hold = (path?: string) => {
    heldPath = path;
  };
  return { fs, hold, reached: reached.promise, release: () => held.resolve() };
}

/** Lets the event loop turn a few times (in-memory files let a truncation finish in one). */
async function someTurns(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a read under way when a truncation is asked for ends first, with the records it started on", async () => {
  const memFs = new MemFs();
  const reads = holdingReads(memFs);
  // No tail: the read goes to the files the truncation cuts.
  const spool = await open("/data/wal", { fs: reads.fs, tailBytesMax: 0 });
  await appendMany(spool, 1, 60);
  const paths = memFs.paths();
  reads.hold();
  const read = spool.readSince(0, 1000, 1 << 20);
  await reads.reached;
  let truncated = false;
  const truncation = spool.truncateAfter(10).then(() => truncated = true);
  await someTurns();
  assert.equal(truncated, false);
  assert.deepEqual(memFs.paths(), paths, "no file was touched while the read was under way");
  reads.release();
  assert.deepEqual((await read).map((f) => f.lsn), range(1, 60));
  await truncation;
  assert.deepEqual((await readAll(spool)).map((f) => f.lsn), range(1, 10));
  await spool.close();
});

Deno.test("a sealed-segment listing under way when a truncation starts leaves no sidecar of a segment the truncation removed", async () => {
  const memFs = new MemFs();
  const first = await open("/data/wal", { fs: memFs });
  await appendMany(first, 1, 60);
  const segments = first.segments();
  await first.close();
  // Without sidecars, the listing rebuilds each one with a verifying scan and writes it.
  for (const path of memFs.paths().filter((p) => p.endsWith(".idx"))) await memFs.remove(path);
  const reads = holdingReads(memFs);
  const spool = await open("/data/wal", { fs: reads.fs });
  const dir = joinPath("/data/wal", TIMELINE_DIR);
  reads.hold(joinPath(dir, segmentFileName(segments[4]!.firstLsn)));
  const listing = spool.sealed.list();
  await reads.reached;
  const truncation = spool.truncateAfter(segments[2]!.firstLsn + 1);
  await someTurns();
  reads.release();
  await Promise.all([listing, truncation]);
  const sidecars = memFs.paths().filter((path) => path.endsWith(".idx"));
  assert.deepEqual(
    sidecars,
    segments.slice(0, 2).map((s) =>
      joinPath(dir, segmentFileName(s.firstLsn).replace(".wal", ".idx"))
    ),
  );
  assert.deepEqual((await spool.sealed.list()).map((s) => s.firstLsn), [1, segments[1]!.firstLsn]);
  await assertListingMatchesFiles(spool, memFs, "/data/wal");
  await spool.close();
});

Deno.test("truncateAfter() makes the tail and the append times forget the dropped records", async () => {
  await withTempDir(async (walDir) => {
    let now = 1000;
    const spool = await open(walDir, { clock: () => now, segmentBytesMax: 1 << 20 });
    for (let i = 1; i <= 20; i++) {
      now = i * 1000;
      await spool.append([payload(`old${i}`)]);
    }
    await spool.truncateAfter(10);
    // Served from the tail, which held 11..20 a moment ago: none of them comes back.
    assert.deepEqual((await spool.readSince(8, 100, 1 << 20)).map((f) => f.lsn), [9, 10]);
    now = 50_000;
    await spool.append([payload("new11")]);
    assert.deepEqual(keysOf(await spool.readSince(9, 100, 1 << 20)), ["kold10", "knew11"]);
    assert.equal(spool.appendedAtMs(11), 50_000);
    assert.equal(spool.appendedAtMs(10), 10_000);
    await spool.close();
  });
});

Deno.test("a truncated segment is never listed as sealed with its old size or digest, before or after it is sealed again", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 60, "a");
    const segments = spool.segments();
    const listedBefore = await spool.sealed.list();
    const cut = listedBefore[1]!;
    const lsn = cut.firstLsn + 1;
    await spool.truncateAfter(lsn);
    assert.deepEqual(await spool.sealed.list(), listedBefore.slice(0, 1));
    const oldName = { firstLsn: cut.firstLsn, lastLsn: cut.lastLsn, hash: cut.sha256.slice(0, 16) };
    await assert.rejects(spool.sealed.find(oldName), NotFoundError);
    // Different records of the same size: refilled, the segment is sealed again at the same LSNs.
    await appendMany(spool, lsn + 1, 60, "b");
    assert.deepEqual(spool.segments().map((s) => s.firstLsn), segments.map((s) => s.firstLsn));
    const listedAgain = await spool.sealed.list();
    assert.equal(listedAgain[1]!.lastLsn, cut.lastLsn);
    assert.notEqual(listedAgain[1]!.sha256, cut.sha256);
    await assertListingMatchesFiles(spool, denoFileSystem(), walDir);
    await spool.close();
    const reopened = await open(walDir);
    assert.deepEqual(await reopened.sealed.list(), listedAgain);
    await assertListingMatchesFiles(reopened, denoFileSystem(), walDir);
    await assert.rejects(reopened.sealed.find(oldName), NotFoundError);
    await reopened.close();
  });
});

Deno.test("a spool reopened after a truncation into a sealed segment lists it as active, and sizes the rest right", async () => {
  await withTempDir(async (walDir) => {
    const spool = await open(walDir);
    await appendMany(spool, 1, 60);
    const segments = spool.segments();
    const lsn = segments[3]!.firstLsn + 3;
    await spool.truncateAfter(lsn);
    const after = spool.segments();
    await spool.close();
    const reopened = await open(walDir);
    assert.deepEqual(reopened.segments(), after);
    assert.deepEqual(reopened.recovery.truncatedBytes, 0);
    await assertListingMatchesFiles(reopened, denoFileSystem(), walDir);
    await reopened.close();
  });
});

/** One run of the property: a history, a truncation, more appends. */
interface Scenario {
  batches: Array<{ records: number; payloadBytes: number }>;
  /** Where to cut, as a fraction of the history (0: drop everything). */
  cutAt: number;
  further: Array<{ records: number; payloadBytes: number }>;
}

/** The payloads of `batches`, numbered from `first`. */
function payloadsOf(
  batches: Scenario["batches"],
  first: number,
  tag: string,
): Uint8Array[][] {
  let n = first;
  return batches.map((batch) =>
    Array.from({ length: batch.records }, () => payload(`${tag}${n++}`, batch.payloadBytes))
  );
}

async function runScenario(scenario: Scenario): Promise<void> {
  const fs = new MemFs();
  const history = payloadsOf(scenario.batches, 1, "h");
  const total = history.flat().length;
  const lsn = Math.floor(scenario.cutAt * total);
  const further = payloadsOf(scenario.further, lsn + 1, "f");
  const truncated = await open("/cut/wal", { fs });
  for (const batch of history) await truncated.append(batch);
  const result = await truncated.truncateAfter(lsn);
  assert.equal(result.droppedRecords, total - lsn);
  for (const batch of further) await truncated.append(batch);
  // The reference never had the dropped records: the kept history, then the same appends.
  const reference = await open("/reference/wal", { fs });
  const kept = history.flat().slice(0, lsn);
  for (let i = 0; i < kept.length; i += 7) await reference.append(kept.slice(i, i + 7));
  for (const batch of further) await reference.append(batch);
  assert.equal(truncated.currentLsn(), reference.currentLsn());
  const expected = await storedLog(fs, "/reference/wal");
  assert.deepEqual(await storedLog(fs, "/cut/wal"), expected);
  assert.deepEqual(await readAllRaw(truncated), expected);
  assert.deepEqual(keysOf(await readAll(truncated)), keysOf(await readAll(reference)));
  await assertListingMatchesFiles(truncated, fs, "/cut/wal");
  await truncated.close();
  await reference.close();
  const reopened = await open("/cut/wal", { fs });
  assert.equal(reopened.currentLsn(), lsn + further.flat().length);
  assert.deepEqual(await readAllRaw(reopened), expected);
  await assertListingMatchesFiles(reopened, fs, "/cut/wal");
  await reopened.close();
}

const batch = fc.record({
  records: fc.integer({ min: 1, max: 6 }),
  payloadBytes: fc.integer({ min: 20, max: 400 }),
});

Deno.test("property: truncating and appending stores exactly what a log that never had the dropped records stores", async () => {
  const scenarios: fc.Arbitrary<Scenario> = fc.record({
    batches: fc.array(batch, { minLength: 1, maxLength: 30 }),
    cutAt: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    further: fc.array(batch, { minLength: 0, maxLength: 15 }),
  });
  await fc.assert(fc.asyncProperty(scenarios, runScenario), { numRuns: 150 });
});

/** A file's bytes, through `fs` (a MemFs power cut or the real disk). */
async function wholeFile(fs: FileSystem, path: string): Promise<Uint8Array> {
  return (await readFileIfExists(fs, path, Number.MAX_SAFE_INTEGER))!;
}
