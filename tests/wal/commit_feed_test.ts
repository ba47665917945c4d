// What a durable group commit wakes (src/wal/commit_feed.ts): its writers are answered first (their
// promise reactions run before any listener or held pull hears of it), and listeners hear it on the
// next turn of the event loop (`setImmediate`; whether that beats a `setTimeout(0)` set meanwhile
// depends on how long the turn took, so no test orders the two: the fan-out bench measures it).

import assert from "node:assert/strict";
import { CommitFeed, type GroupCommit } from "../../src/wal/commit_feed.ts";

const COMMIT: GroupCommit = { firstLsn: 1, lastLsn: 1, bytes: new Uint8Array(8) };
const HOUR_MS = 3_600_000;

Deno.test("a published commit reaches its writers first, then listeners, then held pulls", async () => {
  const feed = new CommitFeed();
  const order: string[] = [];
  let reached = false;
  feed.subscribe(() => order.push("listener"));
  const held = feed.wait(() => reached, { timeoutMs: HOUR_MS }).then(() => order.push("pull"));
  reached = true;
  const writer = Promise.resolve().then(() => order.push("writer"));
  feed.published(COMMIT);
  assert.deepEqual(order, [], "nothing is woken in the appender's own turn");
  await Promise.all([writer, held]);
  assert.deepEqual(order, ["writer", "listener", "pull"]);
});

Deno.test("releaseAll() wakes now, and the wake it replaced does not run again", async () => {
  const feed = new CommitFeed();
  const heard: GroupCommit[] = [];
  feed.subscribe((commit) => heard.push(commit));
  feed.published(COMMIT);
  feed.releaseAll();
  assert.deepEqual(heard, [COMMIT]);
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(heard, [COMMIT], "heard once");
});
