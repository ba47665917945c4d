// Tests read like SPEC.md section 6 (commit policies): which policies wait, what the watermark is,
// what wakes a wait, how dropping a replica changes a wait at once, what a timeout or an abort
// reports, and how strictly policy text is parsed and compared with the server's floor.
// Timeouts are short and only used to reach "timed_out"; nothing asserts on elapsed time.

import assert from "node:assert/strict";
import fc from "fast-check";
import { CommitWaiter } from "../../src/replication/commit_waiter.ts";
import {
  checkPolicyAgainstFloor,
  type CommitPolicy,
  formatCommitPolicy,
  isAtLeastAsStrong,
  parseCommitPolicy,
} from "../../src/replication/commit_policy.ts";
import {
  COMMIT_POLICY_REGIONS_MAX,
  COMMIT_TIMEOUT_MS_MAX,
  COMMIT_WAITS_MAX,
  REGION_BYTES_MAX,
} from "../../src/core/limits.ts";
import { BadRequestError, OverloadedError } from "../../src/core/errors.ts";

/** Long enough never to be reached in a passing test; a wait that should end early ends at once. */
const HELD_MS = 5_000;
/** Short timeout used to reach "timed_out". */
const SHORT_MS = 20;

const local: CommitPolicy = { kind: "local" };
const quorum: CommitPolicy = { kind: "quorum" };

function ackN(n: number): CommitPolicy {
  return { kind: "ack_n", n };
}

function regions(...names: string[]): CommitPolicy {
  return { kind: "regions", regions: names };
}

/** A waiter with the given replicas registered: id → [region, durable LSN acked]. */
function waiterWith(
  replicas: Record<string, [string | undefined, number]> = {},
  clock?: () => number,
): CommitWaiter {
  const waiter = new CommitWaiter({ clock });
  for (const [id, [region, durableLsn]] of Object.entries(replicas)) {
    waiter.upsertReplica(id, region);
    if (durableLsn > 0) waiter.recordAck(id, durableLsn);
  }
  return waiter;
}

// ---- waits ----

Deno.test("CommitWaiter.wait() needs no wait for local and ack_n=0", async () => {
  const waiter = waiterWith({ a: ["eu", 0] });
  for (const policy of [local, ackN(0)]) {
    const outcome = await waiter.wait(10, policy, { timeoutMs: HELD_MS });
    assert.equal(outcome.outcome, "not_required");
    assert.equal(outcome.waitedMs, 0);
    assert.equal(outcome.policy, formatCommitPolicy(policy));
    assert.deepEqual(outcome.durableReplicas, []);
  }
  assert.equal(waiter.pendingWaits(), 0);
  assert.deepEqual(waiter.counters(), { reached: 0, timed_out: 0, not_required: 2 });
});

Deno.test("CommitWaiter.wait() names the replicas that hold the write, whichever way they came to hold it", async () => {
  const waiter = new CommitWaiter();
  // Counted from where the registry says it stands (a restart), then acked; then a new one.
  waiter.upsertReplica("restored", "eu", 40);
  waiter.upsertReplica("acked", "us");
  waiter.recordAck("acked", 30);
  waiter.upsertReplica("new", "ap");
  const holders = async (lsn: number) => (await waiter.wait(lsn, local, { timeoutMs: 0 }));
  assert.deepEqual((await holders(30)).durableReplicas, ["acked", "restored"]);
  assert.deepEqual((await holders(30)).regions, ["eu", "us"]);
  assert.deepEqual((await holders(40)).durableReplicas, ["restored"]);
  assert.deepEqual((await holders(41)).durableReplicas, []);
  // A drop leaves no one holding a write only the dropped replica held.
  waiter.dropReplica("restored");
  assert.deepEqual((await holders(40)).durableReplicas, []);
  assert.deepEqual((await holders(30)).durableReplicas, ["acked"]);
});

Deno.test("CommitWaiter.wait() is reached at once when existing acks already satisfy the policy", async () => {
  const waiter = waiterWith({ a: ["eu", 10], b: ["us", 12], c: ["eu", 3] });
  const pending = waiter.wait(10, ackN(2), { timeoutMs: HELD_MS });
  // Nothing was held: no later ack is needed.
  assert.equal(waiter.pendingWaits(), 0);
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.deepEqual(outcome.durableReplicas, ["a", "b"]);
  assert.deepEqual(outcome.regions, ["eu", "us"]);
  assert.equal(outcome.required, 2);
  assert.equal(outcome.observed, 2);
  assert.equal(outcome.waitedMs, 0);
  assert.deepEqual(waiter.counters(), { reached: 1, timed_out: 0, not_required: 0 });
});

Deno.test("CommitWaiter.watermark() is the N-th highest durable LSN and an older ack never lowers it", () => {
  const waiter = waiterWith({ a: [undefined, 30], b: [undefined, 10], c: [undefined, 20] });
  assert.equal(waiter.watermark(0), 0);
  assert.equal(waiter.watermark(1), 30);
  assert.equal(waiter.watermark(2), 20);
  assert.equal(waiter.watermark(3), 10);
  assert.equal(waiter.watermark(4), 0, "fewer replicas than n");
  waiter.recordAck("a", 5);
  waiter.recordAck("c", 19);
  assert.equal(waiter.watermark(1), 30);
  assert.equal(waiter.watermark(2), 20);
  waiter.recordAck("b", 25);
  assert.equal(waiter.watermark(2), 25);
  assert.equal(waiter.watermark(3), 20);
});

Deno.test("CommitWaiter.wait() is woken by a late ack", async () => {
  const waiter = waiterWith({ a: ["eu", 0], b: ["us", 0] });
  const pending = waiter.wait(7, ackN(1), { timeoutMs: HELD_MS });
  assert.equal(waiter.pendingWaits(), 1);
  waiter.recordAck("a", 6);
  assert.equal(waiter.pendingWaits(), 1, "an ack short of the target does not end the wait");
  waiter.recordAck("a", 7);
  assert.equal(waiter.pendingWaits(), 0);
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.deepEqual(outcome.durableReplicas, ["a"]);
  assert.deepEqual(outcome.regions, ["eu"]);
});

Deno.test("CommitWaiter.wait() counts duplicate acks from one replica once", async () => {
  const waiter = waiterWith({ a: [undefined, 0], b: [undefined, 0] });
  const pending = waiter.wait(10, ackN(2), { timeoutMs: SHORT_MS });
  waiter.recordAck("a", 10);
  waiter.recordAck("a", 10);
  waiter.recordAck("a", 11);
  const outcome = await pending;
  assert.equal(outcome.outcome, "timed_out");
  assert.equal(outcome.required, 2);
  assert.equal(outcome.observed, 1);
  assert.deepEqual(outcome.durableReplicas, ["a"]);
});

Deno.test("CommitWaiter.wait() unknown ids: an ack from an unregistered replica does not count", async () => {
  const waiter = waiterWith();
  waiter.recordAck("ghost", 10);
  assert.equal(waiter.registeredCount(), 0);
  assert.equal(waiter.watermark(1), 0);
  const outcome = await waiter.wait(10, ackN(1), { timeoutMs: SHORT_MS });
  assert.equal(outcome.outcome, "timed_out");
  assert.deepEqual(outcome.durableReplicas, []);
  // Registering later does not resurrect the ack sent before it: a new replica starts at 0.
  waiter.upsertReplica("ghost", "eu");
  assert.equal(waiter.watermark(1), 0);
});

// ---- dropping replicas ----

Deno.test("CommitWaiter.wait() re-evaluates at once on a drop: the dropped replica's ack stops counting", async () => {
  const waiter = waiterWith({ a: [undefined, 5], b: [undefined, 5] });
  const pending = waiter.wait(10, ackN(2), { timeoutMs: HELD_MS });
  waiter.recordAck("a", 10);
  waiter.dropReplica("b");
  assert.equal(waiter.registeredCount(), 1);
  waiter.upsertReplica("c", undefined);
  assert.equal(waiter.pendingWaits(), 1, "c has not acked yet");
  waiter.recordAck("c", 10);
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.deepEqual(outcome.durableReplicas, ["a", "c"]);
});

Deno.test("CommitWaiter.wait() does not count an ack of a dropped replica, even if it re-registers", async () => {
  const waiter = waiterWith({ a: [undefined, 0], b: [undefined, 10] });
  const pending = waiter.wait(10, ackN(2), { timeoutMs: SHORT_MS });
  waiter.dropReplica("b");
  // If b's ack of 10 were still counted, this ack would complete ack_n=2.
  waiter.recordAck("a", 10);
  // Re-registered, b is a new replica at durable LSN 0.
  waiter.upsertReplica("b", undefined);
  assert.equal(waiter.watermark(2), 0);
  const outcome = await pending;
  assert.equal(outcome.outcome, "timed_out");
  assert.equal(outcome.observed, 1);
  assert.deepEqual(outcome.durableReplicas, ["a"]);
});

Deno.test("CommitWaiter.wait() quorum is reached the moment a non-acking replica is dropped", async () => {
  const waiter = waiterWith({ a: [undefined, 10], b: [undefined, 0] });
  // The majority of 2 is 2, so a alone is not enough.
  const pending = waiter.wait(10, quorum, { timeoutMs: HELD_MS });
  assert.equal(waiter.pendingWaits(), 1);
  waiter.dropReplica("b");
  assert.equal(waiter.pendingWaits(), 0, "no new ack was needed");
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.equal(outcome.required, 1);
  assert.equal(outcome.observed, 1);
  assert.deepEqual(outcome.durableReplicas, ["a"]);
});

Deno.test("CommitWaiter.wait() quorum needs a majority of the registered replicas", async () => {
  const waiter = waiterWith({ a: [undefined, 10], b: [undefined, 0], c: [undefined, 0] });
  const pending = waiter.wait(10, quorum, { timeoutMs: HELD_MS });
  waiter.recordAck("b", 9);
  assert.equal(waiter.pendingWaits(), 1);
  waiter.recordAck("b", 10);
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.equal(outcome.required, 2);
  assert.deepEqual(outcome.durableReplicas, ["a", "b"]);
});

Deno.test("CommitWaiter.wait() quorum with zero replicas times out, never reached", async () => {
  const waiter = waiterWith();
  for (const target of [1, 0]) {
    const outcome = await waiter.wait(target, quorum, { timeoutMs: SHORT_MS });
    assert.equal(outcome.outcome, "timed_out");
    assert.equal(outcome.required, 1);
    assert.equal(outcome.observed, 0);
    assert.deepEqual(outcome.durableReplicas, []);
  }
  assert.deepEqual(waiter.counters(), { reached: 0, timed_out: 2, not_required: 0 });
});

// ---- regions ----

Deno.test("CommitWaiter.wait() regions needs every named region", async () => {
  const waiter = waiterWith({ "eu-1": ["eu", 10], "us-1": ["us", 0], "ap-1": ["ap", 10] });
  const missing = await waiter.wait(10, regions("eu", "us"), { timeoutMs: SHORT_MS });
  assert.equal(missing.outcome, "timed_out");
  assert.equal(missing.required, 2);
  assert.equal(missing.observed, 1);
  assert.deepEqual(missing.durableReplicas, ["ap-1", "eu-1"]);
  assert.deepEqual(missing.regions, ["ap", "eu"]);

  const pending = waiter.wait(10, regions("eu", "us"), { timeoutMs: HELD_MS });
  waiter.recordAck("us-1", 10);
  const reached = await pending;
  assert.equal(reached.outcome, "reached");
  assert.equal(reached.observed, 2);
  assert.deepEqual(reached.regions, ["ap", "eu", "us"]);
});

Deno.test("CommitWaiter.wait() regions is reached with only eu and us replicas once both acked", async () => {
  const waiter = waiterWith({ "eu-1": ["eu", 10], "us-1": ["us", 0] });
  const missing = await waiter.wait(10, regions("eu", "us"), { timeoutMs: SHORT_MS });
  assert.equal(missing.outcome, "timed_out");
  assert.deepEqual(missing.regions, ["eu"]);
  waiter.recordAck("us-1", 10);
  const reached = await waiter.wait(10, regions("eu", "us"), { timeoutMs: HELD_MS });
  assert.equal(reached.outcome, "reached");
  assert.deepEqual(reached.regions, ["eu", "us"]);
});

Deno.test("CommitWaiter.upsertReplica() moving a replica into a region wakes a regions wait", async () => {
  const waiter = waiterWith({ "eu-1": ["eu", 10], roamer: [undefined, 10] });
  const pending = waiter.wait(10, regions("eu", "us"), { timeoutMs: HELD_MS });
  waiter.upsertReplica("roamer", "us");
  assert.equal(waiter.watermark(2), 10, "a region change keeps the durable LSN");
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.deepEqual(outcome.durableReplicas, ["eu-1", "roamer"]);
  assert.deepEqual(outcome.regions, ["eu", "us"]);
});

Deno.test("CommitWaiter.upsertReplica() registering a replica wakes a wait it satisfies", async () => {
  // A new replica starts at durable LSN 0, which is at or past a target of 0.
  const waiter = waiterWith({ a: [undefined, 0] });
  const pending = waiter.wait(0, ackN(2), { timeoutMs: HELD_MS });
  assert.equal(waiter.pendingWaits(), 1);
  waiter.upsertReplica("b", undefined);
  assert.equal(waiter.pendingWaits(), 0);
  assert.deepEqual((await pending).durableReplicas, ["a", "b"]);
});

// ---- timeouts, aborts, limits ----

Deno.test("CommitWaiter.wait() timeout returns timed_out with required, observed and the durable replicas", async () => {
  let nowMs = 1_000;
  const waiter = waiterWith({ a: ["eu", 10], b: ["us", 7], c: [undefined, 0] }, () => nowMs);
  const pending = waiter.wait(10, ackN(2), { timeoutMs: SHORT_MS });
  // The fake clock moves on after the wait started; waitedMs comes from it, not from real time.
  nowMs = 1_025;
  const outcome = await pending;
  assert.deepEqual(outcome, {
    policy: "ack_n=2",
    outcome: "timed_out",
    durableReplicas: ["a"],
    regions: ["eu"],
    waitedMs: 25,
    required: 2,
    observed: 1,
  });
  assert.equal(waiter.pendingWaits(), 0);
  assert.deepEqual(waiter.counters(), { reached: 0, timed_out: 1, not_required: 0 });
});

Deno.test("CommitWaiter.wait() ends at once as timed_out when its signal aborts, leaving nothing pending", async () => {
  const waiter = waiterWith({ a: [undefined, 0] });
  const controller = new AbortController();
  const pending = waiter.wait(10, ackN(1), { timeoutMs: HELD_MS, signal: controller.signal });
  assert.equal(waiter.pendingWaits(), 1);
  controller.abort();
  assert.equal(waiter.pendingWaits(), 0);
  const outcome = await pending;
  assert.equal(outcome.outcome, "timed_out");
  // An ack after the end changes nothing and finds no wait to wake.
  waiter.recordAck("a", 10);
  assert.deepEqual(waiter.counters(), { reached: 0, timed_out: 1, not_required: 0 });

  const already = await waiter.wait(11, ackN(1), { timeoutMs: HELD_MS, signal: controller.signal });
  assert.equal(already.outcome, "timed_out");
  assert.equal(waiter.pendingWaits(), 0);
});

Deno.test("CommitWaiter.wait() rejects with OverloadedError past COMMIT_WAITS_MAX held waits", async () => {
  const waiter = waiterWith({ a: [undefined, 0] });
  const held: Promise<unknown>[] = [];
  for (let i = 0; i < COMMIT_WAITS_MAX; i++) {
    held.push(waiter.wait(10, ackN(1), { timeoutMs: HELD_MS }));
  }
  assert.equal(waiter.pendingWaits(), COMMIT_WAITS_MAX);
  await assert.rejects(waiter.wait(10, ackN(1), { timeoutMs: HELD_MS }), OverloadedError);
  // A wait already met needs no slot, so it is still answered.
  assert.equal((await waiter.wait(0, ackN(1), { timeoutMs: HELD_MS })).outcome, "reached");
  waiter.recordAck("a", 10);
  await Promise.all(held);
  assert.equal(waiter.pendingWaits(), 0);
  assert.equal(waiter.counters().reached, COMMIT_WAITS_MAX + 1);
});

// ---- policy text ----

Deno.test("parseCommitPolicy() accepts each valid form and formatCommitPolicy() gives it back", () => {
  const longName = "r".repeat(REGION_BYTES_MAX);
  const manyNames = Array.from({ length: COMMIT_POLICY_REGIONS_MAX }, (_, i) => `r${i}`).join(",");
  const cases: Array<[string, CommitPolicy]> = [
    ["local", local],
    ["quorum", quorum],
    ["ack_n=0", ackN(0)],
    ["ack_n=1", ackN(1)],
    ["ack_n=1000", ackN(1000)],
    ["regions=eu", regions("eu")],
    ["regions=eu-west.1,us_east,AP9", regions("eu-west.1", "us_east", "AP9")],
    [`regions=${longName}`, regions(longName)],
    [`regions=${manyNames}`, regions(...manyNames.split(","))],
  ];
  for (const [text, policy] of cases) {
    assert.deepEqual(parseCommitPolicy(text), policy, text);
    assert.equal(formatCommitPolicy(policy), text);
  }
  // Duplicates are removed, first occurrences kept in order.
  assert.deepEqual(parseCommitPolicy("regions=us,eu,us,eu"), regions("us", "eu"));
});

Deno.test("parseCommitPolicy() refuses anything else with a BadRequestError naming the value", () => {
  const bad = [
    "",
    "local ",
    " local",
    "Local",
    "LOCAL",
    "Quorum",
    "ACK_N=1",
    "ack_n",
    "ack_n=",
    "ack_n=-1",
    "ack_n=+1",
    "ack_n= 1",
    "ack_n=01",
    "ack_n=1.5",
    "ack_n=1e2",
    "ack_n=abc",
    "ack_n=1001",
    "ack_n=99999",
    "quorum=2",
    "regions",
    "regions=",
    "regions=a,,b",
    "regions=a,",
    "regions=,a",
    "regions=a b",
    "regions=eu/west",
    `regions=${"r".repeat(REGION_BYTES_MAX + 1)}`,
    `regions=${Array.from({ length: COMMIT_POLICY_REGIONS_MAX + 1 }, () => "a").join(",")}`,
    "remote_wal",
    "foo",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseCommitPolicy(text),
      (error: unknown) => {
        assert(error instanceof BadRequestError, text);
        assert.equal(error.code, "bad_request");
        assert.equal(error.details.field, "commit_policy");
        assert.equal(error.details.value, text.length <= 100 ? text : `${text.slice(0, 100)}...`);
        assert.match(error.message, /"local", "quorum", "ack_n=N"/);
        if (text.length <= 100) assert(error.message.includes(JSON.stringify(text)), text);
        return true;
      },
    );
  }
});

Deno.test("isAtLeastAsStrong() lets a request only be stronger than the floor", () => {
  const accepted: Array<[CommitPolicy, CommitPolicy]> = [
    [local, local],
    [ackN(0), local],
    [ackN(3), local],
    [quorum, local],
    [regions("eu"), local],
    [local, ackN(0)],
    [quorum, ackN(0)],
    [ackN(2), ackN(2)],
    [ackN(5), ackN(2)],
    [quorum, quorum],
    [regions("eu"), regions("eu")],
    [regions("us", "eu"), regions("eu")],
    [regions("eu", "us", "ap"), regions("us", "eu")],
  ];
  const refused: Array<[CommitPolicy, CommitPolicy]> = [
    [local, ackN(1)],
    [ackN(0), ackN(1)],
    [ackN(1), ackN(2)],
    [quorum, ackN(2)],
    [regions("eu"), ackN(1)],
    [local, quorum],
    [ackN(1000), quorum],
    [regions("eu"), quorum],
    [local, regions("eu")],
    [quorum, regions("eu")],
    [ackN(5), regions("eu")],
    [regions("us"), regions("eu")],
    [regions("eu"), regions("eu", "us")],
  ];
  for (const [request, floor] of accepted) {
    const label = `${formatCommitPolicy(request)} over floor ${formatCommitPolicy(floor)}`;
    assert.equal(isAtLeastAsStrong(request, floor), true, label);
    checkPolicyAgainstFloor(request, floor);
  }
  for (const [request, floor] of refused) {
    const label = `${formatCommitPolicy(request)} over floor ${formatCommitPolicy(floor)}`;
    assert.equal(isAtLeastAsStrong(request, floor), false, label);
    assert.throws(
      () => checkPolicyAgainstFloor(request, floor),
      (error: unknown) => {
        assert(error instanceof BadRequestError, label);
        assert.deepEqual(error.details, {
          field: "commit_policy",
          value: formatCommitPolicy(request),
          floor: formatCommitPolicy(floor),
        });
        assert.match(error.message, /weaker than the server's floor/);
        return true;
      },
    );
  }
});

// ---- properties ----

Deno.test("CommitWaiter.watermark() equals the n-th largest durable LSN (property)", () => {
  // Each replica gets a list of acks in random order; only its highest one may count.
  const replicaAcks = fc.array(fc.array(fc.integer({ min: 0, max: 1_000_000 }), { maxLength: 5 }), {
    maxLength: 12,
  });
  fc.assert(
    fc.property(replicaAcks, (acksPerReplica) => {
      const waiter = new CommitWaiter();
      acksPerReplica.forEach((acks, i) => {
        waiter.upsertReplica(`r${i}`, undefined);
        for (const lsn of acks) waiter.recordAck(`r${i}`, lsn);
      });
      const expected = acksPerReplica.map((acks) => Math.max(0, ...acks)).sort((a, b) => b - a);
      for (let n = 0; n <= acksPerReplica.length + 1; n++) {
        const reference = n === 0 || n > expected.length ? 0 : expected[n - 1]!;
        assert.equal(waiter.watermark(n), reference);
      }
    }),
  );
});

Deno.test("in a cluster, quorum is a majority of the members (the primary one of them); edges do not count", async () => {
  // Five members: this primary and four others; a majority is three, so two others.
  const waiter = new CommitWaiter({ members: new Set(["m2", "m3", "m4", "m5"]) });
  for (const id of ["m2", "m3", "m4", "m5", "edge-1", "edge-2"]) waiter.upsertReplica(id, "eu");
  const pending = waiter.wait(10, { kind: "quorum" }, { timeoutMs: COMMIT_TIMEOUT_MS_MAX });
  waiter.recordAck("edge-1", 10);
  waiter.recordAck("edge-2", 10);
  waiter.recordAck("m2", 10);
  assert.equal(waiter.commitLsn(12), 0, "one other member durable: nothing committed");
  waiter.recordAck("m3", 9);
  assert.equal(waiter.commitLsn(12), 9);
  waiter.recordAck("m4", 11);
  const outcome = await pending;
  assert.equal(outcome.outcome, "reached");
  assert.deepEqual([outcome.required, outcome.observed], [2, 2]);
  assert.equal(waiter.commitLsn(12), 10, "the second highest member's durable LSN");
  assert.equal(waiter.commitLsn(8), 8, "never above what the primary holds");
  // ack_n still counts every replica, edges included.
  assert.equal(
    (await waiter.wait(10, { kind: "ack_n", n: 4 }, { timeoutMs: 0 })).outcome,
    "reached",
  );
});

Deno.test("outside a cluster there is no commit LSN, and a lone member commits alone", () => {
  assert.equal(new CommitWaiter().commitLsn(5), undefined);
  assert.equal(new CommitWaiter({ members: new Set() }).commitLsn(5), 5);
  // Three members: one other is a majority with the primary.
  const three = new CommitWaiter({ members: new Set(["b", "c"]) });
  three.upsertReplica("b", undefined, 4);
  three.upsertReplica("c", undefined, 2);
  assert.equal(three.commitLsn(7), 4);
});
