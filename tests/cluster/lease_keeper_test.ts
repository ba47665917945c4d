import assert from "node:assert/strict";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { LeaseKeeper } from "../../src/cluster/lease_keeper.ts";
import { ETCD_MISSING, startEtcd } from "../helpers/etcd.ts";
import { waitUntil } from "../helpers/process.ts";

const ignore = ETCD_MISSING !== undefined;
/** waitUntil polls every 25 ms; a timer may fire a little late on a busy machine. */
const POLL_SLACK_MS = 250;

/** Blocks this thread's event loop, as a long parse or a GC pause would. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

Deno.test({
  name: "LeaseKeeper keeps the lease from a Worker while the main event loop is blocked",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const keeper = await LeaseKeeper.start(client, 2);
    try {
      assert.ok(keeper.holds());
      assert.ok(keeper.remainingMs() <= keeper.grantedTtlS * 1000 / 2);
      // Three seconds is past the first deadline (half of a 2 s TTL): only keepalives sent while
      // this thread was blocked can have moved it.
      blockEventLoop(3_000);
      assert.ok(keeper.holds(), `remaining ${keeper.remainingMs()} ms`);
      assert.ok(await client.keepAlive(keeper.id) > 0, "etcd still has the lease");
    } finally {
      keeper.stop();
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "LeaseKeeper fences within half the TTL when etcd stops answering, and recovers after",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const keeper = await LeaseKeeper.start(client, 4);
    try {
      await waitUntil("a keepalive after the grant", () => keeper.remainingMs() > 1_000);
      etcd.pause();
      const remainingAtPauseMs = keeper.remainingMs();
      const pausedAt = performance.now();
      // The deadline counts from the last answered keepalive's send time, which precedes the pause,
      // so it is at most half the TTL away, and nothing can move it while etcd is silent.
      assert.ok(remainingAtPauseMs <= keeper.grantedTtlS * 1000 / 2);
      await waitUntil("the fence", () => !keeper.holds(), 10_000);
      const fencedAfterMs = performance.now() - pausedAt;
      assert.ok(
        fencedAfterMs <= remainingAtPauseMs + POLL_SLACK_MS,
        `fenced after ${fencedAfterMs} ms, deadline was ${remainingAtPauseMs} ms away`,
      );
      etcd.resume();
      await waitUntil("the lease renewed", () => keeper.holds(), 10_000);
    } finally {
      etcd.resume();
      keeper.stop();
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "LeaseKeeper reports a revoked lease at once and never holds again",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const keeper = await LeaseKeeper.start(client, 2);
    try {
      const lost = new Promise<string>((resolve) => keeper.onLost(resolve));
      await client.revokeLease(keeper.id);
      assert.equal(await lost, "expired");
      assert.equal(keeper.holds(), false);
      assert.ok(keeper.remainingMs() < 0);
    } finally {
      keeper.stop();
      client.close();
      await etcd.stop();
    }
  },
});
