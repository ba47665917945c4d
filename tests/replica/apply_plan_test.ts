// The replica's apply state machine: anchor, next, idempotent, divergence, skipped, gap, term fence.

import assert from "node:assert/strict";
import { frameHash, planApply } from "../../src/replica/apply_plan.ts";
import { type DecodedFrame, decodeWholeFrame, encodeFrameV3 } from "../../src/wal/frame.ts";

const utf8 = new TextEncoder();

function frame(lsn: number, value: unknown = lsn, term = 1): DecodedFrame {
  const payload = utf8.encode(
    JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value, ts: 1 }),
  );
  return decodeWholeFrame(encodeFrameV3({ term, ownershipEpoch: 0, lsn, timestampMs: 1, payload }));
}

const fresh = { lastLsn: 0, lastTerm: 0, lastHash: null };

Deno.test("planApply() from an empty replica applies from LSN 1 in order", () => {
  const plan = planApply(fresh, [frame(1), frame(2), frame(3)]);
  assert.deepEqual(plan.applies.map((a) => a.lsn), [1, 2, 3]);
  assert.equal(plan.stop, undefined);
  assert.equal(plan.position.lastLsn, 3);
  assert.equal(plan.position.lastTerm, 1);
  assert.equal(plan.position.lastHash, frameHash(frame(3)));
  assert.equal(plan.applies[0]!.record.key, "k1");
});

Deno.test("planApply() never adopts a later first LSN: an empty replica seeing LSN 5 is a gap", () => {
  const plan = planApply(fresh, [frame(5), frame(6)]);
  assert.deepEqual(plan.applies, []);
  assert.deepEqual(plan.stop, { kind: "gap", expectedLsn: 1, gotLsn: 5 });
});

Deno.test("planApply() anchored at a snapshot's start applies the next LSN", () => {
  const plan = planApply({ lastLsn: 40, lastTerm: 1, lastHash: null }, [frame(40), frame(41)]);
  assert.equal(plan.idempotent, 1, "the anchor itself has no hash: idempotent");
  assert.deepEqual(plan.applies.map((a) => a.lsn), [41]);
});

Deno.test("planApply() calls the same LSN with the same payload idempotent, with another divergence", () => {
  const applied = planApply(fresh, [frame(1), frame(2)]).position;
  assert.equal(planApply(applied, [frame(2), frame(3)]).idempotent, 1);
  const diverged = planApply(applied, [frame(2, "something else"), frame(3)]);
  assert.equal(diverged.stop?.kind, "divergence");
  assert.deepEqual(diverged.applies, [], "nothing after the divergence is applied");
});

Deno.test("planApply() skips what is already applied and stops at a gap after applying the prefix", () => {
  const applied = planApply(fresh, [frame(1), frame(2), frame(3)]).position;
  const plan = planApply(applied, [frame(1), frame(2), frame(4), frame(5)]);
  assert.equal(plan.skipped, 2);
  assert.equal(plan.stop, undefined, "LSN 4 follows 3");
  assert.deepEqual(plan.applies.map((a) => a.lsn), [4, 5]);
  const withNext = planApply(applied, [frame(4), frame(6)]);
  assert.deepEqual(withNext.applies.map((a) => a.lsn), [4]);
  assert.deepEqual(withNext.stop, { kind: "gap", expectedLsn: 5, gotLsn: 6 });
});

Deno.test("planApply() fences an older term and adopts a newer one", () => {
  const atTerm2 = planApply(fresh, [frame(1, 1, 2)]).position;
  assert.equal(atTerm2.lastTerm, 2);
  const stale = planApply(atTerm2, [frame(2, 2, 1)]);
  assert.deepEqual(stale.stop, { kind: "stale_term", lsn: 2, term: 1, appliedTerm: 2 });
  assert.equal(planApply(atTerm2, [frame(2, 2, 3)]).position.lastTerm, 3);
});

Deno.test("planApply() stops at a payload that is not a change record", () => {
  const payload = utf8.encode('{"op":"upsert"}');
  const bad = decodeWholeFrame(
    encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn: 2, timestampMs: 1, payload }),
  );
  const plan = planApply(fresh, [frame(1), bad, frame(3)]);
  assert.deepEqual(plan.applies.map((a) => a.lsn), [1]);
  assert.equal(plan.stop?.kind, "bad_record");
});

Deno.test("frameHash() covers term, LSN and payload", () => {
  assert.notEqual(frameHash(frame(1)), frameHash(frame(1, 2)));
  assert.notEqual(frameHash(frame(1, 1, 1)), frameHash(frame(1, 1, 2)));
  assert.equal(frameHash(frame(7)), frameHash(frame(7)));
});
