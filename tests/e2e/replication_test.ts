// Edge replicas end to end (SPEC.md 7, 8, 9.3, 9.4, 9.7) with real processes started with the
// tasks' own scoped permissions: convergence, kill -9 of a replica and of the primary, re-bootstrap
// after invalidation, snapshot resumption, commit policies, read-your-writes.

import assert from "node:assert/strict";
import {
  assertSameState,
  converge,
  getJson,
  restart,
  startPrimary,
  startReplica,
  stop,
  waitApplied,
  waitUntil,
  withNodeLogs,
  write,
  writeLoad,
} from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp.ts";

Deno.test("a primary and two replicas: 10 000 concurrent writes, both replicas converge to the primary's state", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    const r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1", region: "eu" });
    const r2 = await startReplica(primary, { dataDir: `${dir}/r2`, replicaId: "r2", region: "us" });
    try {
      const acked = await writeLoad(primary.base, {
        writers: 8,
        perWriter: 1250,
        keys: 3000,
        tag: "load",
      });
      assert.equal(acked.length, 10_000);
      const last = await converge(primary, [r1, r2]);
      assert.equal(last, 10_000);
      const status = await getJson(primary.base, "/v1/status");
      assert.equal(status.full_resync_total, 0);
    } finally {
      await Promise.all([stop(r1), stop(r2)]);
      await stop(primary);
    }
    await assertSameState(primary, [r1, r2]);
  });
});

Deno.test("kill -9 of a replica mid-stream: it resumes by partial resync, no snapshot, and converges", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    let r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    try {
      const load = writeLoad(primary.base, { writers: 4, perWriter: 800, keys: 500, tag: "a" });
      await waitUntil("r1 to apply some records", async () => {
        const s = await getJson(r1.base, "/v1/status").catch(() => undefined);
        return s && (s.applied_lsn as number) > 300;
      });
      await stop(r1, "SIGKILL");
      const partialBefore = (await getJson(primary.base, "/v1/status"))
        .partial_resync_total as number;
      r1 = await restart(r1);
      await load;
      await converge(primary, [r1]);
      const status = await getJson(primary.base, "/v1/status");
      assert.ok(
        (status.partial_resync_total as number) > partialBefore,
        "the reconnect counted as a partial resync",
      );
      assert.equal(status.full_resync_total, 0, "no re-bootstrap");
      const replica = await getJson(r1.base, "/v1/status");
      assert.equal(replica.rebootstraps_total, 0);
      assert.equal(
        replica.divergence_total,
        0,
        "nothing was applied twice with a different result",
      );
      assert.ok(
        !primary.process.lines.some((l) => l.includes("snapshot.started")),
        "no snapshot was taken",
      );
    } finally {
      await stop(r1);
      await stop(primary);
    }
    await assertSameState(primary, [r1]);
  });
});

Deno.test("kill -9 of the primary under write load: every acknowledged write survives, everywhere", async () => {
  await withTempDir(async (dir) => {
    let primary = await startPrimary(`${dir}/p`);
    const r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    const r2 = await startReplica(primary, { dataDir: `${dir}/r2`, replicaId: "r2" });
    try {
      const load = writeLoad(primary.base, {
        writers: 6,
        perWriter: 100_000,
        keys: 1000,
        tag: "b",
        stopOnError: true,
      });
      await waitUntil(
        "some writes",
        async () => ((await getJson(primary.base, "/v1/status")).current_lsn as number) > 1500,
      );
      await stop(primary, "SIGKILL");
      const acked = await load;
      primary = await restart(primary);
      await write(primary.base, [{
        op: "put",
        collection: "items",
        key: "after-restart",
        value: 1,
      }]);
      const pulled = new Map<number, unknown>();
      for (let since = 0;;) {
        const page = await getJson(primary.base, `/v1/wal?since_lsn=${since}&max_count=10000`);
        const records = page.records as Array<{ lsn: number; record: Record<string, unknown> }>;
        if (records.length === 0) break;
        for (const r of records) pulled.set(r.lsn, r.record);
        since = records[records.length - 1]!.lsn;
      }
      assert.ok(acked.length > 1000);
      for (const { lsn, record } of acked) {
        const stored = pulled.get(lsn) as Record<string, unknown> | undefined;
        assert.ok(stored, `acknowledged LSN ${lsn} is on the primary`);
        assert.equal(stored.key, record.key);
        assert.deepEqual(stored.value, record.value);
      }
      await converge(primary, [r1, r2]);
    } finally {
      await Promise.all([stop(r1), stop(r2)]);
      await stop(primary);
    }
    await assertSameState(primary, [r1, r2]);
  });
});

Deno.test("past the lag cap a stopped replica is invalidated; on restart it re-bootstraps while serving reads, swaps, converges", async () => {
  await withTempDir(async (dir) => {
    const settings = [
      "--slot-lag-max-records",
      "30",
      "--retention-interval-ms",
      "50",
      "--segment-bytes-max",
      "4096",
      "--wal-retain-bytes-min",
      "0",
    ];
    const primary = await startPrimary(`${dir}/p`, settings);
    let r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    try {
      const first = await write(primary.base, [{
        op: "put",
        collection: "items",
        key: "early",
        value: "v1",
      }]);
      await waitApplied(r1.base, first.body.last_lsn as number);
      await stop(r1);
      await writeLoad(primary.base, { writers: 2, perWriter: 100, keys: 50, tag: "gone" });
      await waitUntil("r1's slot to be invalidated and its WAL pruned", async () => {
        const s = await getJson(primary.base, "/v1/status");
        const slot = (s.slots as Array<Record<string, unknown>>).find((x) => x.replica_id === "r1");
        return slot?.invalidation_reason === "horizon" && (s.oldest_lsn as number) > 2;
      });
      const fullBefore = (await getJson(primary.base, "/v1/status")).full_resync_total as number;
      r1 = await restart(r1);
      // On a failure, the two logs say where the re-bootstrap stopped.
      const restarted = r1;
      await withNodeLogs([primary, restarted], async () => {
        // Reads go on during the re-bootstrap (from the old store, then the new one): never a 5xx.
        const reads: number[] = [];
        const current = (await getJson(primary.base, "/v1/status")).current_lsn as number;
        await waitUntil("r1 to re-bootstrap and catch up", async () => {
          reads.push(
            await fetch(`${r1.base}/v1/records/items/early`).then(async (
              r,
            ) => (await r.body?.cancel(), r.status)),
          );
          const s = await getJson(r1.base, "/v1/status");
          return s.rebootstraps_total === 1 && (s.applied_lsn as number) >= current &&
            s.state === "healthy";
        });
        assert.ok(
          reads.every((status) => status === 200),
          `reads during the re-bootstrap: ${[...new Set(reads)]}`,
        );
        await converge(primary, [r1]);
        const status = await getJson(primary.base, "/v1/status");
        assert.equal(
          (status.full_resync_total as number) - fullBefore,
          1,
          "the full-resync counter rose by one",
        );
        assert.ok(r1.process.lines.some((l) => l.includes("replica.rebootstrap_finished")));
        assert.ok(primary.process.lines.some((l) => l.includes("slot.invalidated")));
        // The primary saw the replica flag itself as rebootstrapping, then clear the flag.
        const flags = primary.process.lines.filter((l) => l.includes("replica.rebootstrap_"));
        assert.ok(
          flags.some((l) => l.includes("rebootstrap_started")) &&
            flags.some((l) => l.includes("rebootstrap_finished")),
        );
      });
    } finally {
      await stop(r1);
      await stop(primary);
    }
    await assertSameState(primary, [r1]);
  });
});

Deno.test("a snapshot cut mid-stream resumes with after= and matches an uncut one", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    try {
      await withNodeLogs([primary], async () => {
        const records = Array.from(
          { length: 3000 },
          (_, i) => ({
            op: "put",
            collection: i % 2 ? "a" : "b",
            key: `key/${i}`,
            value: { i, pad: "x".repeat(200) },
          }),
        );
        for (let i = 0; i < records.length; i += 1000) {
          await write(primary.base, records.slice(i, i + 1000));
        }
        await waitUntil(
          "the state to apply",
          async () => ((await getJson(primary.base, "/v1/status")).applied_lsn as number) === 3000,
        );
        const uncut = (await (await fetch(`${primary.base}/v1/snapshot?replica_id=s1`)).text())
          .trim()
          .split("\n").map((l) => JSON.parse(l));
        // Cut: read part of the stream, keep only whole lines, drop the connection.
        const response = await fetch(`${primary.base}/v1/snapshot?replica_id=s2`);
        const reader = response.body!.getReader();
        let text = "";
        while (text.length < 200_000) {
          text += new TextDecoder().decode((await reader.read()).value!);
        }
        await reader.cancel();
        const firstPart = text.split("\n").slice(0, -1).map((l) => JSON.parse(l));
        const last = firstPart[firstPart.length - 1];
        assert.equal(last.type, "entry");
        const after = encodeURIComponent(`${last.collection}/${last.key}`);
        const rest =
          (await (await fetch(`${primary.base}/v1/snapshot?replica_id=s2&after=${after}`)).text())
            .trim().split("\n").map((l) => JSON.parse(l));
        assert.equal(rest[0].type, "header");
        assert.equal(rest[0].start_lsn, firstPart[0].start_lsn, "a resume keeps the original pin");
        const entries = (lines: Array<Record<string, unknown>>) =>
          lines.filter((l) => l.type === "entry");
        assert.deepEqual([...entries(firstPart), ...entries(rest)], entries(uncut));
        assert.equal(entries(uncut).length, 3000);
        const trailer = uncut[uncut.length - 1];
        assert.equal(trailer.type, "trailer");
        assert.equal(trailer.count, 3000);
      });
    } finally {
      await stop(primary);
    }
  });
});

Deno.test("commit policies across processes: ack_n=2 reached, then timed_out with one replica stopped; regions", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    const r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1", region: "eu" });
    const r2 = await startReplica(primary, { dataDir: `${dir}/r2`, replicaId: "r2", region: "us" });
    try {
      await waitUntil(
        "both replicas registered",
        async () =>
          ((await getJson(primary.base, "/v1/status")).replicas as unknown[]).length === 2,
      );
      const reached = await write(primary.base, [{
        op: "put",
        collection: "c",
        key: "a",
        value: 1,
      }], { commit_policy: "ack_n=2", timeout_ms: 20_000 });
      assert.equal((reached.body.commit as Record<string, unknown>).outcome, "reached");
      assert.deepEqual((reached.body.commit as Record<string, unknown>).durable_replicas, [
        "r1",
        "r2",
      ]);
      const regions = await write(primary.base, [{
        op: "put",
        collection: "c",
        key: "b",
        value: 2,
      }], { commit_policy: "regions=eu,us", timeout_ms: 20_000 });
      assert.equal((regions.body.commit as Record<string, unknown>).outcome, "reached");
      assert.deepEqual((regions.body.commit as Record<string, unknown>).regions, ["eu", "us"]);
      await stop(r2);
      const timedOut = await write(primary.base, [{
        op: "put",
        collection: "c",
        key: "c",
        value: 3,
      }], { commit_policy: "ack_n=2", timeout_ms: 300 });
      assert.equal(timedOut.status, 200);
      const commit = timedOut.body.commit as Record<string, unknown>;
      assert.equal(commit.outcome, "timed_out");
      assert.equal(commit.observed, 1);
      assert.deepEqual(commit.durable_replicas, ["r1"]);
      const page = await getJson(
        primary.base,
        `/v1/wal?since_lsn=${(timedOut.body.last_lsn as number) - 1}`,
      );
      assert.equal((page.records as unknown[]).length, 1, "the timed-out write is durable");
    } finally {
      await stop(r1);
      await stop(r2).catch(() => undefined);
      await stop(primary);
    }
  });
});

Deno.test("read-your-writes: a write answered with LSN L is read at a replica with min_lsn=L", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/p`);
    const r1 = await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1" });
    try {
      for (let i = 0; i < 20; i++) {
        const { body } = await write(primary.base, [{
          op: "put",
          collection: "profiles",
          key: `u${i}`,
          value: { v: i },
        }]);
        const lsn = body.last_lsn as number;
        const read = await getJson(
          r1.base,
          `/v1/records/profiles/u${i}?min_lsn=${lsn}&await_timeout_ms=10000`,
        );
        assert.deepEqual(read.value, { v: i });
        assert.ok((read.applied_lsn as number) >= lsn);
      }
      const notYet = await fetch(
        `${r1.base}/v1/records/profiles/u1?min_lsn=999999&await_timeout_ms=20`,
      );
      assert.equal(notYet.status, 503);
      assert.equal((await notYet.json()).error, "lsn_not_applied");
      assert.equal((await fetch(`${r1.base}/v1/records/profiles/nobody`)).status, 404);
    } finally {
      await stop(r1);
      await stop(primary);
    }
  });
});
