// SPEC.md 13.4 with SPEC.md section 3's durability: a truncation back to a fork point that is
// stopped at any moment leaves a log that reopens to the untouched log, the truncated one, or one
// in between whose records are all there, intact and contiguous (and a second truncation then
// finishes the job); never a hole, a torn record or a sealed segment listed with a stale digest.
// Twice: the in-memory file layer cuts the power at every operation in turn (unsynced bytes and
// directory entries lost), and a real child process is killed with SIGKILL after every step that
// changes the disk, and at moments it does not choose.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  denoFileSystem,
  type FileSystem,
  joinPath,
  readFileIfExists,
} from "../../src/core/files.ts";
import { decodeFrameRun } from "../../src/wal/frame.ts";
import { Spool } from "../../src/wal/spool.ts";
import { parseSegmentFileName, segmentFileName } from "../../src/wal/segment.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { runUntilKilled } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";
import { seededRandom } from "../helpers/seeded_random.ts";

const utf8 = new TextEncoder();
const CLOCK_MS = 1_700_000_000_000;
const SEGMENT_BYTES = 1024;
const TIMELINE_DIR = "00000001";
const RECORDS = 90;
const TRUNCATOR_SCRIPT = new URL("../helpers/spool_truncator.ts", import.meta.url).pathname;

function open(walDir: string, fs: FileSystem): Promise<Spool> {
  const options = { segmentBytesMax: SEGMENT_BYTES, clock: () => CLOCK_MS, fs };
  return Spool.open({ walDir, timeline: 1, term: 1, ...options });
}

/** The payload of record `lsn`. */
function bodyOf(lsn: number): string {
  return `record ${lsn} `.padEnd(60, "x");
}

/** Writes the same history every time: records 1..RECORDS in appends of one to three. */
async function writeHistory(walDir: string, fs: FileSystem): Promise<void> {
  const spool = await open(walDir, fs);
  for (let lsn = 1; lsn <= RECORDS;) {
    const count = Math.min(1 + (lsn % 3), RECORDS - lsn + 1);
    const payloads = Array.from({ length: count }, (_, i) => utf8.encode(bodyOf(lsn + i)));
    lsn = (await spool.append(payloads)).lastLsn + 1;
  }
  await spool.close();
}

/** The segment files, oldest first. */
async function segmentFiles(fs: FileSystem, walDir: string) {
  const dir = joinPath(walDir, TIMELINE_DIR);
  const firstLsns = (await fs.readDir(dir)).map(parseSegmentFileName)
    .filter((lsn): lsn is number => lsn !== undefined).sort((a, b) => a - b);
  const files = [];
  for (const firstLsn of firstLsns) {
    files.push({ firstLsn, bytes: await wholeFile(fs, joinPath(dir, segmentFileName(firstLsn))) });
  }
  return files;
}

/** The whole log as stored, and the byte offset where each record ends in it (index = LSN). */
async function storedLog(fs: FileSystem, walDir: string) {
  const files = await segmentFiles(fs, walDir);
  const bytes = new Uint8Array(files.reduce((sum, file) => sum + file.bytes.byteLength, 0));
  let offset = 0;
  for (const file of files) {
    bytes.set(file.bytes, offset);
    offset += file.bytes.byteLength;
  }
  const run = decodeFrameRun(bytes);
  const ends = [0];
  for (const frame of run.frames) ends.push(ends[ends.length - 1]! + frame.byteLength);
  return { bytes, ends, whole: run.stop === undefined };
}

/** The listing of sealed segments against the files: exact LSN ranges, sizes and digests. */
async function assertListingMatchesFiles(spool: Spool, fs: FileSystem, walDir: string) {
  const files = await segmentFiles(fs, walDir);
  const listed = await spool.sealed.list();
  assert.deepEqual(listed.map((s) => s.firstLsn), files.slice(0, -1).map((f) => f.firstLsn));
  for (const [i, info] of listed.entries()) {
    const { bytes } = files[i]!;
    const run = decodeFrameRun(bytes);
    assert.equal(run.stop, undefined);
    assert.deepEqual(
      [run.frames[0]!.lsn, run.frames[run.frames.length - 1]!.lsn],
      [info.firstLsn, info.lastLsn],
    );
    assert.equal(info.lastLsn, files[i + 1]!.firstLsn - 1);
    assert.equal(info.sha256, createHash("sha256").update(bytes).digest("hex"));
  }
}

type Outcome = "untouched" | "between" | "truncated";

/**
 * Reopens the log after a crash during a truncation after `lsn` of `original` and checks it: a
 * prefix of the original, whole frames ending at a record, every record readable (CRC checked)
 * and contiguous from 1, the listing true. Then finishes the truncation and appends once.
 */
async function verifyReopened(
  walDir: string,
  fs: FileSystem,
  expected: { lsn: number; original: { bytes: Uint8Array; ends: number[] } },
): Promise<Outcome> {
  const { lsn, original } = expected;
  const spool = await open(walDir, fs);
  try {
    const currentLsn = spool.currentLsn();
    assert.ok(currentLsn >= lsn && currentLsn <= RECORDS, `current LSN ${currentLsn}`);
    const stored = await storedLog(fs, walDir);
    assert.ok(stored.whole, "every stored frame is whole");
    assert.deepEqual(stored.bytes, original.bytes.subarray(0, original.ends[currentLsn]));
    let since = 0;
    while (since < currentLsn) {
      for (const frame of await spool.readSince(since, 1000, 1 << 20)) {
        assert.equal(frame.lsn, since + 1, "records are contiguous from 1");
        assert.equal(new TextDecoder().decode(frame.payload), bodyOf(frame.lsn));
        since = frame.lsn;
      }
    }
    await assertListingMatchesFiles(spool, fs, walDir);
    await spool.truncateAfter(lsn);
    assert.equal((await spool.append([utf8.encode("after")])).firstLsn, lsn + 1);
    await assertListingMatchesFiles(spool, fs, walDir);
    return currentLsn === RECORDS ? "untouched" : currentLsn === lsn ? "truncated" : "between";
  } finally {
    await spool.close();
  }
}

/** Fork points: inside an old sealed segment, at a boundary, before everything, in the active one. */
async function forkPoints(walDir: string, fs: FileSystem): Promise<number[]> {
  const spool = await open(walDir, fs);
  const segments = spool.segments();
  await spool.close();
  assert.ok(segments.length >= 6, `${segments.length} segments`);
  return [segments[1]!.firstLsn + 2, segments[2]!.lastLsn, 0, RECORDS - 2];
}

Deno.test("a power cut at any operation of truncateAfter() reopens the old log, the truncated one, or a whole prefix between", async () => {
  const walDir = "/data/wal";
  const reference = new MemFs();
  await writeHistory(walDir, reference);
  const original = await storedLog(reference, walDir);
  const random = seededRandom(13);
  for (const lsn of await forkPoints(walDir, reference)) {
    const outcomes = new Set<Outcome>();
    for (let cutAfterOps = 1;; cutAfterOps++) {
      assert.ok(
        cutAfterOps < 1000,
        "the truncation finishes within a bounded number of operations",
      );
      const fs = new MemFs();
      await writeHistory(walDir, fs);
      const spool = await open(walDir, fs);
      fs.cutAfterOps = cutAfterOps;
      const finished = await spool.truncateAfter(lsn).then(() => !fs.isDead, () => false);
      await spool.close().catch(() => undefined);
      fs.powerCut(random);
      outcomes.add(await verifyReopened(walDir, fs, { lsn, original }));
      if (finished) break;
    }
    assert.ok(
      outcomes.has("untouched") && outcomes.has("truncated"),
      `after ${lsn}: ${[...outcomes]}`,
    );
    if (lsn < RECORDS - 2) assert.ok(outcomes.has("between"), "whole segments went one by one");
  }
});

/** Copies the files of `from` (one directory level of segments under the timeline) to `to`. */
function copyLog(from: string, to: string): void {
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isDirectory) {
      Deno.mkdirSync(joinPath(to, entry.name), { recursive: true });
      copyLog(joinPath(from, entry.name), joinPath(to, entry.name));
    } else {
      Deno.copyFileSync(joinPath(from, entry.name), joinPath(to, entry.name));
    }
  }
}

/** Runs the truncator on a copy of `template` and kills it once `killWhen` says so. */
async function truncateAndKill(
  template: string,
  walDir: string,
  run: { lsn: number; pauseAfterStep: number; killWhen: (lines: readonly string[]) => boolean },
): Promise<string[]> {
  Deno.mkdirSync(walDir, { recursive: true });
  copyLog(template, walDir);
  const args = [
    "run",
    "--no-prompt",
    `--allow-read=${walDir}`,
    `--allow-write=${walDir}`,
    TRUNCATOR_SCRIPT,
    walDir,
    String(run.lsn),
    String(run.pauseAfterStep),
  ];
  return await runUntilKilled(args, run.killWhen);
}

Deno.test("kill -9 of a process truncating its log, after every step and at random moments, never leaves a hole", async () => {
  await withTempDir(async (dir) => {
    const template = joinPath(dir, "template");
    const fs = denoFileSystem();
    await writeHistory(template, fs);
    const original = await storedLog(fs, template);
    const lsn = (await forkPoints(template, fs))[0]!;
    // A first run to the end counts the steps that change the disk.
    const full = await truncateAndKill(template, joinPath(dir, "full"), {
      lsn,
      pauseAfterStep: 0,
      killWhen: (lines) => lines.some((line) => line.startsWith("done")),
    });
    const steps = full.filter((line) => line.startsWith("step ")).length;
    assert.ok(steps > 10, `${steps} steps`);
    assert.equal(await verifyReopened(joinPath(dir, "full"), fs, { lsn, original }), "truncated");
    const outcomes = new Set<Outcome>();
    for (let step = 1; step <= steps; step++) {
      const walDir = joinPath(dir, `step-${step}`);
      const lines = await truncateAndKill(template, walDir, {
        lsn,
        pauseAfterStep: step,
        killWhen: (lines) => lines.some((line) => line.startsWith(`step ${step} `)),
      });
      assert.ok(!lines.some((line) => line.startsWith("done")) || step === steps);
      outcomes.add(await verifyReopened(walDir, fs, { lsn, original }));
    }
    assert.deepEqual([...outcomes].sort(), ["between", "truncated", "untouched"]);
    // Without a pause the child runs on until the signal arrives, wherever that is.
    for (let round = 0; round < 4; round++) {
      const walDir = joinPath(dir, `random-${round}`);
      const after = 1 + Math.floor(Math.random() * steps);
      await truncateAndKill(template, walDir, {
        lsn,
        pauseAfterStep: 0,
        killWhen: (lines) =>
          lines.filter((line) => line.startsWith("step ")).length >= after ||
          lines.some((line) => line.startsWith("done")),
      });
      await verifyReopened(walDir, fs, { lsn, original });
    }
  });
});

/** A file's bytes, through `fs` (a MemFs power cut or the real disk). */
async function wholeFile(fs: FileSystem, path: string): Promise<Uint8Array> {
  return (await readFileIfExists(fs, path, Number.MAX_SAFE_INTEGER))!;
}
