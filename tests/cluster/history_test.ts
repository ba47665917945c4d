import assert from "node:assert/strict";
import type { TimelineEntry } from "../../src/cluster/coordinator.ts";
import { checkPosition, commitOutcome, lastLsnOfTerm } from "../../src/cluster/history.ts";

/** Term 1 from the start; term 2 forked at 100 and wrote 101..; term 3 forked at 120. */
const HISTORY: TimelineEntry[] = [
  { timeline: 1, parent: 0, fork_lsn: 0, term: 1 },
  { timeline: 2, parent: 1, fork_lsn: 100, term: 2 },
  { timeline: 3, parent: 2, fork_lsn: 120, term: 3 },
];

Deno.test("lastLsnOfTerm() is the smallest later fork, and open for the current term", () => {
  assert.equal(lastLsnOfTerm(1, HISTORY), 100);
  assert.equal(lastLsnOfTerm(2, HISTORY), 120);
  assert.equal(lastLsnOfTerm(3, HISTORY), Infinity);
  // A later fork below an earlier one cuts the earlier term too.
  const cut = [...HISTORY, { timeline: 4, parent: 3, fork_lsn: 90, term: 4 }];
  assert.equal(lastLsnOfTerm(1, cut), 90);
});

Deno.test("checkPosition() keeps positions on the history and names the fork of the rest", () => {
  assert.deepEqual(checkPosition({ lsn: 100, term: 1 }, HISTORY), { onHistory: true });
  assert.deepEqual(checkPosition({ lsn: 500, term: 3 }, HISTORY), { onHistory: true });
  // LSN 101 written in term 1 (an old primary's unreplicated tail) is not LSN 101 of term 2.
  assert.deepEqual(checkPosition({ lsn: 101, term: 1 }, HISTORY), {
    onHistory: false,
    forkLsn: 100,
    timeline: 3,
  });
  assert.deepEqual(checkPosition({ lsn: 125, term: 2 }, HISTORY), {
    onHistory: false,
    forkLsn: 120,
    timeline: 3,
  });
  assert.deepEqual(checkPosition({ lsn: 0, term: 0 }, HISTORY), { onHistory: true });
});

Deno.test("commitOutcome() is final for lost and committed, and unknown otherwise", () => {
  const known = { history: HISTORY, leaderTerm: 3, commitLsn: 130 };
  assert.equal(commitOutcome({ term: 2, lsn: 110 }, known), "committed");
  assert.equal(commitOutcome({ term: 2, lsn: 121 }, known), "lost");
  assert.equal(commitOutcome({ term: 3, lsn: 130 }, known), "committed");
  assert.equal(commitOutcome({ term: 3, lsn: 131 }, known), "unknown", "not majority-durable yet");
  assert.equal(commitOutcome({ term: 4, lsn: 1 }, known), "unknown", "a term not yet known here");
  const history = [...HISTORY, { timeline: 4, parent: 3, fork_lsn: 200, term: 5 }];
  assert.equal(
    commitOutcome({ term: 4, lsn: 150 }, { history, leaderTerm: 5, commitLsn: 210 }),
    "lost",
    "term 4 never led: nothing it may have claimed survived",
  );
});
