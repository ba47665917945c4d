/**
 * `GET /v1/wal` (SPEC.md 9.3): pulls, as JSON or as raw frames (`application/x-ferry-frames`, the
 * frames byte for byte as stored), with an optional long-poll hold released the moment the client
 * goes away; with `stream=1` (raw frames only, SPEC.md 13.1) the answer stays open and carries each
 * later group commit. A replica token pulls only as its own replica id.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  FRAMES_SINGLE_WRITE_BYTES_MAX,
  PULL_BYTES_DEFAULT,
  PULL_BYTES_MAX,
  PULL_RECORDS_DEFAULT,
  PULL_RECORDS_MAX,
  PULL_WAIT_MS_MAX,
} from "../../core/limits.ts";
import { BadRequestError } from "../../core/errors.ts";
import type { PullPosition, RawPullResult, StreamOpened } from "../../replication/types.ts";
import type { DecodedFrame } from "../../wal/frame.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { boundReplicaId } from "../guards.ts";
import type { AppEnv } from "../router.ts";
import { errorResponses, queryUint, queryUintClamped, replicaIdSchema } from "../schemas.ts";
import {
  ACCEL_BUFFERING_OFF,
  CACHE_CONTROL_NO_STORE,
  FRAMES_MEDIA_TYPE,
  HEADER_ACCEL_BUFFERING,
  HEADER_CACHE_CONTROL,
  HEADER_CURRENT_LSN,
  HEADER_OLDEST_LSN,
  HEADER_RECORD_COUNT,
  HEADER_START_LSN,
  HEADER_TERM,
  HEADER_TIMELINE,
} from "../../model/wire.ts";
import { concatBytes } from "../../core/bytes.ts";

const pullQuery = z.object({
  since_lsn: queryUint.optional(),
  max_count: queryUintClamped(PULL_RECORDS_MAX).optional(),
  max_bytes: queryUintClamped(PULL_BYTES_MAX).optional(),
  replica_id: replicaIdSchema.optional(),
  term: queryUint.optional(),
  await_timeout_ms: queryUintClamped(PULL_WAIT_MS_MAX).optional(),
  stream: z.enum(["0", "1"]).optional().openapi({
    description: "1: keep the answer open and stream each later group commit (raw frames only)",
  }),
});

const pulledRecord = z.object({
  lsn: z.number(),
  term: z.number(),
  timestamp_ms: z.number(),
  record: z.unknown(),
});

const pullResponse = z
  .object({
    records: z.array(pulledRecord),
    current_lsn: z.number(),
    oldest_lsn: z.number(),
    term: z.number(),
    timeline: z.number(),
  })
  .openapi("PullResponse");

const _decoder = new TextDecoder();

function _recordOf(frame: DecodedFrame): unknown {
  try {
    return JSON.parse(_decoder.decode(frame.payload));
  } catch {
    return null;
  }
}

/**
 * A raw-frame answer: the records as the bytes stored (the tail's buffers or a segment file's
 * byte range), with the position headers. The primary checked no CRC: the client does.
 */
function _framesResponse(c: Context<AppEnv>, result: RawPullResult): Response {
  const { chunks, count, byteLength } = result.raw;
  const headers = { ...positionHeaders(result), [HEADER_RECORD_COUNT]: String(count) };
  if (chunks.length <= 1) {
    return c.body((chunks[0] ?? new Uint8Array(0)) as Uint8Array<ArrayBuffer>, 200, headers);
  }
  if (byteLength <= FRAMES_SINGLE_WRITE_BYTES_MAX) {
    // One write: several small writes of one response meet Nagle and delayed ACKs (a 40 ms stall).
    return c.body(concatBytes(chunks, byteLength) as Uint8Array<ArrayBuffer>, 200, headers);
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  return c.body(body, 200, headers);
}

/** The raw-frame headers of a pull or stream: the media type and where the primary stands. */
export function positionHeaders(position: PullPosition): Record<string, string> {
  return {
    "content-type": FRAMES_MEDIA_TYPE,
    [HEADER_CURRENT_LSN]: String(position.currentLsn),
    [HEADER_OLDEST_LSN]: String(position.oldestLsn),
    [HEADER_TERM]: String(position.term),
    [HEADER_TIMELINE]: String(position.timeline),
    [HEADER_START_LSN]: String(position.startLsn),
  };
}

/**
 * A streaming answer (chunked: no length): the pull's headers, and none that would let a cache
 * keep it or a proxy buffer it.
 */
function _streamResponse(c: Context<AppEnv>, opened: StreamOpened): Response {
  return c.body(opened.body, 200, {
    ...positionHeaders(opened),
    [HEADER_CACHE_CONTROL]: CACHE_CONTROL_NO_STORE,
    [HEADER_ACCEL_BUFFERING]: ACCEL_BUFFERING_OFF,
  });
}

/** Pull routes (replica role). */
export function walRoutes(deps: AppDeps) {
  const app = newRouter();
  const pull = createRoute({
    method: "get",
    path: "/v1/wal",
    tags: ["replication"],
    request: { query: pullQuery },
    responses: {
      200: {
        description: "records after since_lsn (none when the hold timed out); with stream=1, " +
          "frames and RDLC control records until the stream ends",
        content: {
          "application/json": { schema: pullResponse },
          [FRAMES_MEDIA_TYPE]: { schema: z.string().openapi({ format: "binary" }) },
        },
      },
      ...errorResponses(400, 401, 403, 409, 503),
    },
  });
  app.openapi(pull, async (c) => {
    const query = c.req.valid("query");
    const replicaId = boundReplicaId(c, query.replica_id, "pull");
    const request = {
      replicaId,
      sinceLsn: query.since_lsn,
      maxCount: query.max_count ?? PULL_RECORDS_DEFAULT,
      maxBytes: query.max_bytes ?? PULL_BYTES_DEFAULT,
      awaitTimeoutMs: query.await_timeout_ms ?? 0,
      term: query.term,
      signal: c.req.raw.signal,
    };
    const frames = (c.req.header("accept") ?? "").includes(FRAMES_MEDIA_TYPE);
    if (query.stream === "1") {
      if (!frames) {
        throw new BadRequestError(
          `a stream carries raw frames only: send accept: ${FRAMES_MEDIA_TYPE} with stream=1`,
        );
      }
      return _streamResponse(c, await deps.primary.openStream(request)) as never;
    }
    if (frames) {
      const raw = await deps.primary.pullRaw(request);
      deps.metrics?.transfers.pullBytes(raw.raw.byteLength);
      return _framesResponse(c, raw) as never;
    }
    // JSON pulls decode every frame, CRC-checked: a damaged record fails the whole pull.
    const result = await deps.primary.pull(request);
    deps.metrics?.transfers.pullBytes(result.frames.reduce((sum, f) => sum + f.byteLength, 0));
    return c.json({
      records: result.frames.map((frame) => ({
        lsn: frame.lsn,
        term: frame.term,
        timestamp_ms: frame.timestampMs,
        record: _recordOf(frame),
      })),
      current_lsn: result.currentLsn,
      oldest_lsn: result.oldestLsn,
      term: result.term,
      timeline: result.timeline,
    }, 200);
  });
  return app;
}
