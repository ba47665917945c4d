// SPEC.md section 3, repair on open, with the clean shutdown record: a clean close describes the
// newest segment so the next open need not scan it; it is never trusted blindly (CRC, segment,
// size, last frame), it is removed durably before anything changes a segment, and without it (a
// crash after writes) the full scan with torn-tail repair runs as before.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { createHash } from "node:crypto";
import {
  CLEAN_SHUTDOWN_FILE_NAME,
  type CleanShutdown,
  decodeCleanShutdown,
  encodeCleanShutdown,
} from "../../src/wal/clean_shutdown.ts";
import { Spool, type SpoolOptions } from "../../src/wal/spool.ts";
import { WalCorruptionError } from "../../src/core/errors.ts";
import { joinPath } from "../../src/core/files.ts";
import { frameV3ByteLength } from "../../src/wal/frame.ts";
import { segmentFileName } from "../../src/wal/segment.ts";
import { timelineDirName } from "../../src/wal/timelines.ts";
import { withTempDir } from "../helpers/temp.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { runUntilKilled } from "../helpers/process.ts";

const WRITER_SCRIPT = new URL("../fixtures/spool_writer.ts", import.meta.url).pathname;

const utf8 = new TextEncoder();
const text = new TextDecoder();

const RECORD: CleanShutdown = {
  firstLsn: 101,
  lastLsn: 300,
  sizeBytes: 50_000,
  lastFrameOffset: 49_700,
  offsets: [0, 9_000, 18_000, 40_000], // 200 records: checkpoints at ordinals 0, 64, 128, 192
  samples: {
    lsns: [90, 150, 290],
    times: [1_700_000_000_000, 1_700_000_000_005, 1_700_000_000_009],
  },
};

function payload(i: number): Uint8Array {
  return utf8.encode(`record-${String(i).padStart(6, "0")}`);
}

function open(walDir: string, extra: Partial<SpoolOptions> = {}): Promise<Spool> {
  return Spool.open({ walDir, timeline: 1, term: 1, ...extra });
}

async function appendMany(spool: Spool, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await spool.append([payload(i)]);
}

/** Every record of the spool as text, oldest first. */
async function readAll(spool: Spool): Promise<string[]> {
  const out: string[] = [];
  let since = spool.oldestLsn() - 1;
  while (since < spool.currentLsn()) {
    for (const frame of await spool.readSince(since, 10_000, 64 << 20)) {
      assert.equal(frame.lsn, since + 1, "contiguous");
      out.push(text.decode(frame.payload));
      since = frame.lsn;
    }
  }
  return out;
}

function expected(count: number): string[] {
  return Array.from({ length: count }, (_, i) => text.decode(payload(i)));
}

const timelineDir = (walDir: string) => joinPath(walDir, timelineDirName(1));
const recordPath = (walDir: string) => joinPath(timelineDir(walDir), CLEAN_SHUTDOWN_FILE_NAME);
const newestPath = (walDir: string, firstLsn = 1) =>
  joinPath(timelineDir(walDir), segmentFileName(firstLsn));

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

// ---- the codec ----

Deno.test("encodeCleanShutdown() and decodeCleanShutdown() round-trip a record", () => {
  assert.deepEqual(decodeCleanShutdown(encodeCleanShutdown(RECORD)), RECORD);
  const empty = { ...RECORD, lastLsn: 100, sizeBytes: 0, lastFrameOffset: 0, offsets: [] };
  assert.deepEqual(decodeCleanShutdown(encodeCleanShutdown(empty)), empty);
});

Deno.test("decodeCleanShutdown() refuses a record with any flipped bit", () => {
  const bytes = encodeCleanShutdown(RECORD);
  for (let bit = 0; bit < bytes.byteLength * 8; bit++) {
    const damaged = bytes.slice();
    damaged[bit >> 3]! ^= 1 << (bit & 7);
    assert.ok("reason" in decodeCleanShutdown(damaged), `bit ${bit}`);
  }
  assert.ok("reason" in decodeCleanShutdown(bytes.subarray(0, bytes.byteLength - 1)));
});

Deno.test("decodeCleanShutdown() refuses a well-sealed record that contradicts itself", () => {
  const bad: Array<[string, CleanShutdown]> = [
    ["checkpoints missing", { ...RECORD, offsets: [0, 9_000] }],
    ["checkpoints not rising", { ...RECORD, offsets: [0, 18_000, 9_000, 40_000] }],
    ["first checkpoint not at 0", { ...RECORD, offsets: [10, 9_000, 18_000, 40_000] }],
    ["last frame past the end", { ...RECORD, lastFrameOffset: 50_000 }],
    ["checkpoint after the last frame", { ...RECORD, lastFrameOffset: 30_000 }],
    ["bytes but no record", { ...RECORD, lastLsn: 100, offsets: [] }],
    ["last LSN before the first", { ...RECORD, lastLsn: 50, offsets: [] }],
  ];
  for (const [why, record] of bad) {
    const bytes = encodeCleanShutdown(record);
    // Sealed with a good CRC: only the consistency checks can refuse it.
    const view = new DataView(bytes.buffer);
    view.setUint32(bytes.byteLength - 4, crc32(bytes.subarray(0, bytes.byteLength - 4)), true);
    assert.ok("reason" in decodeCleanShutdown(bytes), why);
  }
});

// ---- the spool: the trusted path ----

Deno.test("a clean close leaves the record; the next open reads only the newest segment's last frame and serves the same records, index and append times", async () => {
  await withTempDir(async (dir) => {
    const spool = await open(dir);
    await appendMany(spool, 0, 300);
    const timeOf150 = spool.appendedAtMs(150);
    await spool.close();
    assert.ok(await exists(recordPath(dir)));
    const fs = recordingFileSystem();
    const reopened = await open(dir, { fs });
    try {
      assert.equal(reopened.recovery.trustedCleanShutdown, true);
      assert.deepEqual(reopened.recovery.ignoredFiles, []);
      assert.equal(reopened.currentLsn(), 300);
      const newest = fs.reads.filter((read) => read.path === newestPath(dir));
      const lastFrameBytes = frameV3ByteLength(payload(299).byteLength);
      assert.deepEqual(newest.map((read) => read.length), [lastFrameBytes]);
      assert.equal(reopened.appendedAtMs(150), timeOf150);
      // A read from the middle starts at the checkpoint the record kept (65 + 64 = 129).
      fs.reads.length = 0;
      const frames = await reopened.readSince(149, 10, 1 << 20);
      assert.deepEqual(frames.map((frame) => frame.lsn), [
        150,
        151,
        152,
        153,
        154,
        155,
        156,
        157,
        158,
        159,
      ]);
      assert.ok(fs.reads.every((read) => read.position > 0), "no read from offset 0");
      assert.deepEqual(await readAll(reopened), expected(300));
    } finally {
      await reopened.close();
    }
  });
});

Deno.test("the first append after a trusted open removes the record before it writes; the next clean close writes it again", async () => {
  await withTempDir(async (dir) => {
    const reopened = await reopenAfter(dir, 10, () => Promise.resolve());
    assert.equal(reopened.recovery.trustedCleanShutdown, true);
    assert.ok(await exists(recordPath(dir)), "reads change nothing: the record stays");
    await reopened.readSince(0, 5, 1 << 20);
    assert.ok(await exists(recordPath(dir)));
    await appendMany(reopened, 10, 1);
    assert.equal(await exists(recordPath(dir)), false);
    await reopened.close();
    assert.ok(await exists(recordPath(dir)));
    const again = await open(dir);
    assert.equal(again.recovery.trustedCleanShutdown, true);
    assert.deepEqual(await readAll(again), expected(11));
    await again.close();
  });
});

Deno.test("a segment sealed after a trusted open gets the SHA-256 of its bytes and a sidecar", async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 4096, tailBytesMax: 0 };
    const spool = await open(dir, options);
    await appendMany(spool, 0, 20);
    await spool.close();
    const reopened = await open(dir, options);
    assert.equal(reopened.recovery.trustedCleanShutdown, true);
    const firstLsn = reopened.segments().at(-1)!.firstLsn;
    // Appends go on (live bytes the digest has not caught up with) until the segment rolls.
    let count = 20;
    while (reopened.segments().at(-1)!.firstLsn === firstLsn) {
      await appendMany(reopened, count++, 1);
    }
    const [sealed] = (await reopened.sealed.list()).filter((s) => s.firstLsn === firstLsn);
    const bytes = await Deno.readFile(newestPath(dir, firstLsn));
    assert.equal(sealed!.sha256, createHash("sha256").update(bytes).digest("hex"));
    assert.ok(await exists(newestPath(dir, firstLsn).replace(/\.wal$/, ".idx")));
    assert.deepEqual(await readAll(reopened), expected(count));
    await reopened.close();
  });
});

// ---- never trusted blindly ----

/** Closes a spool of `count` records cleanly, damages it with `damage` (or not), reopens it. */
async function reopenAfter(
  dir: string,
  count: number,
  damage: () => Promise<void>,
  logger = createMemoryLogger(),
): Promise<Spool> {
  const spool = await open(dir);
  await appendMany(spool, 0, count);
  await spool.close();
  await damage();
  return await open(dir, { logger });
}

Deno.test("bytes written after the record (size differs): ignored and removed, the newest segment scanned and its torn tail cut", async () => {
  await withTempDir(async (dir) => {
    const logger = createMemoryLogger();
    const spool = await reopenAfter(dir, 10, async () => {
      const file = await Deno.open(newestPath(dir), { append: true });
      await file.write(utf8.encode("RDLW")); // a torn frame, as a crash mid-write leaves
      file.close();
    }, logger);
    try {
      assert.equal(spool.recovery.trustedCleanShutdown, false);
      assert.equal(spool.recovery.truncatedBytes, 4);
      assert.ok(logger.lines.some((line) => line.event === "spool.clean_shutdown_ignored"));
      assert.equal(await exists(recordPath(dir)), false, "a stale record goes before the repair");
      assert.deepEqual(await readAll(spool), expected(10));
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a flipped bit in the last frame (same size): ignored, the frame cut by the scan", async () => {
  await withTempDir(async (dir) => {
    const spool = await reopenAfter(dir, 10, async () => {
      const bytes = await Deno.readFile(newestPath(dir));
      bytes[bytes.byteLength - 2]! ^= 0x10;
      await Deno.writeFile(newestPath(dir), bytes);
    });
    try {
      assert.equal(spool.recovery.trustedCleanShutdown, false);
      assert.ok(spool.recovery.truncatedBytes > 0);
      assert.deepEqual(await readAll(spool), expected(9));
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a damaged record file is ignored and removed; the newest segment is scanned", async () => {
  await withTempDir(async (dir) => {
    const spool = await reopenAfter(dir, 10, async () => {
      const bytes = await Deno.readFile(recordPath(dir));
      bytes[9]! ^= 0x01;
      await Deno.writeFile(recordPath(dir), bytes);
    });
    try {
      assert.equal(spool.recovery.trustedCleanShutdown, false);
      assert.equal(await exists(recordPath(dir)), false);
      assert.deepEqual(await readAll(spool), expected(10));
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a record naming another segment (the newest was rolled meanwhile) is ignored", async () => {
  await withTempDir(async (dir) => {
    const options = { segmentBytesMax: 4096 };
    const spool = await open(dir, options);
    await appendMany(spool, 0, 10);
    await spool.close();
    const saved = await Deno.readFile(recordPath(dir));
    const reopened = await open(dir, options);
    await appendMany(reopened, 10, 200); // rolls to later segments
    await reopened.close();
    await Deno.writeFile(recordPath(dir), saved); // an old record put back
    const again = await open(dir, options);
    try {
      assert.equal(again.recovery.trustedCleanShutdown, false);
      assert.deepEqual(await readAll(again), expected(210));
    } finally {
      await again.close();
    }
  });
});

Deno.test("after a clean close, a flipped bit inside the newest segment is reported as corruption when read, never skipped", async () => {
  await withTempDir(async (dir) => {
    const frameBytes = frameV3ByteLength(payload(0).byteLength);
    const spool = await reopenAfter(dir, 10, async () => {
      const bytes = await Deno.readFile(newestPath(dir));
      bytes[4 * frameBytes + 50]! ^= 0x01; // inside record 5
      await Deno.writeFile(newestPath(dir), bytes);
    });
    try {
      // Size and last frame match: trusted, as a sealed segment is (verified when read).
      assert.equal(spool.recovery.trustedCleanShutdown, true);
      await assert.rejects(() => spool.readSince(4, 10, 1 << 20), WalCorruptionError);
      await assert.rejects(() => spool.readSince(0, 10, 1 << 20), WalCorruptionError);
    } finally {
      await spool.close();
    }
    // A segment a read found damaged gets no record: the next open scans it and repairs it as
    // SPEC.md section 3 says (cut at the first bad frame).
    assert.equal(await exists(recordPath(dir)), false);
    const again = await open(dir);
    assert.equal(again.recovery.trustedCleanShutdown, false);
    assert.deepEqual(await readAll(again), expected(4));
    await again.close();
  });
});

// ---- crashes ----

Deno.test("a failed spool writes no record on close", async () => {
  const fs = new MemFs();
  const spool = await open("/data/wal", { fs });
  await appendMany(spool, 0, 3);
  fs.failNextSync = true;
  await assert.rejects(() => spool.append([payload(3)]));
  await spool.close();
  await assert.rejects(() => fs.sizeOf("/data/wal/00000001/clean.shutdown"), Deno.errors.NotFound);
});

Deno.test("a power cut at any step of the first append after a trusted open never trusts changed bytes", async () => {
  for (let cut = 1; cut <= 10; cut++) {
    const fs = new MemFs();
    const spool = await open("/data/wal", { fs });
    await appendMany(spool, 0, 5);
    await spool.close();
    const reopened = await open("/data/wal", { fs });
    assert.equal(reopened.recovery.trustedCleanShutdown, true);
    fs.cutAfterOps = cut;
    const acknowledged = await reopened.append([payload(5)]).then(() => true, () => false);
    await reopened.close().catch(() => undefined);
    // Unsynced bytes survive in part (a torn tail) or whole.
    fs.powerCut(() => 0.5);
    const after = await open("/data/wal", { fs });
    const records = await readAll(after);
    assert.deepEqual(records.slice(0, 5), expected(5), `cut ${cut}`);
    if (acknowledged) assert.deepEqual(records, expected(6), `cut ${cut}: the append survived`);
    if (after.recovery.trustedCleanShutdown) {
      assert.equal(records.length, acknowledged ? 6 : 5, `cut ${cut}: a trusted record is exact`);
    }
    await after.close();
  }
});

Deno.test("truncateAfter() removes the record before it cuts; the next open scans", async () => {
  await withTempDir(async (dir) => {
    const reopened = await reopenAfter(dir, 10, () => Promise.resolve());
    assert.equal(reopened.recovery.trustedCleanShutdown, true);
    await reopened.truncateAfter(6);
    assert.equal(await exists(recordPath(dir)), false);
    assert.deepEqual(await readAll(reopened), expected(6));
    await appendMany(reopened, 6, 2);
    await reopened.close();
    const again = await open(dir);
    assert.deepEqual(await readAll(again), expected(8));
    await again.close();
  });
});

Deno.test("kill -9 of a writer that started from a clean shutdown record: none is left, the reopen scans, cuts the torn tail, and keeps every acknowledged record", async () => {
  await withTempDir(async (walDir) => {
    const options = { segmentBytesMax: 64 * 1024 }; // the writer's
    const spool = await open(walDir, options);
    await appendMany(spool, 0, 50);
    await spool.close();
    assert.ok(await exists(recordPath(walDir)));
    const args = ["run", "-A", WRITER_SCRIPT, walDir, "0", "8"];
    const lines = await runUntilKilled(args, (reported) => reported.length >= 800);
    assert.equal(lines[0], "ready 50", "the writer opened from the record");
    assert.equal(await exists(recordPath(walDir)), false, "its first append removed the record");
    // A crash mid-write leaves a torn frame after the last whole one.
    const names = [...Deno.readDirSync(timelineDir(walDir))].map((entry) => entry.name);
    const newest = names.filter((name) => name.endsWith(".wal")).sort().at(-1)!;
    const file = await Deno.open(joinPath(timelineDir(walDir), newest), { append: true });
    await file.write(new Uint8Array([0x52, 0x44, 0x4c, 0x57, 3, 0, 0, 0]));
    file.close();
    const reopened = await open(walDir, options);
    try {
      assert.equal(reopened.recovery.trustedCleanShutdown, false);
      assert.equal(reopened.recovery.truncatedBytes, 8);
      const stored = await readAll(reopened);
      assert.deepEqual(stored.slice(0, 50), expected(50));
      for (const line of lines.slice(1)) {
        const space = line.indexOf(" ");
        const lsn = Number(line.slice(0, space));
        assert.equal(stored[lsn - 1], line.slice(space + 1), `acknowledged LSN ${lsn}`);
      }
    } finally {
      await reopened.close();
    }
  });
});
