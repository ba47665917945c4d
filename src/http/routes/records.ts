/**
 * `POST /v1/records` (SPEC.md 9.2): validated records get consecutive LSNs, are made durable
 * together, then wait for the commit policy. Nothing is appended unless every record is valid.
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { parseCommitPolicy } from "../../replication/commit_policy.ts";
import { BadRequestError, OverloadedError, PayloadTooLargeError } from "../../core/errors.ts";
import { COMMIT_TIMEOUT_MS_MAX } from "../../core/limits.ts";
import { changeRecordSchema, encodeChangeRecords, stampRecord } from "../../model/records.ts";
import type { WriteResult } from "../../replication/types.ts";
import { type AppDeps, type AppEnv, newRouter } from "../router.ts";
import { requireRole, roleGuard } from "../guards.ts";
import { errorResponses, errorSchema, jsonBody } from "../schemas.ts";
import { HEADER_LSN } from "../../model/wire.ts";

const writeBody = z
  .object({
    records: z.array(changeRecordSchema.openapi("ChangeRecord")).min(1, {
      message: "at least one record",
    }),
    commit_policy: z.string().optional().openapi({ example: "ack_n=1" }),
    timeout_ms: z.number().int().min(0).max(COMMIT_TIMEOUT_MS_MAX).optional(),
  })
  .strict();

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

/** Record routes (writer role). */
export function recordRoutes(deps: AppDeps) {
  const app = newRouter();
  const clock = deps.clock ?? Date.now;
  const write = createRoute({
    method: "post",
    path: "/v1/records",
    tags: ["records"],
    middleware: [
      roleGuard("writer"),
      _appendQueueGuard(deps),
      ...jsonBody(deps.limits.requestBytesMax),
    ],
    request: { body: { required: true, content: { "application/json": { schema: writeBody } } } },
    responses: {
      200: {
        description: "durable; the commit object says what the policy reached",
        content: { "application/json": { schema: writeResponse } },
      },
      504: {
        description: "commit wait timed out (fail-on-commit-timeout); the records are durable",
        content: { "application/json": { schema: errorSchema } },
      },
      ...errorResponses(400, 401, 403, 413, 503, 507),
    },
  });
  app.openapi(write, async (c) => {
    requireRole(c, "writer");
    const body = c.req.valid("json");
    const { requestRecordsMax, recordBytesMax } = deps.limits;
    if (body.records.length > requestRecordsMax) {
      throw new BadRequestError(
        `at most ${requestRecordsMax} records per request, got ${body.records.length}`,
      );
    }
    const policy = body.commit_policy === undefined
      ? undefined
      : parseCommitPolicy(body.commit_policy);
    const now = clock();
    const payloads = encodeChangeRecords(body.records.map((record) => stampRecord(record, now)));
    payloads.forEach((payload, index) => {
      if (payload.byteLength > recordBytesMax) {
        throw new PayloadTooLargeError(
          `record ${index} is ${payload.byteLength} bytes; the limit is ${recordBytesMax}`,
          {
            index,
            max_bytes: recordBytesMax,
          },
        );
      }
    });
    const result = await deps.primary.append(payloads, {
      policy,
      timeoutMs: body.timeout_ms,
      signal: c.req.raw.signal,
    });
    c.header(HEADER_LSN, String(result.lastLsn));
    const response = writeResponseBody(result);
    if (result.commit.outcome === "timed_out" && deps.failOnCommitTimeout) {
      const message =
        `the commit policy ${result.commit.policy} timed out; LSNs ${result.firstLsn}..${result.lastLsn} are durable on the primary`;
      return c.json({ error: "commit_timeout", message, ...response }, 504);
    }
    return c.json(response, 200);
  });
  return app;
}

/**
 * Refuses a write before its body is read when the append queue has no room for it (503
 * `overloaded` with Retry-After): bodies in flight stay bounded by the queue, not by the number of
 * writers. The append checks the exact frame bytes again.
 */
function _appendQueueGuard(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const declared = Number(c.req.header("content-length") ?? "0");
    const bytes = Number.isSafeInteger(declared) && declared > 0 ? declared : 1;
    if (!deps.primary.spool.queueHasRoom(bytes)) {
      throw new OverloadedError("the append queue is full; retry shortly");
    }
    await next();
  };
}
