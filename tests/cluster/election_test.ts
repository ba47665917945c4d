import assert from "node:assert/strict";
import fc from "fast-check";
import {
  comparePositions,
  decideElection,
  majorityOf,
  type VoteAnswer,
} from "../../src/cluster/election.ts";

const MEMBERS = ["a", "b", "c"];

function at(node_id: string, durable_lsn: number, last_term = 1): VoteAnswer {
  return { node_id, url: `http://${node_id}`, durable_lsn, last_term, timeline: 1 };
}

Deno.test("majorityOf() is the smallest majority of the fixed member list", () => {
  assert.deepEqual([1, 2, 3, 4, 5].map(majorityOf), [1, 2, 2, 3, 3]);
});

Deno.test("comparePositions() orders by last term first, then by durable LSN", () => {
  assert.equal(comparePositions(at("a", 5, 2), at("b", 900, 1)), 1);
  assert.equal(comparePositions(at("a", 5, 2), at("b", 6, 2)), -1);
  assert.equal(comparePositions(at("a", 6, 2), at("b", 6, 2)), 0);
});

Deno.test("decideElection() waits alone: one live member of three never promotes", () => {
  const decision = decideElection(at("b", 100), [], MEMBERS);
  assert.deepEqual(decision, { kind: "wait", reason: "no_majority", answered: 1, needed: 2 });
});

Deno.test("decideElection() ignores answers from outside the member list", () => {
  const decision = decideElection(at("b", 100), [at("x", 1), at("y", 1)], MEMBERS);
  assert.equal(decision.kind, "wait");
});

Deno.test("decideElection() defers to a member that holds more (the frozen acking standby)", () => {
  // a (dead) and c acked write 101; b has 100. Once c answers, b must not promote.
  const decision = decideElection(at("b", 100), [at("c", 101)], MEMBERS);
  assert.equal(decision.kind, "defer");
  assert.equal(decision.kind === "defer" && decision.ahead.node_id, "c");
  const fromC = decideElection(at("c", 101), [at("b", 100)], MEMBERS);
  assert.deepEqual(fromC, { kind: "promote", voters: ["b", "c"] });
});

Deno.test("decideElection() lets level members both try (etcd's transaction picks one)", () => {
  assert.equal(decideElection(at("b", 7), [at("c", 7)], MEMBERS).kind, "promote");
  assert.equal(decideElection(at("c", 7), [at("b", 7)], MEMBERS).kind, "promote");
});

/**
 * Leader completeness: whatever the members' logs, if a record at `committed` was durable on a
 * majority (a `quorum` acknowledgement), every member that the rule lets promote holds it, for any
 * set of live members that answer.
 */
Deno.test("decideElection() never promotes a member that lacks a majority-durable record", () => {
  const memberCount = fc.integer({ min: 1, max: 7 });
  fc.assert(
    fc.property(
      memberCount.chain((n) =>
        fc.record({
          logs: fc.array(fc.nat({ max: 50 }), { minLength: n, maxLength: n }),
          live: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        })
      ),
      ({ logs, live }) => {
        const members = logs.map((_, i) => `m${i}`);
        // Single-term history: the logs are prefixes of one log, so "holds LSN x" = durable >= x.
        const answers = logs.map((lsn, i) => at(members[i]!, lsn));
        const sorted = [...logs].sort((x, y) => y - x);
        const committed = sorted[majorityOf(members.length) - 1]!;
        for (let i = 0; i < members.length; i++) {
          if (!live[i]) continue;
          const others = answers.filter((_, j) => live[j] && j !== i);
          const decision = decideElection(answers[i]!, others, members);
          if (decision.kind === "promote") assert.ok(logs[i]! >= committed);
        }
      },
    ),
    { numRuns: 2_000 },
  );
});
