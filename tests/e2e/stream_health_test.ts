// A replica is seen by its requests and acks, never by an open socket alone (SPEC.md 5, 13.1),
// between real processes: an idle streaming replica stays healthy (it acks every 2 s with nothing
// new), and one frozen with SIGSTOP turns unhealthy within the health window although its stream's
// socket stays open; after SIGCONT it is healthy again. (The rule over a full minute is proven
// with a fake clock in tests/replication/streams_test.ts.)

import assert from "node:assert/strict";
import {
  getJson,
  type Node,
  startPrimary,
  startReplica,
  stop,
  waitUntil,
} from "../helpers/cluster.ts";
import { killProcess } from "../helpers/process.ts";
import { metricByReason } from "../helpers/stream_memory.ts";
import { withTempDir } from "../helpers/temp.ts";

/** The primary's default health window (`--healthy-within-ms`). */
const HEALTH_WINDOW_MS = 5000;
/** The health sweep runs at least every second; a stopped process is noticed after both. */
const NOTICED_WITHIN_MS = HEALTH_WINDOW_MS + 1000;
/** Generous room for a loaded machine, on top of the rule. */
const SLACK_MS = 4000;

async function healthOf(primary: Node, id: string): Promise<boolean | undefined> {
  const status = await getJson(primary.base, "/v1/status");
  const replicas = status.replicas as Array<{ id: string; healthy: boolean }>;
  return replicas.find((replica) => replica.id === id)?.healthy;
}

async function openStreams(primary: Node): Promise<number> {
  return (await metricByReason(primary.base, "ferry_wal_streams"))[""] ?? 0;
}

Deno.test("an idle streaming replica stays healthy; frozen by SIGSTOP it turns unhealthy with its socket open", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/primary`);
    let replica: Node | undefined;
    let frozen = false;
    try {
      replica = await startReplica(primary, { dataDir: `${dir}/replica`, replicaId: "edge-1" });
      await waitUntil("its stream to open", async () => (await openStreams(primary)) === 1);
      await waitUntil("it to be healthy", async () => (await healthOf(primary, "edge-1")) === true);
      // Past a whole health window with nothing written: only its acks keep it seen.
      const idleUntil = Date.now() + HEALTH_WINDOW_MS + 1000;
      while (Date.now() < idleUntil) {
        assert.equal(await healthOf(primary, "edge-1"), true, "idle, and still healthy");
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      replica.process.child.kill("SIGSTOP");
      frozen = true;
      const stoppedAt = Date.now();
      await waitUntil(
        "the frozen replica to turn unhealthy",
        async () => (await healthOf(primary, "edge-1")) === false,
        NOTICED_WITHIN_MS + SLACK_MS,
      );
      const tookMs = Date.now() - stoppedAt;
      assert.ok(tookMs <= NOTICED_WITHIN_MS + SLACK_MS, `unhealthy after ${tookMs} ms`);
      assert.equal(await openStreams(primary), 1, "its stream's socket is still open");
      replica.process.child.kill("SIGCONT");
      frozen = false;
      await waitUntil(
        "it to be healthy again",
        async () => (await healthOf(primary, "edge-1")) === true,
      );
    } finally {
      if (replica && frozen) replica.process.child.kill("SIGCONT");
      if (replica) await stop(replica).catch(() => killProcess(replica!.process));
      await stop(primary);
    }
  });
});
