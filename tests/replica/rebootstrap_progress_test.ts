// SPEC.md 13.5: a re-bootstrapping replica shows how far it got: entries loaded of the total the
// primary announced, bytes, and an ETA; it logs its progress every few seconds.

import assert from "node:assert/strict";
import { REPLICA_PROGRESS_LOG_MS, SNAPSHOT_PAGE_ENTRIES } from "../../src/core/limits.ts";
import { RebootstrapProgress } from "../../src/replica/rebootstrap_progress.ts";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import {
  deferred,
  idlePull,
  rebootstrapResponse,
  type ScriptedEntry,
  scriptedPrimary,
  snapshotLines,
  snapshotResponse,
} from "../helpers/scripted_primary.ts";
import { withTempDir } from "../helpers/temp.ts";

Deno.test("RebootstrapProgress counts entries and bytes and predicts the rest at the rate so far", () => {
  let now = 1_000_000;
  const logger = createMemoryLogger();
  const progress = new RebootstrapProgress(() => now);
  progress.expect(100);
  now += 10_000;
  progress.stored(25, 2500, logger);
  assert.deepEqual(progress.view(), {
    entries_loaded: 25,
    entries_total: 100,
    bytes_loaded: 2500,
    started_at_unix_ms: 1_000_000,
    eta_s: 30,
  });
  const logged = logger.lines.filter((line) => line.event === "replica.rebootstrap_progress");
  assert.equal(logged.length, 1, "logged once the interval passed");
  progress.stored(1, 10, logger);
  assert.equal(logger.lines.length, 1, "not again before the next interval");
  now += REPLICA_PROGRESS_LOG_MS;
  progress.stored(1, 10, logger);
  assert.equal(logger.lines.length, 2);
});

Deno.test("ReplicaRuntime.status() shows re-bootstrap progress against the primary's announced total", async () => {
  const total = SNAPSHOT_PAGE_ENTRIES + 100;
  const entries: ScriptedEntry[] = Array.from(
    { length: total },
    (_, i) => ({ collection: "c", key: `k${String(i).padStart(5, "0")}`, value: i, lsn: 5 }),
  );
  const lines = snapshotLines(60, entries);
  const hold = deferred();
  const primary = scriptedPrimary({
    currentLsn: 60,
    wal: (request) =>
      Number(request.query.get("since_lsn")) < 60
        ? rebootstrapResponse("wal-removed", 61)
        : idlePull(request, 60),
    snapshot: (request) => {
      // Every entry but no trailer yet: the first page is stored, the rest waits.
      const answer = snapshotResponse(request, lines.slice(0, 1 + total), hold.promise);
      const headers = new Headers(answer.headers);
      headers.set("x-ferry-snapshot-entries", String(total));
      return new Response(answer.body, { headers });
    },
  });
  await withTempDir(async (dataDir) => {
    const runtime = await ReplicaRuntime.open({
      dataDir,
      replicaId: "r1",
      primaryUrl: "http://primary.test",
      client: primary.client,
      logger: createMemoryLogger(),
    });
    runtime.start();
    try {
      await primary.waitFor("snapshot");
      const deadline = Date.now() + 30_000;
      while ((runtime.status().rebootstrap?.entries_loaded ?? 0) === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const status = runtime.status();
      assert.equal(status.state, "rebootstrapping");
      assert.equal(status.rebootstrap!.entries_loaded, SNAPSHOT_PAGE_ENTRIES);
      assert.equal(status.rebootstrap!.entries_total, total);
      assert.ok(status.rebootstrap!.bytes_loaded > 0);
    } finally {
      hold.resolve();
      await runtime.stop();
    }
  });
});
