// FerryClient.write() across a failover (SPEC.md 13.4, src/client/commit_resolve.ts): a 503
// `commit_unknown` is settled through `GET /v1/commits` and never re-sent blindly, a `lost` write is
// re-sent once, a 503 `no_leader` is re-sent after Retry-After. A scripted fetch plays the cluster
// and a fake clock plays time, so no test waits for real; two tests run against the real app.

import assert from "node:assert/strict";
import { FerryClient } from "../../src/client/client.ts";
import {
  CommitLostError,
  CommitUnknownError,
  FerryHttpError,
  FerryResponseError,
  NotLeaderError,
} from "../../src/core/errors.ts";
import {
  COMMIT_RESOLVE_BUDGET_MS,
  COMMIT_RESOLVE_DELAY_MS_MAX,
  COMMIT_RESOLVE_DELAY_MS_MIN,
  WRITE_NO_LEADER_RETRIES_MAX,
  WRITE_RETRY_AFTER_MS_MAX,
} from "../../src/core/client_limits.ts";
import type { WriteRecord } from "../../src/client/types.ts";
import { withApp } from "../helpers/app_fixture.ts";

const BASE_URL = "http://node-a.test";
const LEADER_URL = "http://node-b.test";
const RECORDS: WriteRecord[] = [
  { op: "put", collection: "users", key: "u1", value: { n: 1 } },
  { op: "put", collection: "users", key: "u2", value: { n: 2 } },
  { op: "delete", collection: "users", key: "u0" },
];

type Outcome = "committed" | "lost" | "unknown";

/** A request as the fake cluster saw it. */
interface Seen {
  method: string;
  url: string;
  body?: string;
}

/**
 * A fetch that answers each POST with the next of `posts` (a POST past the script fails the test)
 * and each GET with `commits(url)`, and a clock that moves only when the client sleeps.
 */
function fakeCluster(
  posts: Array<() => Response>,
  commits: (url: URL) => Response = () => outcomeAnswer(0, 0, "unknown"),
) {
  const seen: Seen[] = [];
  const slept: number[] = [];
  let nowMs = 0;
  const fetchFn: typeof fetch = (input, init) => {
    const request = new Request(input, init);
    seen.push({ method: request.method, url: request.url, body: init?.body as string | undefined });
    if (request.method === "POST") {
      const next = posts.shift();
      assert.ok(next, `a POST the script does not expect: ${request.url}`);
      return Promise.resolve(next());
    }
    return Promise.resolve(commits(new URL(request.url)));
  };
  const client = new FerryClient(BASE_URL, {
    fetch: fetchFn,
    now: () => nowMs,
    sleep: (ms) => {
      slept.push(ms);
      nowMs += ms;
      return Promise.resolve();
    },
  });
  return {
    client,
    slept,
    posts: () => seen.filter((request) => request.method === "POST"),
    asks: () => seen.filter((request) => request.method === "GET").map((request) => request.url),
  };
}

function jsonAnswer(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A 200 write answer for LSNs `first..last` of `term`. */
function written(first: number, last: number, term = 4) {
  return () =>
    jsonAnswer(200, {
      first_lsn: first,
      last_lsn: last,
      term,
      timeline: term,
      commit: {
        policy: "quorum",
        outcome: "reached",
        durable_replicas: ["b", "c"],
        regions: [],
        waited_ms: 3,
        required: 2,
        observed: 2,
      },
    });
}

/** The 503 of a leader that stepped down with LSNs `first..last` of `term` durable. */
function commitUnknown(term: number, first: number, last: number) {
  return () =>
    jsonAnswer(503, {
      error: "commit_unknown",
      message: "stepped down",
      term,
      first_lsn: first,
      last_lsn: last,
    });
}

function noLeader(retryAfterS: number) {
  return () =>
    jsonAnswer(503, { error: "no_leader", message: "election" }, {
      "retry-after": String(retryAfterS),
    });
}

function outcomeAnswer(
  term: number,
  lsn: number,
  outcome: Outcome,
  leaderUrl: string | null = null,
): Response {
  const leader = leaderUrl === null ? null : { node_id: "b", url: leaderUrl, term: term + 1 };
  return jsonAnswer(200, { term, lsn, outcome, leader });
}

/** `GET /v1/commits/:term/:lsn` answered by `decide(node, lsn, count)`, counting asks per node. */
function commitsBy(decide: (node: string, lsn: number, count: number) => Outcome | Response) {
  const counts = new Map<string, number>();
  return (url: URL): Response => {
    const [term, lsn] = url.pathname.split("/").slice(-2).map(Number) as [number, number];
    const count = (counts.get(url.origin) ?? 0) + 1;
    counts.set(url.origin, count);
    const decided = decide(url.origin, lsn, count);
    if (decided instanceof Response) return decided;
    return outcomeAnswer(term, lsn, decided);
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

Deno.test("write() settles commit_unknown: unknown, unknown, committed answers with the 503's LSNs and no second POST", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 12)],
    commitsBy((_node, _lsn, count) => count < 3 ? "unknown" : "committed"),
  );
  const result = await cluster.client.write(RECORDS, { commitPolicy: "quorum" });
  assert.equal(cluster.posts().length, 1);
  assert.deepEqual(cluster.asks(), Array(3).fill(`${BASE_URL}/v1/commits/3/12`));
  assert.deepEqual(cluster.slept, [COMMIT_RESOLVE_DELAY_MS_MIN, 2 * COMMIT_RESOLVE_DELAY_MS_MIN]);
  assert.deepEqual([result.firstLsn, result.lastLsn, result.term], [10, 12, 3]);
  assert.equal(result.resolvedAfterStepDown, true);
  assert.equal(result.timeline, 0, "the 503 names no timeline");
  assert.equal(result.commit.policy, "quorum");
  assert.equal(result.commit.outcome, "reached", "committed is a quorum in a cluster");
  assert.deepEqual([result.commit.durableReplicas, result.commit.regions], [[], []]);
});

Deno.test("write(): a committed write under another policy is reported as not confirmed (timed_out)", async () => {
  const cluster = fakeCluster([commitUnknown(3, 7, 7)], commitsBy(() => "committed"));
  const result = await cluster.client.write(RECORDS.slice(0, 1), { commitPolicy: "regions=eu" });
  assert.equal(result.commit.outcome, "timed_out");
  assert.equal(result.resolvedAfterStepDown, true);
  const floor = fakeCluster([commitUnknown(3, 7, 7)], commitsBy(() => "committed"));
  assert.equal((await floor.client.write(RECORDS.slice(0, 1))).commit.policy, "");
});

Deno.test("write(): commit_unknown then lost re-sends exactly once, the same body, and returns that answer", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 12), written(13, 15)],
    commitsBy(() => "lost"),
  );
  const result = await cluster.client.write(RECORDS, { commitPolicy: "quorum", timeoutMs: 500 });
  const posts = cluster.posts();
  assert.equal(posts.length, 2);
  assert.equal(posts[1]!.body, posts[0]!.body, "the same records and options");
  assert.deepEqual(JSON.parse(posts[0]!.body!), {
    records: RECORDS,
    commit_policy: "quorum",
    timeout_ms: 500,
  });
  // The last LSN lost, then the first: nothing of the write survived, so re-sending is safe.
  assert.deepEqual(cluster.asks(), [
    `${BASE_URL}/v1/commits/3/12`,
    `${BASE_URL}/v1/commits/3/10`,
  ]);
  assert.deepEqual([result.firstLsn, result.lastLsn, result.term], [13, 15, 4]);
  assert.equal(result.resolvedAfterStepDown, undefined);
  assert.equal(result.commit.outcome, "reached");
});

Deno.test("write(): a re-sent write lost again is CommitLostError, with no third POST", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 10), commitUnknown(4, 11, 11)],
    commitsBy(() => "lost"),
  );
  const error = await rejection(cluster.client.write(RECORDS.slice(0, 1)));
  assert.ok(error instanceof CommitLostError, String(error));
  assert.equal(error.code, "commit_lost");
  assert.deepEqual(error.details, { term: 4, first_lsn: 11, last_lsn: 11, partly: false });
  assert.equal(cluster.posts().length, 2);
});

Deno.test("write(): last LSN lost but first committed (only a prefix survived) is CommitLostError, not re-sent", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 12)],
    commitsBy((_node, lsn) => lsn === 12 ? "lost" : "committed"),
  );
  const error = await rejection(cluster.client.write(RECORDS));
  assert.ok(error instanceof CommitLostError, String(error));
  assert.equal(error.details.partly, true);
  assert.equal(cluster.posts().length, 1);
});

Deno.test("write(): unknown until the budget runs out is CommitUnknownError with the term and LSNs", async () => {
  const cluster = fakeCluster([commitUnknown(3, 10, 12)], commitsBy(() => "unknown"));
  const error = await rejection(cluster.client.write(RECORDS));
  assert.ok(error instanceof CommitUnknownError, String(error));
  assert.equal(error.code, "commit_unknown");
  assert.deepEqual(error.details, { term: 3, first_lsn: 10, last_lsn: 12 });
  assert.equal(cluster.posts().length, 1, "a write whose fate is unknown is never re-sent");
  assert.ok(cluster.asks().length > 3);
  const sleptMs = cluster.slept.reduce((sum, ms) => sum + ms, 0);
  assert.equal(sleptMs, COMMIT_RESOLVE_BUDGET_MS, "the backoff spends exactly the budget");
  assert.ok(cluster.slept.every((ms) => ms <= COMMIT_RESOLVE_DELAY_MS_MAX));
  assert.equal(cluster.slept[0], COMMIT_RESOLVE_DELAY_MS_MIN);
});

Deno.test("write(): unknown naming a leader at another URL asks the leader too", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 12)],
    commitsBy((node, lsn) =>
      node === BASE_URL ? outcomeAnswer(3, lsn, "unknown", `${LEADER_URL}/`) : "committed"
    ),
  );
  const result = await cluster.client.write(RECORDS);
  assert.deepEqual(cluster.asks(), [
    `${BASE_URL}/v1/commits/3/12`,
    `${LEADER_URL}/v1/commits/3/12`,
  ]);
  assert.deepEqual(cluster.slept, [], "settled within the first round");
  assert.equal(result.resolvedAfterStepDown, true);
});

Deno.test("write(): a leader named at the client's own URL is not asked twice; an unreachable node counts as unknown", async () => {
  let round = 0;
  const cluster = fakeCluster([commitUnknown(3, 10, 10)], (url) => {
    if (url.origin === LEADER_URL) throw new TypeError("connection refused");
    round += 1;
    if (round === 1) return outcomeAnswer(3, 10, "unknown", BASE_URL);
    if (round === 2) return outcomeAnswer(3, 10, "unknown", LEADER_URL);
    if (round === 3) return jsonAnswer(502, { error: "bad_gateway", message: "proxy" });
    return outcomeAnswer(3, 10, "committed");
  });
  const result = await cluster.client.write(RECORDS.slice(0, 1));
  assert.deepEqual(cluster.asks(), [
    `${BASE_URL}/v1/commits/3/10`,
    `${BASE_URL}/v1/commits/3/10`,
    `${LEADER_URL}/v1/commits/3/10`,
    `${BASE_URL}/v1/commits/3/10`,
    `${LEADER_URL}/v1/commits/3/10`,
    `${BASE_URL}/v1/commits/3/10`,
  ]);
  assert.equal(result.lastLsn, 10);
});

Deno.test("write(): a 4xx from GET /v1/commits is thrown as it came", async () => {
  const cluster = fakeCluster(
    [commitUnknown(3, 10, 10)],
    () => jsonAnswer(403, { error: "forbidden", message: "writer role required" }),
  );
  const error = await rejection(cluster.client.write(RECORDS.slice(0, 1)));
  assert.ok(error instanceof FerryHttpError && error.status === 403, String(error));
});

Deno.test("write(): no_leader twice then 200 sends three POSTs, after each Retry-After, and returns the answer", async () => {
  const cluster = fakeCluster([noLeader(1), noLeader(2), written(5, 7)]);
  const result = await cluster.client.write(RECORDS);
  assert.equal(cluster.posts().length, 3);
  assert.deepEqual(cluster.slept, [1000, 2000]);
  assert.deepEqual([result.firstLsn, result.lastLsn], [5, 7]);
  assert.equal(result.resolvedAfterStepDown, undefined);
});

Deno.test("write(): no_leader is re-sent a bounded number of times, its Retry-After capped", async () => {
  const answers = Array.from({ length: WRITE_NO_LEADER_RETRIES_MAX + 1 }, () => noLeader(600));
  const cluster = fakeCluster(answers);
  const error = await rejection(cluster.client.write(RECORDS));
  assert.ok(error instanceof FerryHttpError && error.code === "no_leader", String(error));
  assert.equal(cluster.posts().length, WRITE_NO_LEADER_RETRIES_MAX + 1);
  assert.ok(cluster.slept.every((ms) => ms === WRITE_RETRY_AFTER_MS_MAX));
});

Deno.test("write({ resolveCommitUnknown: false }) throws the 503 commit_unknown as a FerryHttpError", async () => {
  const cluster = fakeCluster([commitUnknown(3, 10, 12)]);
  const error = await rejection(cluster.client.write(RECORDS, { resolveCommitUnknown: false }));
  assert.ok(error instanceof FerryHttpError, String(error));
  assert.deepEqual([error.status, error.code], [503, "commit_unknown"]);
  assert.deepEqual([error.body.term, error.body.first_lsn, error.body.last_lsn], [3, 10, 12]);
  assert.deepEqual(cluster.asks(), []);
});

Deno.test("write(): a 503 commit_unknown without its LSNs is a FerryResponseError", async () => {
  const cluster = fakeCluster([
    () => jsonAnswer(503, { error: "commit_unknown", message: "x", term: 3 }),
  ]);
  const error = await rejection(cluster.client.write(RECORDS));
  assert.ok(error instanceof FerryResponseError, String(error));
});

Deno.test("commitOutcome() maps the answer, asks another node with url, and refuses an answer about another write", async () => {
  const cluster = fakeCluster(
    [],
    (url) =>
      url.origin === LEADER_URL
        ? outcomeAnswer(3, 12, "committed")
        : outcomeAnswer(3, 12, "unknown", LEADER_URL),
  );
  assert.deepEqual(await cluster.client.commitOutcome(3, 12), {
    term: 3,
    lsn: 12,
    outcome: "unknown",
    leader: { nodeId: "b", url: LEADER_URL, term: 4 },
  });
  const there = await cluster.client.commitOutcome(3, 12, { url: LEADER_URL });
  assert.deepEqual([there.outcome, there.leader], ["committed", null]);
  assert.deepEqual(cluster.asks(), [
    `${BASE_URL}/v1/commits/3/12`,
    `${LEADER_URL}/v1/commits/3/12`,
  ]);
  await assert.rejects(cluster.client.commitOutcome(3, 13), FerryResponseError);
  const odd = fakeCluster([], () => jsonAnswer(200, { term: 3, lsn: 12, outcome: "maybe" }));
  await assert.rejects(odd.client.commitOutcome(3, 12), FerryResponseError);
});

// ---- against the real app: the server's 503 body and GET /v1/commits route ----

/** A fence that passes, then fails once: the leader steps down during the first write's wait. */
function fenceFailingOnce() {
  let calls = 0;
  return () => {
    calls += 1;
    if (calls === 2) throw new NotLeaderError();
  };
}

Deno.test("write() against the app: a step-down after the append is settled committed, appended once", async () => {
  let asks = 0;
  const commits = () => ({
    outcome: (++asks < 2 ? "unknown" : "committed") as Outcome,
    leader: null,
  });
  await withApp({ app: { fence: fenceFailingOnce(), commits } }, async ({ app, spool }) => {
    const client = new FerryClient("http://ferry.test", {
      fetch: (input, init) => Promise.resolve(app.request(input, init)),
      sleep: () => Promise.resolve(),
    });
    const result = await client.write(RECORDS.slice(0, 2));
    assert.deepEqual([result.firstLsn, result.lastLsn, result.term], [1, 2, 1]);
    assert.equal(result.resolvedAfterStepDown, true);
    assert.equal(asks, 2);
    assert.equal(spool.currentLsn(), 2, "nothing was appended twice");
  });
});

Deno.test("write() against the app: a step-down whose write is lost is re-sent once", async () => {
  const commits = () => ({ outcome: "lost" as Outcome, leader: null });
  await withApp({ app: { fence: fenceFailingOnce(), commits } }, async ({ app, spool }) => {
    const client = new FerryClient("http://ferry.test", {
      fetch: (input, init) => Promise.resolve(app.request(input, init)),
      sleep: () => Promise.resolve(),
    });
    const result = await client.write(RECORDS.slice(0, 2));
    assert.deepEqual([result.firstLsn, result.lastLsn], [3, 4]);
    assert.equal(result.resolvedAfterStepDown, undefined);
    assert.equal(spool.currentLsn(), 4);
  });
});
