// SPEC.md 13.2, sealed segments as immutable objects: only sealed segments are listed, each with
// the SHA-256 of its bytes, computed once (as the segment was written, kept in its sidecar, or
// rebuilt by the verifying scan that rebuilds a sidecar) and never per request; a segment is found
// only by its exact content-addressed name, and read as stored, a range at a time.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { NotFoundError, WalCorruptionError, WalRemovedError } from "../../src/core/errors.ts";
import { Spool } from "../../src/wal/spool.ts";
import type { SealedSegmentInfo } from "../../src/wal/sealed_segments.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { withTempDir } from "../helpers/temp.ts";

const PAYLOAD = new TextEncoder().encode(JSON.stringify({ op: "put", collection: "c", key: "k" }));
const TIMELINE_DIR = "00000001";

async function spoolWith(walDir: string, batches: number, fs = recordingFileSystem()) {
  const spool = await Spool.open({ walDir, timeline: 1, term: 1, segmentBytesMax: 16_384, fs });
  for (let i = 0; i < batches; i++) await spool.append(Array.from({ length: 20 }, () => PAYLOAD));
  return spool;
}

/** The listing of a spool written with `batches` batches, closed after. */
async function listedAfter(walDir: string, batches: number): Promise<SealedSegmentInfo[]> {
  const spool = await spoolWith(walDir, batches);
  try {
    return await spool.sealed.list();
  } finally {
    await spool.close();
  }
}

function fileOf(walDir: string, firstLsn: number, ext = "wal"): string {
  return `${walDir}/${TIMELINE_DIR}/${String(firstLsn).padStart(20, "0")}.${ext}`;
}

function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function nameOf(info: SealedSegmentInfo) {
  return { firstLsn: info.firstLsn, lastLsn: info.lastLsn, hash: info.sha256.slice(0, 16) };
}

Deno.test("SealedSegments.list() names every sealed segment, not the active one, with the SHA-256 of its file", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const spool = await spoolWith(walDir, 40);
    try {
      const listed = await spool.sealed.list();
      const sealed = spool.segments().filter((s) => s.sealed);
      assert.ok(sealed.length >= 2);
      assert.deepEqual(
        listed.map((s) => [s.firstLsn, s.lastLsn, s.sizeBytes]),
        sealed.map((s) => [s.firstLsn, s.lastLsn, s.sizeBytes]),
      );
      for (const info of listed) {
        assert.equal(info.sha256, sha256Of(Deno.readFileSync(fileOf(walDir, info.firstLsn))));
      }
    } finally {
      await spool.close();
    }
  });
});

Deno.test("SealedSegments.list() after a restart reads the digests from the sidecars: no segment byte is read, then or later", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const before = await listedAfter(walDir, 40);
    const fs = recordingFileSystem();
    const spool = await Spool.open({ walDir, timeline: 1, term: 1, fs });
    try {
      assert.deepEqual(await spool.sealed.list(), before);
      const sealedPaths = before.map((info) => fileOf(walDir, info.firstLsn));
      assert.deepEqual(fs.reads.filter((r) => sealedPaths.includes(r.path)), []);
      const sidecarReads = fs.reads.length;
      assert.deepEqual(await spool.sealed.list(), before);
      assert.equal(fs.reads.length, sidecarReads, "a second listing reads nothing");
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a segment sealed after a restart keeps the digest of every byte, those before the restart too", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    await (await spoolWith(walDir, 2)).close();
    // The newest segment is repaired at open; its running digest resumes from its bytes.
    const spool = await spoolWith(walDir, 40);
    try {
      const listed = await spool.sealed.list();
      assert.ok(listed[0]!.firstLsn === 1 && listed[0]!.lastLsn > 40, "sealed across the restart");
      for (const info of listed) {
        assert.equal(info.sha256, sha256Of(Deno.readFileSync(fileOf(walDir, info.firstLsn))));
      }
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a missing or version 1 sidecar: the verifying scan computes the digest and writes a version 2 sidecar", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const before = await listedAfter(walDir, 40);
    const first = before[0]!.firstLsn;
    const second = before[1]!.firstLsn;
    const good = Deno.readFileSync(fileOf(walDir, first, "idx"));
    Deno.removeSync(fileOf(walDir, first, "idx"));
    const v1 = Deno.readFileSync(fileOf(walDir, second, "idx"));
    v1[4] = 1;
    Deno.writeFileSync(fileOf(walDir, second, "idx"), v1);
    const fs = recordingFileSystem();
    const spool = await Spool.open({ walDir, timeline: 1, term: 1, fs });
    try {
      assert.deepEqual(await spool.sealed.list(), before);
      for (const lsn of [first, second]) {
        const scanned = fs.reads.some((r) => r.path === fileOf(walDir, lsn) && r.position === 0);
        assert.ok(scanned, `segment ${lsn} was scanned from 0`);
      }
      assert.deepEqual(
        Deno.readFileSync(fileOf(walDir, first, "idx")),
        good,
        "rewritten as sealed",
      );
    } finally {
      await spool.close();
    }
  });
});

Deno.test("SealedSegments.find() takes only the exact name of a sealed segment: unknown and active are 404, pruned is 410", async () => {
  await withTempDir(async (data) => {
    const spool = await spoolWith(`${data}/wal`, 40);
    try {
      const listed = await spool.sealed.list();
      const [first, second] = listed as [SealedSegmentInfo, SealedSegmentInfo];
      assert.deepEqual(await spool.sealed.find(nameOf(second)), second);
      const active = spool.segments().at(-1)!;
      const wrong = [
        { ...nameOf(second), hash: "0".repeat(16) },
        { ...nameOf(second), lastLsn: second.lastLsn - 1 },
        { firstLsn: second.firstLsn + 1, lastLsn: second.lastLsn, hash: nameOf(second).hash },
        { firstLsn: active.firstLsn, lastLsn: active.lastLsn, hash: "0".repeat(16) },
      ];
      for (const name of wrong) {
        await assert.rejects(() => spool.sealed.find(name), NotFoundError, JSON.stringify(name));
      }
      await spool.pruneThrough(first.lastLsn);
      await assert.rejects(() => spool.sealed.find(nameOf(first)), WalRemovedError);
      assert.deepEqual(await spool.sealed.list(), listed.slice(1));
    } finally {
      await spool.close();
    }
  });
});

Deno.test("SealedSegments.open() streams the bytes as stored, any range of them, even after a prune removed the file", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const spool = await spoolWith(walDir, 40);
    try {
      const info = (await spool.sealed.list())[0]!;
      const stored = Deno.readFileSync(fileOf(walDir, info.firstLsn));
      const whole = await spool.sealed.open(nameOf(info));
      const part = await spool.sealed.open(nameOf(info));
      await spool.pruneThrough(info.lastLsn);
      assert.deepEqual(await bytesOf(whole.stream({ start: 0, end: info.sizeBytes })), stored);
      const chunks: number[] = [];
      const stream = part.stream({ start: 100, end: 5000 }, (bytes) => chunks.push(bytes));
      assert.deepEqual(await bytesOf(stream), stored.subarray(100, 5000));
      assert.equal(chunks.reduce((a, b) => a + b, 0), 4900, "every byte handed on is counted");
      await assert.rejects(() => spool.sealed.open(nameOf(info)), WalRemovedError);
    } finally {
      await spool.close();
    }
  });
});

Deno.test("a damaged sealed segment without its sidecar is never listed: the listing stops before it and reports it once", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const before = await listedAfter(walDir, 40);
    const damaged = before[1]!;
    Deno.removeSync(fileOf(walDir, damaged.firstLsn, "idx"));
    const file = Deno.readFileSync(fileOf(walDir, damaged.firstLsn));
    file[200]! ^= 0x01;
    Deno.writeFileSync(fileOf(walDir, damaged.firstLsn), file);
    const reported: WalCorruptionError[] = [];
    const spool = await Spool.open({
      walDir,
      timeline: 1,
      term: 1,
      observer: { corruption: (error) => reported.push(error) },
    });
    try {
      assert.deepEqual(await spool.sealed.list(), before.slice(0, 1));
      assert.deepEqual(await spool.sealed.list(), before.slice(0, 1));
      await assert.rejects(() => spool.sealed.find(nameOf(damaged)), WalCorruptionError);
      assert.equal(reported.length, 1, "reported once, however often it is asked for");
    } finally {
      await spool.close();
    }
  });
});
