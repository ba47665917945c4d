/**
 * `POST /v1/records` (SPEC.md 9.2): validated records get consecutive LSNs, are made durable
 * together, then wait for the commit policy. Nothing is appended unless every record is valid.
 *
 * The hot path of ferry. The body is checked by hand (`write_body.ts`) in one pass, the answer is
 * built without Hono's helpers, and the zod schemas below only describe the route for
 * `/openapi.json` (`tests/http/write_body_test.ts` holds the two to the same verdicts). The order
 * of the checks is part of the contract: the caller's role and the append queue's room are
 * checked before the body is read, its media type before a byte of it is read, its size while it
 * is read.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  CommitUnknownError,
  NoLeaderError,
  NotLeaderError,
  OverloadedError,
} from "../../core/errors.ts";
import { COMMIT_TIMEOUT_MS_MAX } from "../../core/limits.ts";
import { changeRecordSchema } from "../../model/records.ts";
import type { WriteResult } from "../../replication/types.ts";
import { type AppDeps, type AppEnv, newRouter } from "../router.ts";
import { requireRole } from "../guards.ts";
import { errorResponses, errorSchema, queryUint } from "../schemas.ts";
import { HEADER_LSN, JSON_MEDIA_TYPE, NDJSON_MEDIA_TYPE } from "../../model/wire.ts";
import {
  parseJsonWrite,
  parseNdjsonWrite,
  readWriteBody,
  writeBodyFormat,
  type WriteRequest,
} from "../write_body.ts";

const _WRITE_PATH = "/v1/records";

/** The JSON write body, as `/openapi.json` describes it (and as the differential test reads it). */
export const writeBodySchema = z
  .object({
    records: z.array(changeRecordSchema.openapi("ChangeRecord")).min(1, {
      message: "at least one record",
    }),
    commit_policy: z.string().optional().openapi({ example: "ack_n=1" }),
    timeout_ms: z.number().int().min(0).max(COMMIT_TIMEOUT_MS_MAX).optional(),
  })
  .strict();

/** The query of an NDJSON write (a JSON write carries these in its body and ignores the query). */
export const ndjsonWriteQuerySchema = z.object({
  commit_policy: z.string().optional().openapi({
    param: { name: "commit_policy", in: "query" },
    description: "NDJSON bodies only: the commit policy (a JSON body carries it itself)",
    example: "ack_n=1",
  }),
  timeout_ms: queryUint.refine((n) => n <= COMMIT_TIMEOUT_MS_MAX, {
    message: `must be at most ${COMMIT_TIMEOUT_MS_MAX}`,
  }).optional().openapi({
    param: { name: "timeout_ms", in: "query" },
    description: "NDJSON bodies only: the commit wait's timeout in ms",
  }),
});

const commitSchema = z.object({
  policy: z.string(),
  outcome: z.enum(["not_required", "reached", "timed_out"]),
  durable_replicas: z.array(z.string()),
  regions: z.array(z.string()),
  waited_ms: z.number(),
  required: z.number(),
  observed: z.number(),
});

const writeResponse = z
  .object({
    first_lsn: z.number(),
    last_lsn: z.number(),
    term: z.number(),
    timeline: z.number(),
    commit: commitSchema,
  })
  .openapi("WriteResponse");

/** The 9.2 response body of a write. */
export function writeResponseBody(result: WriteResult): z.infer<typeof writeResponse> {
  return {
    first_lsn: result.firstLsn,
    last_lsn: result.lastLsn,
    term: result.term,
    timeline: result.timeline,
    commit: {
      policy: result.commit.policy,
      outcome: result.commit.outcome,
      durable_replicas: result.commit.durableReplicas,
      regions: result.commit.regions,
      waited_ms: Math.round(result.commit.waitedMs),
      required: result.commit.required,
      observed: result.commit.observed,
    },
  };
}

const _writeRoute = createRoute({
  method: "post",
  path: _WRITE_PATH,
  tags: ["records"],
  description: `Appends records. The body is ${JSON_MEDIA_TYPE} (the object below) or ` +
    `${NDJSON_MEDIA_TYPE}: one ChangeRecord per line, with commit_policy and timeout_ms as ` +
    "query parameters. Either way the same limits hold (records and bytes per request, bytes " +
    "per record) and nothing is appended unless every record is valid; any other media type " +
    "is 415.",
  request: {
    query: ndjsonWriteQuerySchema,
    body: {
      required: true,
      content: {
        [JSON_MEDIA_TYPE]: { schema: writeBodySchema },
        [NDJSON_MEDIA_TYPE]: { schema: changeRecordSchema.openapi("ChangeRecord") },
      },
    },
  },
  responses: {
    200: {
      description: "durable; the commit object says what the policy reached",
      content: { [JSON_MEDIA_TYPE]: { schema: writeResponse } },
    },
    504: {
      description: "commit wait timed out (fail-on-commit-timeout); the records are durable",
      content: { [JSON_MEDIA_TYPE]: { schema: errorSchema } },
    },
    ...errorResponses(400, 401, 403, 413, 415, 503, 507),
  },
});

/** Record routes (writer role). */
export function recordRoutes(deps: AppDeps) {
  const app = newRouter();
  const clock = deps.clock ?? Date.now;
  // Documented with zod, served by one handler: no validator middleware runs on the hot path.
  app.openAPIRegistry.registerPath(_writeRoute);
  app.post(_WRITE_PATH, async (c) => {
    requireRole(c, "writer");
    if (deps.writesGoTo) {
      const elsewhere = deps.writesGoTo();
      if (elsewhere === null) throw new NoLeaderError();
      return _redirect(c, elsewhere);
    }
    deps.fence?.();
    _appendQueueGuard(c, deps);
    const held = deps.writeGate?.(c.req.raw);
    if (held) await held;
    const format = writeBodyFormat(c.req.header("content-type"));
    const bytes = await readWriteBody(c.req.raw, deps.limits.requestBytesMax);
    const request = _parse(c, format, bytes, { limits: deps.limits, nowMs: clock() });
    const policy = request.policy ?? deps.primary.commitPolicyFloor;
    const result = await deps.primary.append(request.payloads, {
      policy: request.policy,
      timeoutMs: request.timeoutMs,
      // Only a wait can end early on a dropped connection; `local` needs no signal (costly to make).
      signal: policy.kind === "local" ? undefined : c.req.raw.signal,
    });
    _fenceAfterWrite(deps, result);
    return _writeAnswer(result, deps.failOnCommitTimeout);
  });
  return app;
}

/**
 * Past the fencing deadline, or once stepped down, a write durable here is no promise (SPEC.md
 * 13.4): 503 `commit_unknown` with its term and LSNs, for `GET /v1/commits` to settle later.
 */
function _fenceAfterWrite(deps: AppDeps, result: WriteResult): void {
  try {
    deps.fence?.();
  } catch (error) {
    if (!(error instanceof NotLeaderError)) throw error;
    throw new CommitUnknownError({
      term: result.term,
      firstLsn: result.firstLsn,
      lastLsn: result.lastLsn,
    });
  }
}

/**
 * 307 to where writes go (a relay's upstream): the client repeats the same POST there, body and
 * all. Nothing was read or written here.
 */
function _redirect(c: Context<AppEnv>, base: string): Response {
  const url = new URL(c.req.url);
  const location = new URL(`${base.replace(/\/+$/, "")}${url.pathname}${url.search}`);
  return c.json(
    {
      error: "not_primary",
      message: `this node takes no writes; send them to ${location.origin}`,
      location: location.href,
    },
    307,
    { location: location.href, "cache-control": "no-store" },
  );
}

function _parse(
  c: Context<AppEnv>,
  format: "json" | "ndjson",
  bytes: Uint8Array,
  options: Parameters<typeof parseJsonWrite>[1],
): WriteRequest {
  if (format === "json") return parseJsonWrite(bytes, options);
  const query = {
    commitPolicy: c.req.query("commit_policy"),
    timeoutMs: c.req.query("timeout_ms"),
  };
  return parseNdjsonWrite(bytes, query, options);
}

/** 200 with the 9.2 body and `x-ferry-lsn`; 504 when the wait timed out and the server says so. */
function _writeAnswer(result: WriteResult, failOnCommitTimeout: boolean): Response {
  const body = writeResponseBody(result);
  let response: Response;
  if (result.commit.outcome === "timed_out" && failOnCommitTimeout) {
    const message =
      `the commit policy ${result.commit.policy} timed out; LSNs ${result.firstLsn}..${result.lastLsn} are durable on the primary`;
    const text = JSON.stringify({ error: "commit_timeout", message, ...body });
    response = new Response(text, { status: 504 });
  } else {
    response = new Response(JSON.stringify(body));
  }
  // Set one by one: Deno converts a headers dictionary given to the constructor ten times slower.
  response.headers.set("content-type", JSON_MEDIA_TYPE);
  response.headers.set(HEADER_LSN, String(result.lastLsn));
  return response;
}

/**
 * Refuses a write before its body is read when the append queue has no room for it (503
 * `overloaded` with Retry-After): bodies in flight stay bounded by the queue, not by the number of
 * writers. The append checks the exact frame bytes again.
 */
function _appendQueueGuard(c: Context<AppEnv>, deps: AppDeps): void {
  const declared = Number(c.req.header("content-length") ?? "0");
  const bytes = Number.isSafeInteger(declared) && declared > 0 ? declared : 1;
  if (!deps.primary.spool.queueHasRoom(bytes)) {
    throw new OverloadedError("the append queue is full; retry shortly");
  }
}
