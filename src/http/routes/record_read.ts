/**
 * `GET /v1/records/:collection/:key` (SPEC.md 9.7), served by the primary and by replicas: the
 * current value from a materialised state, with `?min_lsn=` read-your-writes waits. Shared by both
 * servers, so it lives outside `http/` and `replica/`.
 *
 * @module
 */

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, Env } from "hono";
import { FerryError, NotFoundError } from "../../core/errors.ts";
import { validationHook } from "../errors.ts";
import type { StateEntry } from "../../state/kv_state.ts";
import { KEY_BYTES_MAX, PULL_WAIT_MS_MAX, U64_SAFE_MAX } from "../../core/limits.ts";
import { COLLECTION_PATTERN, isRecordKey } from "../../model/records.ts";

/** What a read route needs from a materialised state. */
export interface StateReader {
  appliedLsn(): number;
  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean>;
  get(collection: string, key: string): Promise<StateEntry | undefined>;
}

/** The wait for `min_lsn` ended before the state applied it (HTTP 503 with Retry-After). */
export class LsnNotAppliedError extends FerryError {
  constructor(appliedLsn: number, minLsn: number) {
    super("lsn_not_applied", `LSN ${minLsn} is not applied yet (applied: ${appliedLsn})`, {
      applied_lsn: appliedLsn,
      min_lsn: minLsn,
    });
  }
}

const _DIGITS_MAX = 16;

const queryNumber = z.string().regex(new RegExp(`^\\d{1,${_DIGITS_MAX}}$`), {
  message: "must be a whole number of at most 16 digits",
}).transform(Number).refine((n) => n <= U64_SAFE_MAX, { message: "must be at most 2^53-1" });

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
  min_lsn: queryNumber.optional(),
  await_timeout_ms: queryNumber.transform((n) => Math.min(n, PULL_WAIT_MS_MAX)).optional(),
});

const readResponse = z.object({
  collection: z.string(),
  key: z.string(),
  value: z.unknown(),
  lsn: z.number(),
  applied_lsn: z.number(),
}).openapi("Record");

const errorBody = z.object({ error: z.string(), message: z.string() }).passthrough();

/**
 * The read route. `reader()` is called per request (a replica swaps its store after a
 * re-bootstrap); `authorize` runs first and throws to refuse.
 */
export function recordReadRoutes<E extends Env>(
  options: { reader: () => StateReader; authorize?: (c: Context<E>) => void },
): OpenAPIHono<E> {
  const app = new OpenAPIHono<E>({ defaultHook: validationHook });
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
      404: {
        description: "no value once min_lsn is applied",
        content: { "application/json": { schema: errorBody } },
      },
      503: {
        description: "min_lsn not applied before the wait ended",
        content: { "application/json": { schema: errorBody } },
      },
    },
  });
  app.openapi(route, async (c) => {
    options.authorize?.(c as unknown as Context<E>);
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
