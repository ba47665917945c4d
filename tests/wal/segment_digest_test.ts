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

/** A SHA-256 that counts the bytes it was fed. */
function countingHash() {
  const hash = createHash("sha256");
  const counting = {
    fed: 0,
    update(bytes: Uint8Array) {
      counting.fed += bytes.byteLength;
      hash.update(bytes);
      return counting;
    },
    digest: (encoding: "hex") => hash.digest(encoding),
  };
  return counting;
}

Deno.test("RunningDigest keeps live bytes until hashNoted(), and takes them before a digest or a catch-up", async () => {
  const parts = [pattern(3000, 1), pattern(500, 2), pattern(70, 3)];
  const hash = countingHash();
  const digest = new RunningDigest(hash as unknown as ReturnType<typeof createHash>);
  digest.noteWritten(parts[0]!, 0);
  digest.noteWritten(parts[1]!, 3000);
  digest.noteWritten(pattern(10, 4), 9999); // not where the digest stands: left to a catch-up
  assert.equal(hash.fed, 0, "nothing hashed on the commit path");
  assert.equal(digest.hashedBytes, 3500);
  digest.hashNoted();
  assert.equal(hash.fed, 3500);
  digest.noteWritten(parts[2]!, 3500);
  assert.equal(hash.fed, 3500);
  // A catch-up first takes what was noted, then finds nothing to read.
  await digest.catchUp(recordingFileSystem(), "/nonexistent", () => 3570);
  assert.equal(hash.fed, 3570);
  digest.noteWritten(parts[0]!, 3570);
  assert.equal(
    digest.digest(6570),
    sha256Of(new Uint8Array([...parts.flatMap((part) => [...part]), ...parts[0]!])),
  );
});

Deno.test("sealed segments hashed a group commit late (while the next one flushes) still match their files", async () => {
  await withTempDir(async (walDir) => {
    const spool = await Spool.open({ walDir, timeline: 1, term: 1, segmentBytesMax: 64 * 1024 });
    try {
      for (let i = 0; i < 700; i++) await spool.append([pattern(150 + (i % 90), i)]);
      const sealed = await spool.sealed.list();
      assert.ok(sealed.length >= 2);
      for (const segment of sealed) {
        const path = joinPath(
          walDir,
          "00000001",
          `${String(segment.firstLsn).padStart(20, "0")}.wal`,
        );
        assert.equal(segment.sha256, sha256Of(await Deno.readFile(path)));
      }
    } finally {
      await spool.close();
    }
  });
});
