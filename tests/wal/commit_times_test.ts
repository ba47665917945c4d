// Append times in memory, for lag: exact for what was sampled, the earliest known time for older
// records, bounded however long the spool runs.

import assert from "node:assert/strict";
import { COMMIT_TIME_SAMPLES_MAX } from "../../src/core/limits.ts";
import { CommitTimes } from "../../src/wal/commit_times.ts";

Deno.test("CommitTimes.timeOf() gives each record its group commit's time", () => {
  const times = new CommitTimes(500);
  times.note(10, 1000);
  times.note(13, 2000);
  times.note(20, 2000); // the same millisecond adds nothing
  assert.equal(times.timeOf(10), 1000);
  assert.equal(times.timeOf(12), 1000);
  assert.equal(times.timeOf(13), 2000);
  assert.equal(times.timeOf(99), 2000);
  assert.equal(times.timeOf(9), 500, "older than every sample: the floor");
  assert.equal(times.size, 2);
});

Deno.test("CommitTimes stays bounded and never dates a record later than it was appended", () => {
  const times = new CommitTimes(0);
  const count = 3 * COMMIT_TIME_SAMPLES_MAX;
  for (let i = 1; i <= count; i++) times.note(i * 2, i * 10);
  assert.ok(times.size <= COMMIT_TIME_SAMPLES_MAX);
  for (const lsn of [2, 1001, count, 2 * count]) {
    const appendedAt = Math.floor(lsn / 2) * 10;
    assert.ok(times.timeOf(lsn) <= appendedAt, `LSN ${lsn} is not dated after its append`);
  }
  assert.equal(times.timeOf(2 * count), count * 10, "the newest sample is exact");
});
