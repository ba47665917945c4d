/**
 * `GET /v1/records/:collection/:key` (SPEC.md 9.7), served by the primary and by replicas: the
 * current value from a materialised state, with `?min_lsn=` read-your-writes waits. Mounted by
 * both apps.
 *
 * @module
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { StateReader } from "../../state/reader.ts";
import { type AppEnv, newRouter } from "../router.ts";
import { errorContent, errorResponses, queryUint, queryUintClamped } from "../schemas.ts";
import { LsnNotAppliedError, NotFoundError } from "../../core/errors.ts";
import { KEY_BYTES_MAX, PULL_WAIT_MS_MAX } from "../../core/limits.ts";
import { COLLECTION_PATTERN, isRecordKey } from "../../model/ids.ts";

const readParams = z.object({
  collection: z.string().regex(COLLECTION_PATTERN).openapi({
    param: { name: "collection", in: "path" },
  }),
  // The write rule: a key no record can have (NUL, too long) would not even fit a KV key.
  key: z.string().min(1).refine(isRecordKey, {
    message: `key must be 1..${KEY_BYTES_MAX} bytes of well-formed UTF-8 without NUL`,
  }).openapi({ param: { name: "key", in: "path" } }),
});

const readQuery = z.object({
  min_lsn: queryUint.optional(),
  await_timeout_ms: queryUintClamped(PULL_WAIT_MS_MAX).optional(),
});

const readResponse = z.object({
  collection: z.string(),
  key: z.string(),
  value: z.unknown(),
  lsn: z.number(),
  applied_lsn: z.number(),
}).openapi("Record");

/**
 * The read route. `reader()` is called per request (a replica swaps its store after a
 * re-bootstrap); `authorize` runs first and throws to refuse.
 */
export function recordReadRoutes(
  options: { reader: () => StateReader; authorize?: (c: Context<AppEnv>) => void },
) {
  const app = newRouter();
  const route = createRoute({
    method: "get",
    path: "/v1/records/{collection}/{key}",
    tags: ["records"],
    request: { params: readParams, query: readQuery },
    responses: {
      200: {
        description: "the current value",
        content: { "application/json": { schema: readResponse } },
      },
      ...errorResponses(400, 401, 403),
      404: errorContent("no value once min_lsn is applied"),
      503: errorContent("min_lsn not applied before the wait ended"),
    },
  });
  app.openapi(route, async (c) => {
    options.authorize?.(c);
    const { collection, key } = c.req.valid("param");
    const { min_lsn: minLsn, await_timeout_ms: timeoutMs } = c.req.valid("query");
    const reader = options.reader();
    if (minLsn !== undefined && reader.appliedLsn() < minLsn) {
      const reached = await reader.waitApplied(minLsn, {
        timeoutMs: timeoutMs ?? 0,
        signal: c.req.raw.signal,
      });
      if (!reached) throw new LsnNotAppliedError(reader.appliedLsn(), minLsn);
    }
    const appliedLsn = reader.appliedLsn();
    const entry = await reader.get(collection, key);
    if (!entry) {
      throw new NotFoundError(`no value for ${collection}/${key}`, {
        collection,
        key,
        applied_lsn: appliedLsn,
      });
    }
    return c.json(
      { collection, key, value: entry.value, lsn: entry.lsn, applied_lsn: appliedLsn },
      200,
    );
  });
  return app;
}
