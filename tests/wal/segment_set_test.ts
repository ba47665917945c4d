// SPEC.md section 3, the segment files of a timeline: opening creates the directories durably;
// sealed segments keep their seek index in a sidecar and their sizes in a manifest, both checked.

import assert from "node:assert/strict";
import { SegmentSet } from "../../src/wal/segment_set.ts";
import { silentLogger } from "../../src/core/log.ts";
import { observedFileSystem } from "../helpers/observed_fs.ts";
import { withTempDir } from "../helpers/temp.ts";
import { recordingFileSystem } from "../helpers/recording_fs.ts";
import { Spool } from "../../src/wal/spool.ts";
import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";
import { encodeManifest } from "../../src/wal/segment_manifest.ts";

async function openAndClose(fs: ReturnType<typeof observedFileSystem>, dir: string): Promise<void> {
  const { set } = await SegmentSet.open(fs, { dir, logger: silentLogger, onRecord: () => {} });
  set.close();
}

Deno.test("SegmentSet.open() fsyncs the parent of every directory it creates, before the first segment", async () => {
  await withTempDir(async (data) => {
    const fs = observedFileSystem();
    await openAndClose(fs, `${data}/wal/00000001`);
    const created = fs.ops.indexOf(`mkdirp ${data}/wal/00000001`);
    const firstSegment = fs.ops.indexOf(`open ${data}/wal/00000001/00000000000000000001.wal`);
    assert.ok(created >= 0 && firstSegment > created, fs.ops.join("\n"));
    const between = fs.ops.slice(created + 1, firstSegment);
    assert.ok(between.includes(`syncDir ${data}`), "the data dir's new wal/ entry is durable");
    assert.ok(between.includes(`syncDir ${data}/wal`), "wal/'s new timeline entry is durable");
  });
});

Deno.test("SegmentSet.open() of an existing timeline fsyncs no directory", async () => {
  await withTempDir(async (data) => {
    await openAndClose(observedFileSystem(), `${data}/wal/00000001`);
    const fs = observedFileSystem();
    await openAndClose(fs, `${data}/wal/00000001`);
    assert.deepEqual(fs.ops.filter((op) => op.startsWith("syncDir")), []);
  });
});

Deno.test("SegmentSet.open() creates only the missing directories: a second timeline syncs wal/", async () => {
  await withTempDir(async (data) => {
    await openAndClose(observedFileSystem(), `${data}/wal/00000001`);
    const fs = observedFileSystem();
    await openAndClose(fs, `${data}/wal/00000002`);
    assert.ok(fs.ops.includes(`syncDir ${data}/wal`), "wal/'s new timeline entry is durable");
    assert.ok(!fs.ops.includes(`syncDir ${data}`), "the data dir did not change");
  });
});

// ---- sidecars and the manifest ----

async function sealedSpool(walDir: string, fs?: FileSystem): Promise<Spool> {
  const spool = await Spool.open({ walDir, timeline: 1, term: 1, segmentBytesMax: 16_384, fs });
  const payload = new TextEncoder().encode(
    JSON.stringify({ op: "put", collection: "c", key: "k" }),
  );
  for (let i = 0; i < 40; i++) await spool.append(Array.from({ length: 20 }, () => payload));
  return spool;
}

Deno.test("sealing a segment writes its sidecar and the manifest; an open then stats no segment", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const spool = await sealedSpool(walDir);
    const sealed = spool.segments().filter((s) => s.sealed);
    assert.ok(sealed.length >= 2);
    await spool.close();
    const dir = `${walDir}/00000001`;
    for (const segment of sealed) {
      const name = `${String(segment.firstLsn).padStart(20, "0")}.idx`;
      assert.ok(Deno.statSync(`${dir}/${name}`).isFile, `${name} was written when sealed`);
    }
    const sizes: string[] = [];
    const fs = {
      ...denoFileSystem(),
      sizeOf: (path: string) => (sizes.push(path), Promise.resolve(0)),
    };
    const reopened = await Spool.open({ walDir, timeline: 1, term: 1, fs });
    assert.deepEqual(sizes, [], "sizes came from the manifest");
    assert.deepEqual(reopened.segments(), spool.segments());
    await reopened.close();
  });
});

Deno.test("a manifest that disagrees with the listing is ignored: sizes from metadata, manifest rewritten", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const spool = await sealedSpool(walDir);
    const before = spool.segments();
    await spool.close();
    const dir = `${walDir}/00000001`;
    const manifest = Deno.readFileSync(`${dir}/segments.manifest`);
    // An older manifest (one sealed segment fewer) and a damaged one: neither is believed.
    const older = encodeManifest(
      before.filter((s) => s.sealed).slice(0, -1).map((s) => ({
        firstLsn: s.firstLsn,
        sizeBytes: 1,
      })),
    );
    const damaged = manifest.slice();
    damaged[14]! ^= 1;
    for (const bytes of [older, damaged]) {
      Deno.writeFileSync(`${dir}/segments.manifest`, bytes);
      const reopened = await Spool.open({ walDir, timeline: 1, term: 1 });
      assert.deepEqual(reopened.segments(), before);
      await reopened.close();
      assert.deepEqual(Deno.readFileSync(`${dir}/segments.manifest`), manifest, "rewritten");
    }
  });
});

Deno.test("a cold read from the middle of a sealed segment uses its sidecar: no byte before the checkpoint is read", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    await (await sealedSpool(walDir)).close();
    const fs = recordingFileSystem();
    const spool = await Spool.open({ walDir, timeline: 1, term: 1, tailBytesMax: 0, fs });
    const segment = spool.segments()[1]!;
    const path = `${walDir}/00000001/${String(segment.firstLsn).padStart(20, "0")}.wal`;
    fs.reads.length = 0;
    const since = segment.firstLsn + 70; // past the checkpoint at ordinal 64
    const frames = await spool.readSince(since, 5, 1 << 20);
    assert.deepEqual(frames.map((f) => f.lsn), [1, 2, 3, 4, 5].map((i) => since + i));
    const segmentReads = fs.reads.filter((r) => r.path === path);
    assert.ok(segmentReads.length > 0 && segmentReads.every((r) => r.position > 0), "no scan");
    await spool.close();
  });
});

Deno.test("a damaged or mismatched sidecar is not trusted: a verifying scan rebuilds and rewrites it", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    await (await sealedSpool(walDir)).close();
    const dir = `${walDir}/00000001`;
    const name = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".idx"))
      .sort()[1]!;
    const good = Deno.readFileSync(`${dir}/${name}`);
    const damaged = good.slice();
    damaged[good.byteLength - 12]! ^= 0x40; // a checkpoint offset
    for (const bytes of [damaged, new Uint8Array(0)]) {
      Deno.writeFileSync(`${dir}/${name}`, bytes);
      const fs = recordingFileSystem();
      const spool = await Spool.open({ walDir, timeline: 1, term: 1, tailBytesMax: 0, fs });
      const firstLsn = Number(name.slice(0, 20));
      const frames = await spool.readSince(firstLsn + 70, 3, 1 << 20);
      assert.deepEqual(frames.map((f) => f.lsn), [71, 72, 73].map((i) => firstLsn + i));
      const wal = `${dir}/${name.replace(".idx", ".wal")}`;
      assert.ok(fs.reads.some((r) => r.path === wal && r.position === 0), "scanned from 0");
      await spool.close();
      assert.deepEqual(Deno.readFileSync(`${dir}/${name}`), good, "the sidecar was rebuilt");
    }
  });
});

Deno.test("pruning deletes each pruned segment's sidecar and rewrites the manifest", async () => {
  await withTempDir(async (data) => {
    const walDir = `${data}/wal`;
    const spool = await sealedSpool(walDir);
    const second = spool.segments()[1]!;
    await spool.pruneThrough(second.lastLsn);
    await spool.close();
    const names = [...Deno.readDirSync(`${walDir}/00000001`)].map((e) => e.name);
    const lsns = (ext: string) =>
      names.filter((n) => n.endsWith(ext)).map((n) => Number(n.slice(0, 20))).sort((a, b) => a - b);
    assert.ok(lsns(".idx").every((lsn) => lsn > second.lastLsn), "no sidecar outlives its segment");
    const sizes: string[] = [];
    const fs = {
      ...denoFileSystem(),
      sizeOf: (path: string) => (sizes.push(path), Promise.resolve(0)),
    };
    const reopened = await Spool.open({ walDir, timeline: 1, term: 1, fs });
    assert.deepEqual(sizes, [], "the manifest lists exactly what is left");
    assert.equal(reopened.oldestLsn(), second.lastLsn + 1);
    await reopened.close();
  });
});
