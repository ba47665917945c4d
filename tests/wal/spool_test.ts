// Tests read like SPEC.md section 3 (the spool): layout, group commit, LSNs, repair on open, the
// seek index, bounded reads, the tail, pruning, and the append signal. Real files unless a failure
// needs the in-memory layer (full disk, failed fsync).

import assert from "node:assert/strict";
import { type AppendResult, Spool, type SpoolOptions } from "../../src/wal/spool.ts";
import { frameV3ByteLength } from "../../src/wal/frame.ts";
import {
  DiskFullError,
  UnavailableError,
  WalCorruptionError,
  WalRemovedError,
} from "../../src/core/errors.ts";
import { joinPath } from "../../src/core/files.ts";
import { withTempDir } from "../helpers/temp.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { seekIndexOf } from "../helpers/seek_index.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** A record payload; numeric tags are padded so that every such payload has the same size. */
function payload(tag: string | number): Uint8Array {
  const key = typeof tag === "number" ? `k${String(tag).padStart(6, "0")}` : `k${tag}`;
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key, value: key }));
}

function open(walDir: string, extra: Partial<SpoolOptions> = {}): Promise<Spool> {
  return Spool.open({ walDir, timeline: 1, term: 1, ...extra });
}

async function appendMany(spool: Spool, count: number, tag = ""): Promise<AppendResult[]> {
  const results: AppendResult[] = [];
  for (let i = 0; i < count; i++) {
    results.push(await spool.append([payload(tag === "" ? i : `${tag}${i}`)]));
  }
  return results;
}

async function readAll(spool: Spool): Promise<number[]> {
  const lsns: number[] = [];
  let since = spool.oldestLsn() - 1;
  while (since < spool.currentLsn()) {
    const frames = await spool.readSince(since, 10_000, 64 << 20);
    for (const frame of frames) lsns.push(frame.lsn);
    since = frames[frames.length - 1]!.lsn;
  }
  return lsns;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function segmentPath(walDir: string, firstLsn: number): string {
  return joinPath(walDir, "00000001", `${String(firstLsn).padStart(20, "0")}.wal`);
}

Deno.test("Spool.open() lays out <wal>/<timeline hex>/<first lsn, 20 digits>.wal", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    await spool.close();
    const names = [...Deno.readDirSync(joinPath(dir, "00000001"))].map((e) => e.name);
    // A clean close leaves its record beside the segment (clean_shutdown_test.ts).
    assert.deepEqual(names.sort(), ["00000000000000000001.wal", "clean.shutdown"]);
  });
});

Deno.test("append() gives consecutive LSNs from 1 in queue order, one request's records together", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    const a = spool.append([payload("a1"), payload("a2")]);
    const b = spool.append([payload("b1")]);
    const c = spool.append([payload("c1"), payload("c2"), payload("c3")]);
    const results = await Promise.all([a, b, c]);
    assert.deepEqual(results.map((r) => [r.firstLsn, r.lastLsn]), [[1, 2], [3, 3], [4, 6]]);
    const frames = await spool.readSince(0, 100, 1 << 20);
    assert.deepEqual(frames.map((f) => f.lsn), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(JSON.parse(text.decode(frames[2]!.payload)).key, "kb1");
    assert.equal(frames[0]!.term, 1);
    assert.equal(frames[0]!.timestampMs, results[0]!.timestampMs);
    await spool.close();
  });
});

Deno.test("append() group-commits: appends issued together cost one write and one fdatasync", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  const writesBefore = fs.writes;
  const syncsBefore = fs.syncs;
  await Promise.all(range(1, 100).map((i) => spool.append([payload(i)])));
  assert.equal(fs.writes - writesBefore, 1);
  assert.equal(fs.syncs - syncsBefore, 1);
  assert.equal(spool.currentLsn(), 100);
  await spool.close();
});

Deno.test("append() resolves only after its bytes are synced: a power cut right after keeps them", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  const acked = await Promise.all(range(1, 20).map((i) => spool.append([payload(i)])));
  // The cut drops every unsynced byte (random() = 0 keeps none of them).
  fs.powerCut(() => 0);
  const reopened = await open("/data/wal", { fs });
  assert.equal(reopened.currentLsn(), acked[acked.length - 1]!.lastLsn);
  assert.deepEqual(await readAll(reopened), range(1, 20));
  await reopened.close();
});

Deno.test("the next append after reopen continues the LSN sequence", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    await appendMany(spool, 5);
    await spool.close();
    const reopened = await open(dir);
    assert.equal(reopened.recovery.currentLsn, 5);
    assert.deepEqual(await reopened.append([payload("x")]), {
      firstLsn: 6,
      lastLsn: 6,
      timestampMs: (await reopened.readSince(5, 1, 1))[0]!.timestampMs,
    });
    await reopened.close();
  });
});

// ---- repair on open ----

/**
 * Damages the newest segment of a closed spool and reopens it. The clean shutdown record the close
 * left stays (a torn tail changes the size, so it no longer matches) unless `crashed`: then it is
 * removed, as a crash leaves none.
 */
async function damagedReopen(
  damage: (bytes: Uint8Array, frameBytes: number) => Uint8Array,
  crashed = false,
): Promise<{ spool: Spool; truncated: number }> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-test-" });
  const spool = await open(dir);
  await appendMany(spool, 10);
  await spool.close();
  if (crashed) Deno.removeSync(joinPath(dir, "00000001", "clean.shutdown"));
  const path = segmentPath(dir, 1);
  const bytes = Deno.readFileSync(path);
  const frameBytes = frameV3ByteLength(payload(0).byteLength);
  Deno.writeFileSync(path, damage(bytes, frameBytes));
  const reopened = await open(dir);
  return {
    spool: Object.assign(reopened, { tempDir: dir }),
    truncated: reopened.recovery.truncatedBytes,
  };
}

async function checkRepaired(
  damage: (bytes: Uint8Array, frameBytes: number) => Uint8Array,
  expectedLsns: number[],
  crashed = false,
): Promise<void> {
  const { spool, truncated } = await damagedReopen(damage, crashed);
  const dir = (spool as unknown as { tempDir: string }).tempDir;
  try {
    assert.ok(truncated > 0, "the damage was truncated");
    assert.deepEqual(await readAll(spool), expectedLsns);
    const next = await spool.append([payload("after")]);
    assert.equal(next.firstLsn, expectedLsns.length + 1);
    const frames = await spool.readSince(next.firstLsn - 1, 1, 1 << 20);
    assert.equal(JSON.parse(text.decode(frames[0]!.payload)).key, "kafter");
    await spool.close();
    // The repaired file is clean: a second reopen truncates nothing and sees the new record.
    const again = await open(dir);
    assert.equal(again.recovery.truncatedBytes, 0);
    assert.equal(again.currentLsn(), expectedLsns.length + 1);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("reopen after a torn header keeps every record before it", async () => {
  await checkRepaired((bytes, frame) => bytes.subarray(0, 9 * frame + 20), range(1, 9));
});

Deno.test("reopen after a torn payload keeps every record before it", async () => {
  await checkRepaired((bytes, frame) => bytes.subarray(0, 10 * frame - 10), range(1, 9));
});

Deno.test("reopen after a flipped CRC in the last record drops just that record", async () => {
  await checkRepaired((bytes) => {
    const copy = bytes.slice();
    copy[copy.length - 1]! ^= 0xff;
    return copy;
  }, range(1, 9));
});

for (const fragment of [1, 2, 3]) {
  Deno.test(`reopen after a ${fragment}-byte fragment after the last frame truncates it`, async () => {
    await checkRepaired(
      (bytes) => new Uint8Array([...bytes, ...utf8.encode("RDL").subarray(0, fragment)]),
      range(1, 10),
    );
  });
}

Deno.test("reopen after garbage appended after valid frames drops the garbage only", async () => {
  await checkRepaired(
    (bytes) => new Uint8Array([...bytes, ...utf8.encode("this is not a frame at all")]),
    range(1, 10),
  );
});

Deno.test("reopen after a crash with a flipped byte in a middle record drops it and everything after", async () => {
  await checkRepaired(
    (bytes, frame) => {
      const copy = bytes.slice();
      copy[4 * frame + 50]! ^= 0x01;
      return copy;
    },
    range(1, 4),
    true,
  );
});

Deno.test("reopen refuses a newest segment whose valid frames skip an LSN", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  await appendMany(spool, 3);
  await spool.close();
  const path = "/data/wal/00000001/00000000000000000001.wal";
  const bytes = fs.contents(path);
  const frame = frameV3ByteLength(payload(0).byteLength);
  // Drop record 2 from the middle: records 1 and 3 are each valid, but 3 cannot follow 1.
  fs.setContents(path, new Uint8Array([...bytes.subarray(0, frame), ...bytes.subarray(2 * frame)]));
  await assert.rejects(() => open("/data/wal", { fs }), WalCorruptionError);
});

// ---- seek index and bounded reads ----

Deno.test("with 70 records in one segment the seek index is [(1, 0), (65, offset of 65)]", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    await appendMany(spool, 70);
    const frameBytes = frameV3ByteLength(payload(0).byteLength);
    assert.equal(payload(0).byteLength, payload(9).byteLength);
    const offsetOf65 = (await spool.readSince(64, 1, 1))[0]!;
    assert.deepEqual(await seekIndexOf(spool, 1), [[1, 0], [65, 64 * frameBytes]]);
    await spool.close();
    const reopened = await open(dir);
    assert.deepEqual(await seekIndexOf(reopened, 1), [[1, 0], [65, 64 * frameBytes]]);
    assert.equal(offsetOf65.lsn, 65);
    await reopened.close();
  });
});

Deno.test("readSince(130, 1000) over 200 records returns 131..200, reading from past offset 0", async () => {
  await withTempDir(async (dir) => {
    const fs = recordingFileSystem();
    // No tail, so the read must go to the segment file.
    const spool = await open(dir, { fs, tailBytesMax: 0 });
    await appendMany(spool, 200);
    const index = await seekIndexOf(spool, 1);
    const checkpoint129 = index!.find(([lsn]) => lsn === 129)![1];
    for (const target of [spool, null]) {
      const reader = target ?? await open(dir, { fs, tailBytesMax: 0 });
      fs.reads.length = 0;
      const frames = await reader.readSince(130, 1000, 64 << 20);
      assert.deepEqual(frames.map((f) => f.lsn), range(131, 200));
      assert.ok(fs.reads.length > 0);
      assert.equal(
        fs.reads[0]!.position,
        checkpoint129,
        "the read starts at the checkpoint of 129",
      );
      assert.ok(fs.reads.every((read) => read.position > 0));
      await reader.close();
    }
  });
});

Deno.test("readSince() stops at maxCount and at maxBytes, but always returns one record", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { tailBytesMax: 0 });
    await appendMany(spool, 50);
    const frameBytes = frameV3ByteLength(payload(0).byteLength);
    assert.deepEqual((await spool.readSince(10, 5, 1 << 20)).map((f) => f.lsn), range(11, 15));
    assert.deepEqual(
      (await spool.readSince(10, 100, 3 * frameBytes)).map((f) => f.lsn),
      range(11, 13),
    );
    assert.deepEqual((await spool.readSince(10, 100, 1)).map((f) => f.lsn), [11]);
    assert.deepEqual(await spool.readSince(50, 100, 1 << 20), []);
    await spool.close();
  });
});

Deno.test("readSince() of a large segment does not read it to the end", async () => {
  await withTempDir(async (dir) => {
    const fs = recordingFileSystem();
    const spool = await open(dir, { fs, tailBytesMax: 0 });
    // About 3 MiB of records: more than one read chunk.
    const big = new Uint8Array(30_000).fill(65);
    for (let i = 0; i < 100; i++) await spool.append([big]);
    fs.reads.length = 0;
    const frames = await spool.readSince(0, 2, 1 << 30);
    assert.deepEqual(frames.map((f) => f.lsn), [1, 2]);
    const bytesRead = fs.reads.reduce((n, r) => n + r.length, 0);
    assert.ok(bytesRead <= 1.1 * (1 << 20), `read ${bytesRead} bytes for two records`);
    await spool.close();
  });
});

Deno.test("the tail serves recent records from memory and shares one copy between readers", async () => {
  await withTempDir(async (dir) => {
    const fs = recordingFileSystem();
    const spool = await open(dir, { fs });
    await appendMany(spool, 20);
    fs.reads.length = 0;
    const first = await spool.readSince(10, 100, 1 << 20);
    const second = await spool.readSince(10, 100, 1 << 20);
    assert.equal(fs.reads.length, 0, "no file read for tail records");
    assert.equal(first[0]!.bytes.buffer, second[0]!.bytes.buffer, "same backing memory");
    assert.deepEqual(first, second);
    await spool.close();
  });
});

Deno.test("reads that start on disk continue into the tail without gaps", async () => {
  await withTempDir(async (dir) => {
    const frameBytes = frameV3ByteLength(payload(0).byteLength);
    const spool = await open(dir, { tailBytesMax: 10 * frameBytes });
    await appendMany(spool, 100);
    assert.deepEqual((await spool.readSince(0, 1000, 1 << 20)).map((f) => f.lsn), range(1, 100));
    await spool.close();
  });
});

// ---- segments ----

Deno.test("a segment is sealed once it passes the size bound; reads span segments", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096, tailBytesMax: 0 });
    await appendMany(spool, 300);
    const segments = spool.segments();
    assert.ok(segments.length > 5);
    for (let i = 0; i + 1 < segments.length; i++) {
      assert.ok(segments[i]!.sealed);
      assert.ok(segments[i]!.sizeBytes >= 4096);
      assert.equal(segments[i + 1]!.firstLsn, segments[i]!.lastLsn + 1);
    }
    assert.equal(segments[segments.length - 1]!.sealed, false);
    await spool.close();
    const reopened = await open(dir, { segmentBytesMax: 4096, tailBytesMax: 0 });
    assert.deepEqual(reopened.segments(), segments);
    assert.deepEqual(await readAll(reopened), range(1, 300));
    await reopened.close();
  });
});

Deno.test("opening a spool of 200 sealed segments reads only the newest one", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096 });
    const big = new Uint8Array(4100).fill(66); // one record fills a segment
    for (let i = 0; i < 201; i++) await spool.append([big]);
    assert.equal(spool.segments().length, 201);
    await spool.close();
    const fs = recordingFileSystem();
    const reopened = await open(dir, { fs, segmentBytesMax: 4096 });
    const newest = segmentPath(dir, 201);
    assert.equal(reopened.segments().length, 201);
    assert.ok(fs.reads.length > 0);
    // Besides the newest segment, only the manifest (the sealed segments' sizes) and the clean
    // shutdown record are read; of the newest segment, only its last frame (the record matches).
    const manifest = joinPath(dir, "00000001", "segments.manifest");
    const record = joinPath(dir, "00000001", "clean.shutdown");
    const paths = [...new Set(fs.reads.map((r) => r.path))].sort();
    assert.deepEqual(paths, [newest, manifest, record].sort());
    const newestReads = fs.reads.filter((r) => r.path === newest);
    assert.deepEqual(newestReads, [{ path: newest, position: 0, length: frameV3ByteLength(4100) }]);
    assert.equal(reopened.oldestLsn(), 1);
    assert.equal(reopened.currentLsn(), 201);
    await reopened.close();
  });
});

Deno.test("a flipped bit inside a sealed segment is reported as corruption when read", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096, tailBytesMax: 0 });
    await appendMany(spool, 200);
    const sealed = spool.segments()[1]!;
    await spool.close();
    const path = segmentPath(dir, sealed.firstLsn);
    const bytes = Deno.readFileSync(path);
    bytes[100]! ^= 0x04;
    Deno.writeFileSync(path, bytes);
    const corruptions: string[] = [];
    const reopened = await open(dir, {
      segmentBytesMax: 4096,
      tailBytesMax: 0,
      observer: { corruption: (error) => corruptions.push(error.message) },
    });
    await assert.rejects(
      () => reopened.readSince(sealed.firstLsn - 1, 10, 1 << 20),
      WalCorruptionError,
    );
    assert.equal(corruptions.length, 1);
    // Records before the damaged segment are still served.
    assert.deepEqual((await reopened.readSince(0, 3, 1 << 20)).map((f) => f.lsn), [1, 2, 3]);
    await reopened.close();
  });
});

// ---- pruning ----

Deno.test("pruneThrough() deletes only whole sealed segments at or below the LSN", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096, tailBytesMax: 0 });
    await appendMany(spool, 300);
    const before = spool.segments();
    const target = before[3]!.lastLsn + 5; // inside segment 4
    const result = await spool.pruneThrough(target);
    assert.equal(result.removedSegments, 4);
    assert.equal(spool.oldestLsn(), before[4]!.firstLsn);
    assert.ok(spool.oldestLsn() <= target + 1, "the record after the prune LSN is kept");
    assert.deepEqual(await readAll(spool), range(before[4]!.firstLsn, 300));
    await assert.rejects(() => spool.readSince(0, 10, 1 << 20), WalRemovedError);
    for (const gone of before.slice(0, 4)) {
      assert.throws(() => Deno.statSync(segmentPath(dir, gone.firstLsn)), Deno.errors.NotFound);
    }
    await spool.close();
    const reopened = await open(dir, { segmentBytesMax: 4096 });
    assert.equal(reopened.oldestLsn(), before[4]!.firstLsn);
    await reopened.close();
  });
});

Deno.test("pruneThrough() never removes the active segment and keeps the LSN counter", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096 });
    await appendMany(spool, 100);
    await spool.pruneThrough(1_000_000);
    assert.equal(spool.segments().length, 1);
    assert.equal(spool.currentLsn(), 100);
    await spool.close();
    const reopened = await open(dir, { segmentBytesMax: 4096 });
    assert.equal(reopened.currentLsn(), 100);
    assert.equal((await reopened.append([payload("n")])).firstLsn, 101);
    await reopened.close();
  });
});

Deno.test("pruneThrough() keeps at least retainBytesMin bytes", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096 });
    await appendMany(spool, 300);
    const total = spool.retainedBytes();
    await spool.pruneThrough(300, { retainBytesMin: 5 * 4096 });
    assert.ok(spool.retainedBytes() >= 5 * 4096);
    assert.ok(spool.retainedBytes() < total);
    await spool.close();
  });
});

Deno.test("pruneThrough() during concurrent appends loses none of them", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096, tailBytesMax: 0 });
    await appendMany(spool, 200);
    const acked: AppendResult[] = [];
    let stop = false;
    const writers = range(1, 8).map(async (w) => {
      for (let i = 0; !stop; i++) acked.push(await spool.append([payload(`w${w}-${i}`)]));
    });
    for (let round = 0; round < 20; round++) {
      await spool.pruneThrough(spool.currentLsn() - 50);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    stop = true;
    await Promise.all(writers);
    const oldest = spool.oldestLsn();
    assert.ok(oldest > 1);
    const lsns = await readAll(spool);
    assert.deepEqual(lsns, range(oldest, spool.currentLsn()));
    for (const result of acked) {
      if (result.firstLsn >= oldest) assert.ok(lsns.includes(result.firstLsn));
    }
    await spool.close();
    const reopened = await open(dir, { segmentBytesMax: 4096 });
    assert.deepEqual(await readAll(reopened), lsns);
    await reopened.close();
  });
});

// ---- the append signal ----

Deno.test("waitForAppend() resolves true when a record lands, false on timeout", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    const waiting = spool.waitForAppend(0, { timeoutMs: 10_000 });
    assert.equal(spool.stats().waiters, 1);
    await spool.append([payload(1)]);
    assert.equal(await waiting, true);
    assert.equal(await spool.waitForAppend(1, { timeoutMs: 5 }), false);
    assert.equal(await spool.waitForAppend(0, { timeoutMs: 5 }), true, "already there");
    assert.equal(spool.stats().waiters, 0);
    await spool.close();
  });
});

Deno.test("waitForAppend() releases its waiter at once when the signal aborts", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    const controller = new AbortController();
    const waiting = spool.waitForAppend(0, { timeoutMs: 60_000, signal: controller.signal });
    assert.equal(spool.stats().waiters, 1);
    controller.abort();
    assert.equal(await waiting, false);
    assert.equal(spool.stats().waiters, 0);
    await spool.close();
  });
});

Deno.test("close() answers held waiters, finishes queued appends and refuses new ones", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    const waiting = spool.waitForAppend(5, { timeoutMs: 60_000 });
    const queued = spool.append([payload(1)]);
    await spool.close();
    assert.equal((await queued).firstLsn, 1);
    assert.equal(await waiting, false);
    await assert.rejects(() => spool.append([payload(2)]), UnavailableError);
  });
});

// ---- full disk and failed fsync ----

Deno.test("a full disk rejects the append with DiskFullError, leaves no half frame, and recovers", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  await appendMany(spool, 5);
  const path = "/data/wal/00000001/00000000000000000001.wal";
  const sizeBefore = fs.contents(path).byteLength;
  fs.capacityBytes = fs.usedBytes() + 30; // room for part of one frame only
  await assert.rejects(() => spool.append([payload("big")]), DiskFullError);
  assert.equal(fs.contents(path).byteLength, sizeBefore, "the partial frame was cut off");
  assert.equal(spool.currentLsn(), 5);
  assert.deepEqual(await readAll(spool), range(1, 5));
  fs.capacityBytes = Infinity;
  assert.equal((await spool.append([payload("again")])).firstLsn, 6);
  await spool.close();
  const reopened = await open("/data/wal", { fs });
  assert.deepEqual(await readAll(reopened), range(1, 6));
  await reopened.close();
});

Deno.test("a failed fdatasync stops the spool: nothing more is acknowledged until a restart", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  await appendMany(spool, 3);
  fs.failNextSync = true;
  await assert.rejects(() => spool.append([payload("x")]), UnavailableError);
  await assert.rejects(() => spool.append([payload("y")]), UnavailableError);
  assert.equal(spool.isWritable(), false);
  assert.equal(spool.currentLsn(), 3);
  await spool.close();
  const reopened = await open("/data/wal", { fs });
  assert.ok(reopened.currentLsn() >= 3);
  assert.equal(reopened.isWritable(), true);
  await reopened.close();
});

Deno.test("a crash right after a segment roll reopens on the empty newest segment", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir, { segmentBytesMax: 4096 });
    const big = new Uint8Array(4100).fill(67);
    await spool.append([big]);
    await spool.close();
    // What a roll leaves before its first write: an empty file named after the next LSN.
    Deno.writeFileSync(segmentPath(dir, 2), new Uint8Array(0));
    const reopened = await open(dir, { segmentBytesMax: 4096 });
    assert.equal(reopened.currentLsn(), 1);
    assert.equal(reopened.oldestLsn(), 1);
    assert.equal((await reopened.append([payload("z")])).firstLsn, 2);
    assert.deepEqual(await readAll(reopened), [1, 2]);
    await reopened.close();
  });
});
