// The retry wait of replicas and relays: it doubles from the minimum to the maximum after each
// failure, a success starts it over, a cap brings it down at once, and a stop ends a wait at once.

import assert from "node:assert/strict";
import { Backoff } from "../../src/core/backoff.ts";
import { settledWithin } from "../helpers/stream_tap.ts";

Deno.test("Backoff doubles after each wait up to the maximum; reset() starts it over", async () => {
  const backoff = new Backoff(1, 5);
  assert.ok(backoff.atMinimum);
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    await backoff.wait();
    seen.push(backoff.nextMs);
  }
  assert.deepEqual(seen, [2, 4, 5, 5, 5]);
  assert.ok(!backoff.atMinimum);
  backoff.reset();
  assert.equal(backoff.nextMs, 1);
  assert.ok(backoff.atMinimum);
});

Deno.test("Backoff.capNext lowers a grown wait and never raises one", async () => {
  const backoff = new Backoff(1, 1000);
  for (let i = 0; i < 4; i++) await backoff.wait();
  assert.equal(backoff.nextMs, 16);
  backoff.capNext(5);
  assert.equal(backoff.nextMs, 5);
  backoff.capNext(500);
  assert.equal(backoff.nextMs, 5, "a cap above the wait leaves it");
});

Deno.test("Backoff.wait ends at once on its signal, however long the wait", async () => {
  const backoff = new Backoff(3_600_000, 3_600_000);
  const stop = new AbortController();
  const waiting = backoff.wait(stop.signal, 3_600_000);
  stop.abort();
  assert.equal((await settledWithin(waiting)).outcome, "settled");
});
