// GET /v1/events (SPEC.md 13.5): admin only; Server-Sent Events, one JSON object per `data:` line,
// numbered in order, carrying the operator's log events as they happen.

import assert from "node:assert/strict";
import { EventHub, publishingLogger } from "../../src/core/events.ts";
import { silentLogger } from "../../src/core/log.ts";
import { PRIMARY_EVENTS } from "../../src/app/events.ts";
import { testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";

/** Reads SSE events (id and parsed data) off `body` until `count` arrived. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  count: number,
): Promise<Array<{ id: number; data: Record<string, unknown> }>> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const events: Array<{ id: number; data: Record<string, unknown> }> = [];
  let pending = "";
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let end = pending.indexOf("\n\n");
    while (end >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const id = Number(/^id: (\d+)$/m.exec(block)![1]);
      events.push({ id, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) });
      end = pending.indexOf("\n\n");
    }
  }
  await reader.cancel();
  return events;
}

Deno.test("GET /v1/events streams registrations, health and slot changes in order", async () => {
  const hub = new EventHub();
  const logger = publishingLogger(silentLogger, hub, PRIMARY_EVENTS);
  await withApp({ logger, app: { events: hub } }, async ({ call, primary }) => {
    const response = await call("GET", "/v1/events");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const events = readEvents(response.body!, 3);
    primary.register("edge-1");
    await primary.dropSlot("edge-1");
    primary.unregister("edge-1");
    const seen = await events;
    assert.deepEqual(seen.map((e) => e.data.type), [
      "replica.registered",
      "slot.dropped",
      "replica.unregistered",
    ]);
    assert.ok(seen[0]!.id < seen[1]!.id && seen[1]!.id < seen[2]!.id);
    assert.equal(seen[0]!.data.replica_id, "edge-1");
  });
});

Deno.test("GET /v1/events needs admin", async () => {
  const hub = new EventHub();
  await withApp({ auth: testAuth(), app: { events: hub } }, async ({ call }) => {
    assert.equal((await call("GET", "/v1/events")).status, 401);
    assert.equal((await call("GET", "/v1/events", { token: TOKENS.writer })).status, 403);
    const ok = await call("GET", "/v1/events", { token: TOKENS.admin });
    assert.equal(ok.status, 200);
    await ok.body!.cancel();
  });
});
