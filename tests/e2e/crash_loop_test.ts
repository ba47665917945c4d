// A short crash loop for CI (the long one, 30 cycles, is `deno task bench crashloop`): the primary
// is killed with SIGKILL under concurrent writes, with two replicas attached; after each restart no
// acknowledged write is missing anywhere and the replicas converge.

import assert from "node:assert/strict";
import { runCrashLoop } from "../helpers/crash_loop.ts";
import { withTempDir } from "../helpers/temp.ts";

const CYCLES = 5;

Deno.test(`crash loop: ${CYCLES} cycles of kill -9 of the primary under writes, two replicas attached`, async () => {
  await withTempDir(async (dir) => {
    const report = await runCrashLoop(dir, CYCLES);
    assert.equal(report.restartMs.length, CYCLES);
    assert.ok(report.acknowledgedWrites > CYCLES * 100);
  });
});
