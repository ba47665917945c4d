// SPEC.md section 3, the segment files of a timeline: opening creates the directories durably.

import assert from "node:assert/strict";
import { SegmentSet } from "../../src/wal/segment_set.ts";
import { silentLogger } from "../../src/core/log.ts";
import { observedFileSystem } from "../helpers/observed_fs.ts";
import { withTempDir } from "../helpers/temp.ts";

async function openAndClose(fs: ReturnType<typeof observedFileSystem>, dir: string): Promise<void> {
  const { set } = await SegmentSet.open(fs, { dir, logger: silentLogger, onFrame: () => {} });
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
