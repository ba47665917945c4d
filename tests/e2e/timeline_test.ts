// A data directory keeps one timeline (its spool and its slots): started under another --timeline,
// ferry refuses with one clear line naming the timeline it holds, and writes nothing.

import assert from "node:assert/strict";
import { startPrimary, stop, write } from "../helpers/cluster.ts";
import { freePort, startProcess, startTaskArgs } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

Deno.test("a data directory of timeline 1 started with --timeline 2 is refused, untouched", async () => {
  await withTempDir(async (dir) => {
    const dataDir = `${dir}/p`;
    const primary = await startPrimary(dataDir);
    try {
      await write(primary.base, [{ op: "put", collection: "c", key: "k", value: 1 }]);
      const put = await fetch(`${primary.base}/v1/replicas/edge-1`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(put.status, 200);
      await put.body?.cancel();
    } finally {
      await stop(primary);
    }
    const before = await Array.fromAsync(Deno.readDir(`${dataDir}/wal`));
    const process = startProcess([
      ...startTaskArgs(dataDir, freePort()),
      "--timeline",
      "2",
    ]);
    const status = await process.child.status;
    await process.stderrDone;
    assert.notEqual(status.code, 0, "the start is refused");
    const failed = process.lines.filter((line) => line.includes('"ferry.start_failed"'));
    assert.equal(failed.length, 1, process.lines.join("\n"));
    const line = JSON.parse(failed[0]!);
    assert.equal(line.code, "timeline_mismatch");
    assert.match(line.message, /holds timeline 1/);
    assert.match(line.message, /--timeline 1/);
    assert.ok(!process.lines.some((l) => /catalog_corrupt/.test(l)), "not reported as corruption");
    const after = await Array.fromAsync(Deno.readDir(`${dataDir}/wal`));
    assert.deepEqual(after.map((e) => e.name), before.map((e) => e.name), "no new timeline dir");
  });
});
