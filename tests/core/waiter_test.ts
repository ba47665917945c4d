// The one waiter: a condition, a deadline and an abort signal; woken by its owner, removed at once
// whichever way it ends; bounded; closed at shutdown.

import assert from "node:assert/strict";
import { OverloadedError } from "../../src/core/errors.ts";
import { sleep, Waiters } from "../../src/core/waiter.ts";

/** Long enough never to pass in a passing test. */
const HELD_MS = 10_000;

Deno.test("Waiters.wait() answers at once when reached, or when it may not hold", async () => {
  const waiters = new Waiters({ max: 1, what: "things" });
  assert.equal(await waiters.wait(undefined, () => true, { timeoutMs: HELD_MS }), true);
  assert.equal(await waiters.wait(undefined, () => false, { timeoutMs: 0 }), false);
  const aborted = AbortSignal.abort();
  assert.equal(
    await waiters.wait(undefined, () => false, { timeoutMs: HELD_MS, signal: aborted }),
    false,
  );
  assert.equal(waiters.size, 0);
});

Deno.test("Waiters.wake() resolves only the selected waiters whose condition holds", async () => {
  let value = 0;
  const waiters = new Waiters<number>({ max: 10, what: "things" });
  const atTwo = waiters.wait(2, () => value >= 2, { timeoutMs: HELD_MS });
  const atFive = waiters.wait(5, () => value >= 5, { timeoutMs: HELD_MS });
  value = 9;
  waiters.wake((target) => target <= 2);
  assert.equal(await atTwo, true);
  assert.equal(waiters.size, 1, "the unselected waiter is still held");
  waiters.wake();
  assert.equal(await atFive, true);
  assert.equal(waiters.size, 0);
});

Deno.test("Waiters end false at the deadline or on abort, and let go of the waiter", async () => {
  const waiters = new Waiters({ max: 10, what: "things" });
  assert.equal(await waiters.wait(undefined, () => false, { timeoutMs: 5 }), false);
  const controller = new AbortController();
  const held = waiters.wait(undefined, () => false, {
    timeoutMs: HELD_MS,
    signal: controller.signal,
  });
  assert.equal(waiters.size, 1);
  controller.abort();
  assert.equal(await held, false);
  assert.equal(waiters.size, 0);
});

Deno.test("Waiters refuse past their bound with an OverloadedError naming what is held", async () => {
  const waiters = new Waiters({ max: 1, what: "held pulls" });
  const held = waiters.wait(undefined, () => false, { timeoutMs: HELD_MS });
  await assert.rejects(
    waiters.wait(undefined, () => false, { timeoutMs: HELD_MS }),
    (error: unknown) => error instanceof OverloadedError && /held pulls/.test(error.message),
  );
  waiters.releaseAll();
  assert.equal(await held, false);
});

Deno.test("Waiters.close() answers every held wait and holds no new one", async () => {
  let reached = false;
  const waiters = new Waiters({ max: 10, what: "things" });
  const held = waiters.wait(undefined, () => reached, { timeoutMs: HELD_MS });
  const alsoHeld = waiters.wait(undefined, () => false, { timeoutMs: HELD_MS });
  reached = true;
  waiters.close();
  assert.deepEqual(await Promise.all([held, alsoHeld]), [true, false]);
  assert.equal(await waiters.wait(undefined, () => false, { timeoutMs: HELD_MS }), false);
  assert.equal(await waiters.wait(undefined, () => true, { timeoutMs: HELD_MS }), true);
  assert.equal(waiters.size, 0);
});

Deno.test("sleep() ends early when its signal aborts", async () => {
  const controller = new AbortController();
  const slept = sleep(HELD_MS, controller.signal);
  controller.abort();
  await slept;
  await sleep(HELD_MS, AbortSignal.abort());
});
