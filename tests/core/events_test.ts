// SPEC.md 13.5: live events, one JSON object each, in order; a subscriber that falls behind is
// dropped, never waited for.

import assert from "node:assert/strict";
import { OverloadedError } from "../../src/core/errors.ts";
import { EventHub, publishingLogger } from "../../src/core/events.ts";
import {
  EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX,
  EVENTS_SUBSCRIBERS_MAX,
} from "../../src/core/limits.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";

Deno.test("EventHub delivers every event to every subscriber, in publish order", async () => {
  const hub = new EventHub();
  const a = hub.subscribe();
  const b = hub.subscribe();
  for (let i = 0; i < 5; i++) hub.publish("n", { i });
  for (const subscription of [a, b]) {
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push(JSON.parse((await subscription.next())!.json).i);
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  }
  const ids = [];
  hub.publish("n", { i: 5 });
  hub.publish("n", { i: 6 });
  ids.push((await a.next())!.id, (await a.next())!.id);
  assert.equal(ids[1]! - ids[0]!, 1, "ids rise by one");
});

Deno.test("EventHub drops a subscriber that falls behind, and publishing never waits", async () => {
  const hub = new EventHub();
  const stalled = hub.subscribe();
  const reading = hub.subscribe();
  const received: number[] = [];
  const reader = (async () => {
    for (let event = await reading.next(); event; event = await reading.next()) {
      received.push(JSON.parse(event.json).i);
      if (received.length === EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX + 10) break;
    }
  })();
  for (let i = 0; i < EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX + 10; i++) {
    hub.publish("n", { i }); // synchronous: a stalled reader cannot hold it up
    await Promise.resolve();
  }
  await reader;
  assert.equal(stalled.ended, "dropped");
  assert.equal(await stalled.next(), undefined, "its stream ends");
  assert.equal(hub.droppedTotal, 1);
  assert.equal(received.length, EVENTS_SUBSCRIBER_BUFFER_EVENTS_MAX + 10, "the reader got all");
  assert.equal(hub.subscribers, 1);
});

Deno.test("EventHub bounds its subscribers, and close() ends every stream", async () => {
  const hub = new EventHub();
  const subscriptions = Array.from({ length: EVENTS_SUBSCRIBERS_MAX }, () => hub.subscribe());
  assert.throws(() => hub.subscribe(), OverloadedError);
  const waiting = subscriptions[0]!.next();
  hub.close();
  assert.equal(await waiting, undefined);
  assert.equal(hub.subscribers, 0);
});

Deno.test("publishingLogger() logs every line and publishes the chosen events with their fields", async () => {
  const hub = new EventHub();
  const subscription = hub.subscribe();
  const base = createMemoryLogger();
  const logger = publishingLogger(base, hub, new Set(["slot.invalidated"]));
  logger.info("spool.pruned", { removed_segments: 1 });
  logger.warn("slot.invalidated", { replica_id: "r1", reason: "horizon" });
  assert.equal(base.lines.length, 2);
  const event = JSON.parse((await subscription.next())!.json);
  assert.equal(event.type, "slot.invalidated");
  assert.equal(event.replica_id, "r1");
  assert.equal(event.level, "warn");
});
