// A spool that keeps another node's log (SPEC.md 13.3, `Spool.appendFrames`): the same LSNs, the
// same bytes (terms and timestamps kept), the same durability contract; frames that do not follow
// its last LSN are refused whole. Real files: the copy is compared byte for byte with the source,
// also after a reopen.

import assert from "node:assert/strict";
import fc from "fast-check";
import { LsnGapError } from "../../src/core/errors.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { joinPath } from "../../src/core/files.ts";
import { type DecodedFrame, decodeFrameRun } from "../../src/wal/frame.ts";
import { Spool } from "../../src/wal/spool.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();

function payload(n: number): Uint8Array {
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key: `k${n}`, value: n }));
}

/** The stored bytes of every record after `sinceLsn`, as one buffer. */
async function storedBytes(spool: Spool, sinceLsn = 0): Promise<Uint8Array> {
  const raw = await spool.readRawSince(sinceLsn, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  return concatBytes(raw.chunks, raw.byteLength);
}

/** The frames of `spool` after `sinceLsn`, decoded from its stored bytes (CRCs checked). */
async function framesOf(spool: Spool, sinceLsn = 0): Promise<DecodedFrame[]> {
  const run = decodeFrameRun(await storedBytes(spool, sinceLsn));
  assert.equal(run.stop, undefined);
  return run.frames;
}

/** A source spool written in `batches` group commits (term 3, a fixed clock), and its frames. */
async function source(dir: string, batches: number[]): Promise<{ spool: Spool }> {
  let clock = 1_700_000_000_000;
  const spool = await Spool.open({
    walDir: joinPath(dir, "source"),
    timeline: 1,
    term: 3,
    segmentBytesMax: 4096,
    clock: () => (clock += 7),
  });
  let n = 0;
  for (const size of batches) {
    await spool.append(Array.from({ length: size }, () => payload(n++)));
  }
  return { spool };
}

function openCopy(dir: string): Promise<Spool> {
  // The copy's own term (1) is only for records it would write itself: mirrored frames keep theirs.
  return Spool.open({ walDir: joinPath(dir, "copy"), timeline: 1, term: 1, segmentBytesMax: 2048 });
}

Deno.test("appendFrames() keeps the same LSNs and bytes, terms and timestamps, across a reopen", async () => {
  await withTempDir(async (dir) => {
    const { spool: from } = await source(dir, [1, 5, 20, 3, 40]);
    const frames = await framesOf(from);
    let copy = await openCopy(dir);
    const result = await copy.appendFrames(frames.slice(0, 26));
    assert.deepEqual([result.firstLsn, result.lastLsn], [1, 26]);
    await copy.appendFrames(frames.slice(26));
    assert.equal(copy.currentLsn(), 69);
    assert.deepEqual(await storedBytes(copy), await storedBytes(from));
    await copy.close();
    copy = await openCopy(dir);
    assert.equal(copy.currentLsn(), 69);
    const reread = await framesOf(copy);
    assert.deepEqual(
      reread.map((f) => [f.lsn, f.term, f.timestampMs]),
      frames.map((f) => [
        f.lsn,
        f.term,
        f.timestampMs,
      ]),
    );
    assert.ok(copy.segments().length > 1, "the copy rolled its own segments");
    await copy.close();
    await from.close();
  });
});

Deno.test("appendFrames() refuses frames that do not follow its last LSN, and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const { spool: from } = await source(dir, [10]);
    const frames = await framesOf(from);
    const copy = await openCopy(dir);
    await assert.rejects(copy.appendFrames(frames.slice(1, 4)), LsnGapError);
    await copy.appendFrames(frames.slice(0, 4));
    // A frame twice, a gap inside a run, a run from the past: each refused whole.
    await assert.rejects(copy.appendFrames(frames.slice(3, 6)), LsnGapError);
    await assert.rejects(copy.appendFrames([frames[4]!, frames[6]!]), LsnGapError);
    await assert.rejects(copy.appendFrames(frames.slice(0, 2)), LsnGapError);
    assert.equal(copy.currentLsn(), 4);
    const firstFour = frames.slice(0, 4).map((f) => f.bytes);
    assert.deepEqual(
      await storedBytes(copy),
      concatBytes(firstFour, firstFour.reduce((n, b) => n + b.byteLength, 0)),
    );
    await copy.appendFrames(frames.slice(4));
    assert.deepEqual(await storedBytes(copy), await storedBytes(from));
    await copy.close();
    await from.close();
  });
});

Deno.test("appendFrames(): the copy equals its source for any split into runs (property)", async () => {
  await withTempDir(async (dir) => {
    const { spool: from } = await source(dir, [3, 1, 17, 8, 2, 30, 9]);
    const frames = await framesOf(from);
    const expected = await storedBytes(from);
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 40 }),
        async (runs) => {
          const copy = await Spool.open({
            walDir: joinPath(dir, `copy-${round++}`),
            timeline: 1,
            term: 1,
            segmentBytesMax: 1024,
          });
          let at = 0;
          for (const size of runs) {
            if (at >= frames.length) break;
            await copy.appendFrames(frames.slice(at, at + size));
            at = Math.min(frames.length, at + size);
          }
          if (at < frames.length) await copy.appendFrames(frames.slice(at));
          assert.deepEqual(await storedBytes(copy), expected);
          await copy.close();
        },
      ),
      { numRuns: 25 },
    );
    await from.close();
  });
});
