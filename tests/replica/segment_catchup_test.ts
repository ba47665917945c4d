// SPEC.md 13.2, a replica catches up through sealed segments (possibly through a cache:
// `--segments-url`), then through pulls for the rest. A segment that fails its checks is not
// applied (fail closed: `apply_error`, the pulls then bring the records intact); one that cannot be
// had (410 pruned, a cache that is down) leaves the rest to the pulls. Driven by the primary's app
// in-process; each check waits for a state, never for time to pass.

import assert from "node:assert/strict";
import { FerryClient } from "../../src/client/client.ts";
import { SegmentClient } from "../../src/client/segments.ts";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { type AppFixture, withApp } from "../helpers/app_fixture.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { waitUntil } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

const RECORDS = 1200;
const utf8 = new TextEncoder();

/** What the replica's requests looked like: pulls (their since_lsn), segment fetches, acks. */
interface Traffic {
  pulls: number[];
  segmentHosts: string[];
  acks: Array<Record<string, unknown>>;
}

/**
 * A `fetch` onto the app: `primary.test` is the primary, `cache.test/edge/` a cache in front of
 * it (the prefix is cut, as a proxy would); `segment` may replace a segment's answer.
 */
function routedFetch(
  fixture: AppFixture,
  traffic: Traffic,
  segment?: (response: Response) => Response | Promise<Response>,
): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const path = url.pathname.replace(/^\/edge/, "") + url.search;
    const body = typeof init?.body === "string" ? init.body : undefined;
    if (url.pathname.includes("/ack")) traffic.acks.push(JSON.parse(body!));
    if (url.pathname === "/v1/wal") traffic.pulls.push(Number(url.searchParams.get("since_lsn")));
    const response = await fixture.app.request(`http://ferry.test${path}`, init);
    if (!/^(\/edge)?\/v1\/segments\/./.test(url.pathname)) return response;
    traffic.segmentHosts.push(url.host);
    return segment ? await segment(response) : response;
  };
}

async function withReplica(
  routed: typeof fetch,
  fn: (runtime: ReplicaRuntime) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dataDir) => {
    const runtime = await ReplicaRuntime.open({
      dataDir,
      replicaId: "r1",
      primaryUrl: "http://primary.test",
      client: new FerryClient("http://primary.test", { fetch: routed }),
      segments: new SegmentClient({
        primaryUrl: "http://primary.test",
        segmentsUrl: "http://cache.test/edge",
        fetch: routed,
      }),
      logger: createMemoryLogger(),
      backoffMsMin: 1,
      backoffMsMax: 5,
    });
    runtime.start();
    try {
      await fn(runtime);
    } finally {
      await runtime.stop();
    }
  });
}

/** A primary whose spool sealed several 16 KiB segments of distinct keys. */
function withSealedPrimary(fn: (fixture: AppFixture) => Promise<void>): Promise<void> {
  return withApp({ spool: { segmentBytesMax: 16_384 } }, async (fixture) => {
    for (let i = 1; i <= RECORDS; i += 100) {
      await fixture.primary.append(
        Array.from({ length: 100 }, (_, j) =>
          utf8.encode(
            JSON.stringify({ op: "put", collection: "c", key: `k${i + j}`, value: i + j, ts: 1 }),
          )),
      );
    }
    await fn(fixture);
  });
}

function lastSealedLsn(fixture: AppFixture): number {
  return fixture.spool.segments().filter((s) => s.sealed).at(-1)!.lastLsn;
}

async function assertHoldsEveryRecord(runtime: ReplicaRuntime): Promise<void> {
  for (const lsn of [1, 2, 600, RECORDS - 1, RECORDS]) {
    assert.equal((await runtime.get("c", `k${lsn}`))?.value, lsn);
  }
}

Deno.test("ReplicaRuntime catches up through the sealed segments from the cache, then pulls only the active segment's records", async () => {
  await withSealedPrimary(async (fixture) => {
    const traffic: Traffic = { pulls: [], segmentHosts: [], acks: [] };
    await withReplica(routedFetch(fixture, traffic), async (runtime) => {
      await waitUntil("the replica to apply everything", () => runtime.appliedLsn() === RECORDS);
      const sealed = fixture.spool.segments().filter((s) => s.sealed);
      assert.equal(traffic.segmentHosts.length, sealed.length, "each sealed segment once");
      assert.ok(traffic.segmentHosts.every((host) => host === "cache.test"), "through the cache");
      assert.ok(traffic.pulls.length > 0);
      assert.equal(traffic.pulls[0], lastSealedLsn(fixture), "the first pull starts after them");
      assert.ok(traffic.acks.some((ack) => ack.durable_lsn === lastSealedLsn(fixture)));
      await assertHoldsEveryRecord(runtime);
      assert.equal(runtime.status().state, "healthy");
    });
  });
});

Deno.test("a segment that fails its checks is not applied: apply_error, no ack past it, then the pulls bring the records intact", async () => {
  await withSealedPrimary(async (fixture) => {
    const traffic: Traffic = { pulls: [], segmentHosts: [], acks: [] };
    // A cache that damaged what it keeps: one flipped bit in every segment it serves.
    const damage = async (response: Response) => {
      const bytes = new Uint8Array(await response.arrayBuffer());
      bytes[100]! ^= 0x10;
      return new Response(bytes, { status: response.status, headers: response.headers });
    };
    await withReplica(routedFetch(fixture, traffic, damage), async (runtime) => {
      await waitUntil("the replica to apply everything", () => runtime.appliedLsn() === RECORDS);
      assert.equal(traffic.segmentHosts.length, 1, "the damaged segment ends the phase");
      const failed = traffic.acks.find((ack) => (ack.apply_errors_total as number) >= 1);
      assert.ok(failed, "the error was reported with an ack");
      assert.equal(failed.applied_lsn, 0, "nothing of the damaged segment was applied");
      assert.equal(traffic.pulls[0], 0, "the pulls went on from where it stood");
      assert.equal(runtime.status().apply_errors_total, 1);
      await assertHoldsEveryRecord(runtime);
    });
  });
});

Deno.test("a pruned segment (410) or a cache that is down leaves the rest to the pulls, without an error", async () => {
  for (const unavailable of ["410", "down"]) {
    await withSealedPrimary(async (fixture) => {
      const traffic: Traffic = { pulls: [], segmentHosts: [], acks: [] };
      let served = 0;
      const gone = async (response: Response) => {
        served += 1;
        if (served === 1) return response;
        await response.body?.cancel();
        if (unavailable === "down") throw new TypeError("connection refused");
        return Response.json({ error: "wal_removed", message: "pruned" }, { status: 410 });
      };
      await withReplica(routedFetch(fixture, traffic, gone), async (runtime) => {
        await waitUntil("the replica to apply everything", () => runtime.appliedLsn() === RECORDS);
        const first = fixture.spool.segments()[0]!;
        assert.equal(traffic.pulls[0], first.lastLsn, `${unavailable}: pulls after segment 1`);
        assert.equal(runtime.status().apply_errors_total, 0);
        await assertHoldsEveryRecord(runtime);
      });
    });
  }
});
