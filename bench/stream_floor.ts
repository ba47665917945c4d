/**
 * The floor of the fan-out benchmark's streaming row: the leanest Deno program that does the job of
 * a primary serving streaming pulls (SPEC.md 13.1) to many replicas while it takes durable writes.
 *
 * - `POST /v1/records` (JSON): each record becomes one v3 frame (`encodeFrameV3`, its CRC
 *   included, since the replicas check it), the frames of every request in flight go out with one
 *   `write` and one `fdatasync` (`GroupCommitFile`, as bench/write_floor.ts), and each request is
 *   answered with its LSNs after the `fdatasync` that covers it;
 * - `GET /v1/wal?stream=1`: a response kept open that starts with one control record (the client
 *   requires it) and then carries each group commit's bytes as one chunk, as soon as they are
 *   durable: the same bytes for every stream, as ferry sends them;
 * - `POST /v1/replicas/:id/ack`: answered `{}` (a streaming replica acks every 2 s).
 *
 * No history: a stream starts at the current LSN (the benchmark's replicas connect before the
 * first write) and any other start is refused. No slots, no unsent-bytes cap, no heartbeats, no
 * validation, no state, no metrics: what ferry does beyond this is its own cost.
 *
 * Run: deno run --allow-net=127.0.0.1:PORT --allow-read=FILE --allow-write=FILE \
 *   bench/stream_floor.ts --port PORT --file FILE
 * It prints `listening` on stdout once it serves.
 */

import { concatBytes } from "../src/core/bytes.ts";
import { encodeFrameV3 } from "../src/wal/frame.ts";
import { encodeControlRecord } from "../src/wal/stream_codec.ts";
import {
  FRAMES_MEDIA_TYPE,
  HEADER_CURRENT_LSN,
  HEADER_OLDEST_LSN,
  HEADER_START_LSN,
  HEADER_TERM,
  HEADER_TIMELINE,
} from "../src/model/wire.ts";
import { floorFlag, GroupCommitFile } from "./write_floor.ts";

const _encoder = new TextEncoder();
/** The floor's one term and timeline. */
const _TERM = 1;
const _TIMELINE = 1;

/** The streams open now, each fed every durable group commit. */
const _streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
/**
 * The LSN of the last record handed to the appender: frames are numbered as they are queued, and
 * the appender writes its queue in order.
 */
let _queuedLsn = 0;
/** The LSN of the last durable record. */
let _durableLsn = 0;

function _sendToStreams(bytes: Uint8Array, lastLsn: number): void {
  _durableLsn = lastLsn;
  for (const controller of _streams) controller.enqueue(bytes);
}

/** One durable write: its records as frames, numbered in the order they are queued. */
async function _write(appender: GroupCommitFile, request: Request): Promise<Response> {
  const body = await request.json() as { records: unknown[] };
  const now = Date.now();
  const frames = body.records.map((record) =>
    encodeFrameV3({
      term: _TERM,
      ownershipEpoch: 0,
      lsn: ++_queuedLsn,
      timestampMs: now,
      payload: _encoder.encode(JSON.stringify(record)),
    })
  );
  const firstLsn = await appender.append(concatBytes(frames), frames.length);
  return Response.json({ first_lsn: firstLsn, last_lsn: firstLsn + frames.length - 1 });
}

function _stream(url: URL): Response {
  const since = Number(url.searchParams.get("since_lsn") ?? "0");
  if (since !== _durableLsn) {
    return Response.json({ error: "no_history", message: "streams start at the head" }, {
      status: 409,
    });
  }
  let self: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      self = controller;
      const lsn = _durableLsn;
      controller.enqueue(
        encodeControlRecord({ currentLsn: lsn, commitLsn: lsn, term: _TERM, timeline: _TIMELINE }),
      );
      _streams.add(controller);
    },
    cancel() {
      _streams.delete(self);
    },
  });
  return new Response(body, {
    headers: {
      "content-type": FRAMES_MEDIA_TYPE,
      "cache-control": "no-store",
      [HEADER_CURRENT_LSN]: String(_durableLsn),
      [HEADER_OLDEST_LSN]: String(_durableLsn + 1),
      [HEADER_TERM]: String(_TERM),
      [HEADER_TIMELINE]: String(_TIMELINE),
      [HEADER_START_LSN]: String(since),
    },
  });
}

if (import.meta.main) {
  const file = await Deno.open(floorFlag("file"), { create: true, append: true });
  const appender = new GroupCommitFile(file, _sendToStreams);
  Deno.serve({
    hostname: "127.0.0.1",
    port: Number(floorFlag("port")),
    onListen: () => console.log("listening"),
  }, async (request) => {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/v1/records") {
      return await _write(appender, request);
    }
    if (request.method === "GET" && url.pathname === "/v1/wal") return _stream(url);
    if (request.method === "POST" && url.pathname.endsWith("/ack")) {
      await request.body?.cancel();
      return Response.json({});
    }
    return Response.json({ error: "not_found" }, { status: 404 });
  });
}
