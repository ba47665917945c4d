// Query numbers of SPEC.md 9.3: non-numeric or negative is a 400, larger than the cap is clamped.

import assert from "node:assert/strict";
import { queryUint, queryUintClamped } from "../../src/http/schemas.ts";
import { PULL_RECORDS_MAX, PULL_WAIT_MS_MAX } from "../../src/core/limits.ts";

Deno.test("queryUintClamped() clamps await_timeout_ms to 30 000 and max_count to 10 000", () => {
  assert.equal(queryUintClamped(PULL_WAIT_MS_MAX).parse("999999999"), 30_000);
  assert.equal(queryUintClamped(PULL_WAIT_MS_MAX).parse("250"), 250);
  assert.equal(queryUintClamped(PULL_RECORDS_MAX).parse("10001"), 10_000);
});

Deno.test("queryUint() refuses negative, fractional, exponent and over-long numbers", () => {
  for (
    const bad of ["-1", "1.5", "1e3", "", " 1", "0x10", "99999999999999999", "9007199254740993"]
  ) {
    assert.equal(queryUint.safeParse(bad).success, false, bad);
  }
  assert.equal(queryUint.parse("9007199254740991"), Number.MAX_SAFE_INTEGER);
});
