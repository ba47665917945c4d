// Streaming pulls between real processes (SPEC.md 13.1): shutdown ends every stream and does not
// wait for a client that reads nothing; a client that reads nothing while ~1 GB is written is cut
// at its unsent-bytes cap and leaves the primary's memory as it would be without it; a replica
// process follows streams across their `stream_max_ms` ends; a replica process that dies takes
// its stream with it.

import assert from "node:assert/strict";
import { FerryClient } from "../../src/client/client.ts";
import { MIB_BYTES } from "../../src/core/limits.ts";
import {
  converge,
  getJson,
  type Node,
  startPrimary,
  startReplica,
  stop,
  waitUntil,
  write,
} from "../helpers/cluster.ts";
import { killProcess } from "../helpers/process.ts";
import { metricByReason, runStreamMemory, silentStream } from "../helpers/stream_memory.ts";
import { withTempDir } from "../helpers/temp.ts";

/** Shutdown's grace for a response nobody reads is 1 s; the rest of a stop is far below 2 s. */
const SHUTDOWN_MS_MAX = 3000;
/**
 * Bytes the memory test writes: ~1 GB by default (about 10 s on the 2-core machine), fewer with
 * FERRY_TEST_STREAM_MEMORY_MB on a slower one. The benchmark always writes the full amount.
 */
const MEMORY_TEST_BYTES = Number(Deno.env.get("FERRY_TEST_STREAM_MEMORY_MB") ?? "1000") * 1e6;

async function openStreams(base: string): Promise<number> {
  return (await metricByReason(base, "ferry_wal_streams"))[""] ?? 0;
}

function logged(node: Node, event: string, fields: Record<string, unknown> = {}): boolean {
  return node.process.lines.some((line) => {
    try {
      const parsed = JSON.parse(line);
      return parsed.event === event &&
        Object.entries(fields).every(([key, value]) => parsed[key] === value);
    } catch {
      return false;
    }
  });
}

Deno.test("SIGTERM with open streams, one of them read by nobody, exits 0 at once and ends each", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/data`);
    let silent: Deno.TcpConn | undefined;
    try {
      const stream = await new FerryClient(primary.base).streamFrames({ replicaId: "r1" });
      const reading = (async () => {
        let frames = 0;
        for await (const item of stream) if (item.kind === "frames") frames += item.frames.length;
        return frames;
      })();
      silent = await silentStream(primary.port, 0);
      await waitUntil("both streams to open", async () => (await openStreams(primary.base)) === 2);
      // Enough that the silent client's socket is full: the server cannot finish that response.
      const value = "x".repeat(900_000);
      for (let i = 0; i < 20; i++) {
        const records = [0, 1, 2, 3].map((j) => ({
          op: "put",
          collection: "c",
          key: `k${j}`,
          value,
        }));
        assert.equal((await write(primary.base, records)).status, 200);
      }
      const sentAt = performance.now();
      primary.process.child.kill("SIGTERM");
      const status = await primary.process.child.status;
      const tookMs = performance.now() - sentAt;
      await primary.process.stderrDone;
      assert.equal(status.code, 0, primary.process.lines.slice(-10).join("\n"));
      assert.ok(tookMs < SHUTDOWN_MS_MAX, `exited after ${Math.round(tookMs)} ms`);
      assert.equal(await reading, 80, "the reader got every frame, then a clean end");
      assert.ok(logged(primary, "stream.ended", { reason: "shutdown", replica_id: "r1" }));
    } finally {
      silent?.close();
      await killProcess(primary.process);
    }
  });
});

Deno.test("a client that reads nothing while ~1 GB is written: its stream ends at the cap, RSS stays bounded", async () => {
  await withTempDir(async (dir) => {
    const without = await runStreamMemory(`${dir}/without`, {
      bytes: MEMORY_TEST_BYTES,
      stalledStream: false,
    });
    const stalled = await runStreamMemory(`${dir}/stalled`, {
      bytes: MEMORY_TEST_BYTES,
      stalledStream: true,
    });
    assert.deepEqual(stalled.endedBy, { unsent_bytes_cap: 1 }, "cut at its cap");
    const grewKib = (r: typeof stalled) => r.rssMaxKib - r.rssBeforeKib;
    const figures =
      `RSS grew ${Math.round(grewKib(stalled) / 1024)} MiB with the stalled stream, ` +
      `${Math.round(grewKib(without) / 1024)} MiB without, ${
        Math.round(stalled.writtenBytes / 1e6)
      } MB written`;
    // What the stalled stream may add: its cap, and room for the noise of two runs.
    const allowanceKib = (stalled.unsentBytesMax + 96 * MIB_BYTES) / 1024;
    assert.ok(grewKib(stalled) <= grewKib(without) + allowanceKib, figures);
    assert.ok(
      grewKib(stalled) * 1024 < stalled.writtenBytes / 2,
      `not with what was written: ${figures}`,
    );
  });
});

Deno.test("a replica process follows streams across their stream_max_ms ends, missing nothing", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/primary`, ["--stream-max-ms", "300"]);
    let replica: Node | undefined;
    try {
      replica = await startReplica(primary, { dataDir: `${dir}/replica`, replicaId: "r1" });
      await waitUntil("a stream to open", async () => (await openStreams(primary.base)) === 1);
      for (let i = 0; i < 40; i++) {
        const record = { op: "put", collection: "c", key: `k${i % 7}`, value: i };
        assert.equal((await write(primary.base, [record])).status, 200);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await converge(primary, [replica]);
      const ended = await metricByReason(primary.base, "ferry_wal_streams_ended_total");
      assert.ok((ended.max_age ?? 0) >= 2, `streams ended by age: ${JSON.stringify(ended)}`);
      assert.equal((await getJson(replica.base, "/v1/status")).state, "healthy");
      assert.ok(!logged(replica, "replica.stream_fallback"), "ends of life are not breaks");
    } finally {
      if (replica) await stop(replica);
      await stop(primary);
    }
  });
});

Deno.test("a replica process killed mid-stream: its stream ends at once, nothing held for it", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/primary`);
    try {
      const replica = await startReplica(primary, { dataDir: `${dir}/replica`, replicaId: "r1" });
      await waitUntil("its stream to open", async () => (await openStreams(primary.base)) === 1);
      await killProcess(replica.process, "SIGKILL");
      await waitUntil("the stream to end", async () => (await openStreams(primary.base)) === 0);
      const ended = await metricByReason(primary.base, "ferry_wal_streams_ended_total");
      assert.deepEqual(ended, { client_gone: 1 });
      assert.equal((await metricByReason(primary.base, "ferry_pull_waiters"))[""], 0);
      assert.ok(logged(primary, "stream.ended", { reason: "client_gone", replica_id: "r1" }));
    } finally {
      await stop(primary);
    }
  });
});
