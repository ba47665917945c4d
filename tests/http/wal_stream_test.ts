// `GET /v1/wal?stream=1` through the app (SPEC.md 13.1): the answer's headers, the 400 of a JSON
// stream, a plain pull that never carries a control record, auth, and what metrics show.

import assert from "node:assert/strict";
import { decodeFrameRun } from "../../src/wal/frame.ts";
import { decodeStreamRun } from "../../src/wal/stream_codec.ts";
import { put, testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";
import { eventually, StreamTap } from "../helpers/stream_tap.ts";

const FRAMES = { accept: "application/x-ferry-frames" };

Deno.test("GET /v1/wal?stream=1 answers 200 with 9.3's headers, no-store and X-Accel-Buffering: no", async () => {
  await withApp({}, async ({ call }) => {
    await call("POST", "/v1/records", { json: { records: [put("a"), put("b")] } });
    const response = await call("GET", "/v1/wal?replica_id=r1&since_lsn=1&stream=1", {
      headers: FRAMES,
    });
    assert.equal(response.status, 200);
    const headers = Object.fromEntries(response.headers);
    assert.equal(headers["content-type"], "application/x-ferry-frames");
    assert.equal(headers["cache-control"], "no-store");
    assert.equal(headers["x-accel-buffering"], "no");
    assert.equal(headers["x-ferry-current-lsn"], "2");
    assert.equal(headers["x-ferry-oldest-lsn"], "1");
    assert.equal(headers["x-ferry-term"], "1");
    assert.equal(headers["x-ferry-timeline"], "1");
    assert.equal(headers["x-ferry-start-lsn"], "1");
    assert.equal(headers["content-length"], undefined, "no length: the answer stays open");
    const tap = new StreamTap(response.body!);
    assert.deepEqual(await tap.readUntil((read) => read.lsns.length >= 1), {
      lsns: [2],
      controls: 1,
    });
    await tap.cancel();
  });
});

Deno.test("a JSON stream=1 is 400, and so is a stream value other than 0 or 1", async () => {
  await withApp({}, async ({ call, primary }) => {
    for (const headers of [{}, { accept: "application/json" }] as Record<string, string>[]) {
      const response = await call("GET", "/v1/wal?stream=1", { headers });
      assert.equal(response.status, 400);
      const body = await response.json();
      assert.equal(body.error, "bad_request");
      assert.match(body.message, /raw frames only/);
    }
    const bad = await call("GET", "/v1/wal?stream=yes", { headers: FRAMES });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    const plain = await call("GET", "/v1/wal?stream=0", { headers: FRAMES });
    assert.equal(plain.status, 200, "stream=0 is a plain pull");
    await plain.body?.cancel();
    assert.equal(primary.streams.size, 0);
  });
});

Deno.test("a pull without stream=1 never carries a control record, held or not", async () => {
  await withApp({}, async ({ call }) => {
    await call("POST", "/v1/records", { json: { records: [put("a"), put("b")] } });
    const body = new Uint8Array(
      await (await call("GET", "/v1/wal", { headers: FRAMES })).arrayBuffer(),
    );
    assert.equal(decodeFrameRun(body).stop, undefined, "nothing but frames");
    assert.ok(decodeStreamRun(body).items.every((item) => item.kind === "frames"));
    const held = call("GET", "/v1/wal?since_lsn=2&await_timeout_ms=30000", { headers: FRAMES });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await call("POST", "/v1/records", { json: { records: [put("c")] } });
    const heldBody = new Uint8Array(await (await held).arrayBuffer());
    const run = decodeStreamRun(heldBody);
    assert.deepEqual(run.items.map((item) => item.kind), ["frames"]);
    assert.equal(run.offset, heldBody.byteLength);
  });
});

Deno.test("a replica token streams only as its own replica id", async () => {
  await withApp({ auth: testAuth() }, async ({ call }) => {
    const other = await call("GET", "/v1/wal?replica_id=b&stream=1", {
      token: TOKENS.replicaA,
      headers: FRAMES,
    });
    assert.equal(other.status, 403);
    await other.body?.cancel();
    const own = await call("GET", "/v1/wal?replica_id=a&stream=1", {
      token: TOKENS.replicaA,
      headers: FRAMES,
    });
    assert.equal(own.status, 200);
    await own.body?.cancel();
  });
});

Deno.test("metrics count open streams (not held pulls) and streams ended by reason", async () => {
  await withApp({}, async ({ call, metrics, primary }) => {
    const controller = new AbortController();
    const response = await call("GET", "/v1/wal?replica_id=r1&stream=1", {
      headers: FRAMES,
      signal: controller.signal,
    });
    const text = await metrics.render();
    assert.match(text, /^ferry_wal_streams 1$/m);
    assert.match(text, /^ferry_pull_waiters 0$/m, "a stream is not a held pull");
    controller.abort();
    await response.body?.cancel().catch(() => undefined);
    await eventually("the stream to end", () => primary.streams.size === 0);
    const after = await metrics.render();
    assert.match(after, /^ferry_wal_streams 0$/m);
    assert.match(after, /^ferry_wal_streams_ended_total\{reason="client_gone"\} 1$/m);
  });
});
