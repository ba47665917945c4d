import assert from "node:assert/strict";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { LeaseKeeper } from "../../src/cluster/lease_keeper.ts";
import { ETCD_MISSING, startEtcd } from "../helpers/etcd.ts";
import { waitUntil } from "../helpers/process.ts";

const ignore = ETCD_MISSING !== undefined;
/** How long the retry after a failed keepalive may take to be seen (its delay is 100 ms). */
const RETRY_SEEN_WITHIN_MS = 10_000;
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

/**
 * A stand-in for etcd's JSON gateway that grants a lease of `ttlS` and fails the first
 * `failures` keepalives with 503; it counts the keepalives it was sent.
 */
function flakyLeaseServer(ttlS: number, failures: number) {
  let keepalives = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    await req.body?.cancel();
    if (path === "/v3/lease/grant") return Response.json({ ID: "7", TTL: String(ttlS) });
    if (path !== "/v3/lease/keepalive") return Response.json({}, { status: 404 });
    keepalives += 1;
    if (keepalives <= failures) return Response.json({ error: "unavailable" }, { status: 503 });
    return Response.json({ result: { ID: "7", TTL: String(ttlS) } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    keepalives: () => keepalives,
    stop: () => server.shutdown(),
  };
}

Deno.test("LeaseKeeper tries again soon after a failed keepalive, not a whole interval later", async () => {
  // A 60 s lease: keepalives every 15 s, so only the retry can renew it within the wait below.
  const etcd = flakyLeaseServer(60, 1);
  const client = new EtcdClient({ endpoints: [etcd.url] });
  const keeper = await LeaseKeeper.start(client, 60);
  try {
    const deadlineAt = () => performance.now() + keeper.remainingMs();
    const granted = deadlineAt();
    // Well short of the 15 s interval, and far longer than the retry needs.
    await waitUntil("a second keepalive", () => etcd.keepalives() >= 2, RETRY_SEEN_WITHIN_MS);
    // The answered keepalive went out after the grant: its deadline is later than the grant's.
    await waitUntil("the deadline moved", () => deadlineAt() > granted, RETRY_SEEN_WITHIN_MS);
    assert.equal(etcd.keepalives(), 2, "one failure, one retry, and the next not before 15 s");
    assert.ok(keeper.holds());
  } finally {
    keeper.stop();
    client.close();
    await etcd.stop();
  }
});
