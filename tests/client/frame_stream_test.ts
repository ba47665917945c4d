// FerryClient.streamFrames() (src/client/frame_stream.ts): against the real app through
// `app.request()` for the stream as ferry serves it, and against a fake fetch for what the app
// never sends: bodies cut at every byte, damaged frames, plain pulls from a server that does not
// stream, and bodies cut inside an item.

import assert from "node:assert/strict";
import { FerryClient } from "../../src/client/client.ts";
import type { FrameStream, FrameStreamItem } from "../../src/client/types.ts";
import { FerryHttpError, FerryResponseError, StreamRefusedError } from "../../src/core/errors.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { encodeControlRecord } from "../../src/wal/stream_codec.ts";
import { type AppFixture, put, withApp } from "../helpers/app_fixture.ts";
import { eventually } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();

function appClient(app: AppFixture["app"]): FerryClient {
  return new FerryClient("http://ferry.test", {
    fetch: (input, init) => Promise.resolve(app.request(input, init)),
  });
}

function smallPayload(lsn: number): Uint8Array {
  return utf8.encode(`{"op":"put","collection":"c","key":"k${lsn}","value":${lsn}}`);
}

function frame(lsn: number): Uint8Array {
  const payload = smallPayload(lsn);
  return encodeFrameV3({
    term: 1,
    ownershipEpoch: 0,
    lsn,
    timestampMs: 1_700_000_000_000,
    payload,
  });
}

const CONTROL = encodeControlRecord({ currentLsn: 3, commitLsn: 3, term: 1, timeline: 1 });

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * A client whose one answer is a frames body handing out `chunks` one per read, then `end`. With
 * `bytes` the body is a byte stream, as a fetch body is (the client reads it into its own buffer);
 * `state.byobReads` counts the reads that came with the client's buffer.
 */
function scriptedClient(
  chunks: readonly Uint8Array[],
  end: "close" | "cut" = "close",
  options: { bytes?: boolean } = {},
) {
  const state = { cancelled: false, url: "", byobReads: 0 };
  let next = 0;
  const source = {
    pull(controller: ReadableStreamDefaultController | ReadableByteStreamController) {
      const chunk = chunks[next++];
      if ("byobRequest" in controller && controller.byobRequest !== null) state.byobReads += 1;
      // A byte stream takes over the chunk's buffer: hand it a copy.
      if (chunk !== undefined) return controller.enqueue(chunk.slice());
      if (end === "cut") return controller.error(new TypeError("connection reset (scripted)"));
      controller.close();
      // A byte source answers the read it holds at its end (as a fetch body's does).
      if ("byobRequest" in controller) controller.byobRequest?.respond(0);
    },
    cancel() {
      state.cancelled = true;
    },
  };
  const body = options.bytes
    ? new ReadableStream({ ...source, type: "bytes" })
    : new ReadableStream<Uint8Array>(source);
  const client = new FerryClient("http://primary.test", {
    fetch: (input) => {
      state.url = String(input);
      return Promise.resolve(
        new Response(body, {
          headers: {
            "content-type": "application/x-ferry-frames",
            "x-ferry-current-lsn": "3",
            "x-ferry-oldest-lsn": "1",
            "x-ferry-term": "1",
            "x-ferry-timeline": "1",
            "x-ferry-start-lsn": "0",
          },
        }),
      );
    },
  });
  return { client, state };
}

/** Every item of a stream, in order (and what ended it: undefined, or the error thrown). */
async function drain(stream: FrameStream): Promise<{ items: FrameStreamItem[]; error?: unknown }> {
  const items: FrameStreamItem[] = [];
  try {
    for await (const item of stream) items.push(item);
  } catch (error) {
    return { items, error };
  }
  return { items };
}

function lsnsOf(items: readonly FrameStreamItem[]): Array<number | string> {
  return items.flatMap((item): Array<number | string> =>
    item.kind === "frames"
      ? item.frames.map((f) => f.lsn)
      : item.kind === "control"
      ? ["control"]
      : [`corrupt: ${item.reason}`]
  );
}

Deno.test("streamFrames() yields the control record, the backlog and each later write", async () => {
  await withApp({}, async ({ app, call, primary }) => {
    await call("POST", "/v1/records", { json: { records: [put("a"), put("b")] } });
    const stream = await appClient(app).streamFrames({ replicaId: "r1", sinceLsn: 0 });
    assert.deepEqual(stream.position, {
      currentLsn: 2,
      oldestLsn: 1,
      term: 1,
      timeline: 1,
      startLsn: 0,
    });
    const seen: Array<number | string> = [];
    for await (const item of stream) {
      seen.push(...lsnsOf([item]));
      if (seen.length === 3) await call("POST", "/v1/records", { json: { records: [put("c")] } });
      if (seen.includes(3)) break;
    }
    assert.deepEqual(seen, ["control", 1, 2, 3]);
    await eventually("breaking out to end the stream", () => primary.streams.size === 0);
    assert.deepEqual(primary.streams.endedByReason(), { client_gone: 1 });
  });
});

Deno.test("streamFrames() sends stream=1 with the pull's query and the frames accept header", async () => {
  const { client, state } = scriptedClient([CONTROL]);
  const stream = await client.streamFrames({ replicaId: "r1", sinceLsn: 7, maxCount: 10, term: 2 });
  await drain(stream);
  const query = new URL(state.url).searchParams;
  assert.equal(query.get("stream"), "1");
  assert.equal(query.get("since_lsn"), "7");
  assert.equal(query.get("replica_id"), "r1");
  assert.equal(query.get("max_count"), "10");
  assert.equal(query.get("term"), "2");
  assert.equal(query.get("await_timeout_ms"), null, "a stream is never held");
});

Deno.test("streamFrames() decodes a body cut at every byte boundary, carried over", async () => {
  const body = concat([CONTROL, frame(1), frame(2), CONTROL, frame(3)]);
  for (const bytes of [false, true]) {
    for (let cut = 1; cut < body.byteLength; cut++) {
      const at = `cut at ${cut}${bytes ? ", byte stream" : ""}`;
      const { client } = scriptedClient([body.slice(0, cut), body.slice(cut)], "close", { bytes });
      const { items, error } = await drain(await client.streamFrames({ sinceLsn: 0 }));
      assert.equal(error, undefined, at);
      assert.deepEqual(lsnsOf(items).filter((x) => x !== "control"), [1, 2, 3], at);
    }
  }
});

Deno.test("streamFrames() reads a byte-stream body into one reused buffer: yielded frames keep their bytes", async () => {
  const bigPayload = (lsn: number) =>
    utf8.encode(JSON.stringify({ key: `k${lsn}`, pad: String(lsn % 10).repeat(40_000) }));
  const big = (lsn: number) =>
    encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn, timestampMs: 0, payload: bigPayload(lsn) });
  // Small chunks (each read lands where the one before did), then one chunk larger than the buffer.
  const small = Array.from({ length: 20 }, (_, i) => frame(i + 1));
  const large = concat([big(21), big(22), big(23), big(24)]);
  const { client, state } = scriptedClient([CONTROL, ...small, large], "close", { bytes: true });
  const { items, error } = await drain(await client.streamFrames({ sinceLsn: 0 }));
  assert.equal(error, undefined);
  const frames = items.flatMap((item) => item.kind === "frames" ? item.frames : []);
  assert.deepEqual(frames.map((f) => f.lsn), Array.from({ length: 24 }, (_, i) => i + 1));
  // Checked after the whole body was read: a frame that still pointed into the read buffer
  // would show the bytes of a later read.
  for (const decoded of frames) {
    const payload = decoded.lsn <= 20 ? smallPayload(decoded.lsn) : bigPayload(decoded.lsn);
    assert.deepEqual(decoded.payload, payload, `frame ${decoded.lsn}`);
  }
  assert.ok(state.byobReads > 0, "the body was read into the client's buffer");
});

Deno.test("streamFrames() yields the frames before a damaged one, then the damage, and cancels", async () => {
  const damaged = frame(2);
  damaged[50]! ^= 0x10;
  const { client, state } = scriptedClient([
    concat([CONTROL, frame(1), damaged, frame(3)]),
    frame(4),
    frame(5),
  ]);
  const { items, error } = await drain(await client.streamFrames({ sinceLsn: 0 }));
  assert.equal(error, undefined);
  assert.deepEqual(lsnsOf(items), ["control", 1, "corrupt: crc mismatch"]);
  const corrupt = items[items.length - 1]!;
  assert.ok(corrupt.kind === "corrupt");
  assert.equal(corrupt.offset, CONTROL.byteLength + frame(1).byteLength);
  assert.ok(state.cancelled, "nothing after the damage is read");
});

Deno.test("streamFrames() refuses a plain pull (no opening control record): StreamRefusedError", async () => {
  const plain = scriptedClient([concat([frame(1), frame(2)]), frame(3), frame(4)]);
  await assert.rejects(plain.client.streamFrames({ sinceLsn: 0 }), StreamRefusedError);
  assert.ok(plain.state.cancelled, "the plain pull's body is let go");
  const empty = scriptedClient([]);
  await assert.rejects(empty.client.streamFrames({ sinceLsn: 0 }), StreamRefusedError);
});

Deno.test("streamFrames() throws after the whole items when the body is cut, mid-item or not", async () => {
  const cutMidFrame = scriptedClient([concat([CONTROL, frame(1), frame(2).subarray(0, 10)])]);
  const midItem = await drain(await cutMidFrame.client.streamFrames({ sinceLsn: 0 }));
  assert.deepEqual(lsnsOf(midItem.items), ["control", 1]);
  assert.ok(midItem.error instanceof FerryResponseError, "a clean end inside an item is a cut");
  const reset = scriptedClient([concat([CONTROL, frame(1)])], "cut");
  const afterReset = await drain(await reset.client.streamFrames({ sinceLsn: 0 }));
  assert.deepEqual(lsnsOf(afterReset.items), ["control", 1]);
  assert.ok(afterReset.error instanceof TypeError, "the connection's error, untouched");
});

Deno.test("streamFrames(): a refused stream=1 (JSON 400) throws FerryHttpError; cancel() ends a waiting read", async () => {
  await withApp({}, async ({ app, call, primary }) => {
    const json = await call("GET", "/v1/wal?stream=1");
    assert.equal(json.status, 400);
    assert.equal((await json.json()).error, "bad_request");
    const stream = await appClient(app).streamFrames({ replicaId: "r1" });
    const reading = drain(stream);
    await eventually("the opening record to be read", () => primary.streams.size === 1);
    await stream.cancel();
    const { items, error } = await reading;
    assert.equal(error, undefined);
    assert.deepEqual(lsnsOf(items), ["control"]);
    await eventually("the stream to end", () => primary.streams.size === 0);
    await assert.rejects(
      appClient(app).streamFrames({ replicaId: "r1", term: 9 }),
      (error: unknown) => error instanceof FerryHttpError && error.code === "term_ahead",
    );
  });
});
