// SPEC.md 13.4, leader discovery: an edge given a cluster's node URLs follows one; after
// failures of that node it moves to the leader the nodes name, or to a node whose log reaches it.

import assert from "node:assert/strict";
import { FerryHttpError, FerryResponseError } from "../../src/core/errors.ts";
import { UPSTREAM_SWITCH_FAILURES } from "../../src/core/limits.ts";
import { isNodeFailure, type NodeView, Upstreams } from "../../src/replica/upstreams.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";

const N1 = "http://127.0.0.1:8781";
const N2 = "http://127.0.0.1:8782";
const N3 = "http://127.0.0.1:8783";
const REFUSED = new TypeError("error sending request: connection refused");
const signal = new AbortController().signal;

/** Upstreams over N1..N3 whose nodes answer `views` (a missing node throws, as a dead one). */
function upstreams(views: Record<string, NodeView>) {
  const logger = createMemoryLogger();
  const asked: string[] = [];
  const chosen = new Upstreams([N1, `${N2}/`, N3], {
    viewOf: (url) => {
      asked.push(url);
      const view = views[url];
      return view ? Promise.resolve(view) : Promise.reject(REFUSED);
    },
    logger,
  });
  return { chosen, logger, asked };
}

/** Fails the current node `times` times at `position`; the last answer. */
async function failTimes(chosen: Upstreams, times: number, position = 0) {
  let moved: string | undefined;
  for (let i = 0; i < times; i++) moved = await chosen.failed(REFUSED, { position, signal });
  return moved;
}

Deno.test("Upstreams moves to the leader the nodes name, after the failures in a row", async () => {
  const leader = { nodeId: "n3", url: N3, term: 4 };
  const { chosen, logger } = upstreams({
    [N2]: { leader: { nodeId: "n1", url: N1, term: 3 }, currentLsn: 90 },
    [N3]: { leader, currentLsn: 100 },
  });
  assert.equal(chosen.current, N1);
  assert.equal(await failTimes(chosen, UPSTREAM_SWITCH_FAILURES - 1), undefined);
  assert.equal(chosen.current, N1, "not before the failures in a row");
  assert.equal(await failTimes(chosen, 1), N3, "the leader of the highest term named");
  assert.equal(chosen.current, N3);
  assert.equal(chosen.switches, 1);
  const line = logger.lines.find((l) => l.event === "replica.upstream_switched");
  assert.equal(line?.from, N1);
  assert.equal(line?.to, N3);
});

Deno.test("Upstreams forgives failures once a step works", async () => {
  const { chosen } = upstreams({ [N2]: { leader: undefined, currentLsn: 10 } });
  await failTimes(chosen, UPSTREAM_SWITCH_FAILURES - 1);
  chosen.succeeded();
  assert.equal(await failTimes(chosen, UPSTREAM_SWITCH_FAILURES - 1), undefined);
  assert.equal(chosen.current, N1);
});

Deno.test("Upstreams stays during an election, and while the failing node is the one named", async () => {
  const { chosen, asked } = upstreams({
    [N2]: { leader: null, currentLsn: 90 },
    [N3]: { leader: null, currentLsn: 90 },
  });
  assert.equal(chosen.looking, false);
  assert.equal(await failTimes(chosen, UPSTREAM_SWITCH_FAILURES), undefined, "no leader: stay");
  assert.equal(chosen.looking, true, "looking: retried soon");
  assert.equal(await failTimes(chosen, 1), undefined);
  assert.equal(asked.length, 2 * 3, "every further failure asks again");
  // N1 (the failing node) is named: about to lead, or not yet known dead. Stay.
  const named = upstreams({
    [N2]: { leader: { nodeId: "n1", url: `${N1}/`, term: 2 }, currentLsn: 0 },
  });
  assert.equal(await failTimes(named.chosen, UPSTREAM_SWITCH_FAILURES), undefined);
  assert.equal(named.chosen.current, N1);
});

Deno.test("Upstreams outside a cluster moves to a listed node whose log reaches it", async () => {
  // Relays of one primary name no leader: N2 is behind the replica (it would send it to a
  // snapshot), N3 holds its position.
  const { chosen } = upstreams({
    [N2]: { leader: undefined, currentLsn: 40 },
    [N3]: { leader: undefined, currentLsn: 50 },
  });
  assert.equal(await failTimes(chosen, UPSTREAM_SWITCH_FAILURES, 50), N3);
  // From N3, none of the others reaches 60: it stays and asks again at the next failures.
  assert.equal(await failTimes(chosen, UPSTREAM_SWITCH_FAILURES, 60), undefined);
  assert.equal(chosen.current, N3);
});

Deno.test("Upstreams with one URL never moves, and answers about the position never count", async () => {
  const one = new Upstreams([N1], {
    viewOf: () => Promise.reject(new Error("never asked")),
    logger: createMemoryLogger(),
  });
  assert.equal(await failTimes(one, 2 * UPSTREAM_SWITCH_FAILURES), undefined);
  assert.equal(one.looking, false, "nowhere to look");
  const { chosen, asked } = upstreams({ [N2]: { leader: null, currentLsn: 0 } });
  const diverged = new FerryHttpError(409, { error: "timeline_diverged" });
  for (let i = 0; i < 2 * UPSTREAM_SWITCH_FAILURES; i++) {
    assert.equal(await chosen.failed(diverged, { position: 0, signal }), undefined);
  }
  assert.deepEqual(asked, [], "a 409 is the same answer from every node");
});

Deno.test("isNodeFailure() is a dead, cut or busy node, never an answer about the replica", () => {
  assert.equal(isNodeFailure(REFUSED), true);
  assert.equal(isNodeFailure(new DOMException("timed out", "TimeoutError")), true);
  assert.equal(isNodeFailure(new Deno.errors.ConnectionReset("reset")), true);
  assert.equal(isNodeFailure(new FerryHttpError(503, { error: "no_leader" })), true);
  assert.equal(isNodeFailure(new FerryHttpError(409, { error: "rebootstrap_required" })), false);
  assert.equal(isNodeFailure(new FerryHttpError(401, { error: "unauthorized" })), false);
  assert.equal(isNodeFailure(new FerryResponseError("bad answer")), false);
});
