// SPEC.md 13.2 names a sealed segment by the SHA-256 of its bytes. After an open that trusted a
// clean shutdown record, no scan fed the active segment's digest: it catches up by reading the
// file (while appends go on), then takes live bytes again.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { denoFileSystem, joinPath } from "../../src/core/files.ts";
import { DIGEST_CATCH_UP_DELAY_MS, READ_CHUNK_BYTES } from "../../src/core/limits.ts";
import { RunningDigest } from "../../src/wal/segment_digest.ts";
import { Spool } from "../../src/wal/spool.ts";
import { withTempDir } from "../helpers/temp.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";

function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

Deno.test("RunningDigest.catchUp() reads what it has not seen while appends go on, then takes live bytes", async () => {
  await withTempDir(async (dir) => {
    const path = joinPath(dir, "segment");
    const fs = recordingFileSystem();
    let durable = 3 * READ_CHUNK_BYTES + 123;
    const all = pattern(durable + 4 * 1000, 7);
    await Deno.writeFile(path, all.subarray(0, durable));
    const digest = new RunningDigest();
    const caughtUp = digest.catchUp(fs, path, () => durable);
    // Appends land while it reads: durable first, then noted (ignored: the catch-up reads them).
    for (let i = 0; i < 3; i++) {
      const bytes = all.subarray(durable, durable + 1000);
      const file = await Deno.open(path, { append: true });
      await file.write(bytes);
      file.close();
      digest.noteWritten(bytes, durable);
      durable += 1000;
    }
    await caughtUp;
    assert.equal(digest.hashedBytes, durable);
    const readsBefore = fs.reads.length;
    // Caught up: the next append is hashed live, no read.
    const last = all.subarray(durable, durable + 1000);
    await Deno.writeFile(path, last, { append: true });
    digest.noteWritten(last, durable);
    durable += 1000;
    await digest.catchUp(fs, path, () => durable);
    assert.equal(fs.reads.length, readsBefore);
    assert.equal(digest.digest(durable), sha256Of(all));
  });
});

Deno.test("RunningDigest.digest() refuses while behind; stop() ends a catch-up", async () => {
  await withTempDir(async (dir) => {
    const path = joinPath(dir, "segment");
    await Deno.writeFile(path, pattern(2 * READ_CHUNK_BYTES, 1));
    const digest = new RunningDigest();
    assert.throws(() => digest.digest(2 * READ_CHUNK_BYTES));
    const running = digest.catchUp(denoFileSystem(), path, () => 2 * READ_CHUNK_BYTES);
    await digest.stop();
    await running;
    assert.ok(digest.hashedBytes < 2 * READ_CHUNK_BYTES, "it stopped after its current read");
  });
});

Deno.test("a RunningDigest fed by a scan goes on with live bytes", () => {
  const head = pattern(5000, 3);
  const tail = pattern(700, 9);
  const digest = new RunningDigest(createHash("sha256").update(head), head.byteLength);
  digest.noteWritten(tail, head.byteLength);
  assert.equal(digest.digest(5700), sha256Of(new Uint8Array([...head, ...tail])));
});

Deno.test("after a trusted open the active segment's digest catches up in the background, so sealing reads nothing", async () => {
  await withTempDir(async (walDir) => {
    const options = { walDir, timeline: 1, term: 1, segmentBytesMax: 64 * 1024 };
    const spool = await Spool.open(options);
    for (let i = 0; i < 100; i++) await spool.append([pattern(200, i)]);
    await spool.close();
    const fs = recordingFileSystem();
    const reopened = await Spool.open({ ...options, fs });
    try {
      assert.equal(reopened.recovery.trustedCleanShutdown, true);
      const path = joinPath(walDir, "00000001", "00000000000000000001.wal");
      await new Promise((resolve) => setTimeout(resolve, DIGEST_CATCH_UP_DELAY_MS + 300));
      assert.ok(fs.reads.some((read) => read.path === path && read.position === 0));
      fs.reads.length = 0;
      let i = 100;
      while (reopened.segments().length === 1) await reopened.append([pattern(200, i++)]);
      assert.deepEqual(fs.reads.filter((read) => read.path === path), [], "sealing read nothing");
      const [sealed] = await reopened.sealed.list();
      assert.equal(sealed!.sha256, sha256Of(await Deno.readFile(path)));
    } finally {
      await reopened.close();
    }
  });
});
