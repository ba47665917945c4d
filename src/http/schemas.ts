/**
 * Schemas shared by the routes: query numbers (non-numeric or negative is a 400, too large is
 * clamped where SPEC.md says so), ids, the error body, and the JSON-body guard.
 *
 * @module
 */

import { z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { decodeUtf8Strict } from "../core/bytes.ts";
import { BadRequestError, PayloadTooLargeError } from "../core/errors.ts";
import { QUERY_NUMBER_DIGITS_MAX, U64_SAFE_MAX } from "../core/limits.ts";
import { assertJsonShape } from "../model/records.ts";
import { REGION_PATTERN, REPLICA_ID_PATTERN } from "../model/ids.ts";

/** A whole number in a query string: 0..2^53-1, digits only. */
export const queryUint = z
  .string()
  .regex(new RegExp(`^\\d{1,${QUERY_NUMBER_DIGITS_MAX}}$`), {
    message: "must be a whole number of at most 16 digits",
  })
  .transform(Number)
  .refine((n) => n <= U64_SAFE_MAX, { message: "must be at most 2^53-1" });

/** A whole number in a query string, clamped to `max`. */
export function queryUintClamped(max: number) {
  return queryUint.transform((n) => Math.min(n, max));
}

/** An LSN (or count) in a JSON body. */
export const jsonUint = z.number().int().min(0).max(U64_SAFE_MAX);

export const replicaIdSchema = z.string().regex(REPLICA_ID_PATTERN, {
  message: "replica ids are 1..128 characters of [A-Za-z0-9_.-]",
});

export const regionSchema = z.string().regex(REGION_PATTERN, {
  message: "regions are 1..64 characters of [A-Za-z0-9_.-]",
});

/** Path parameter `:id` as a replica id. */
export const replicaIdParams = z.object({
  id: replicaIdSchema.openapi({ param: { name: "id", in: "path" }, example: "edge-fra-1" }),
});

/** The one error body. */
export const errorSchema = z
  .object({ error: z.string(), message: z.string() })
  .passthrough()
  .openapi("Error");

/** One documented error response with its own description. */
export function errorContent(description: string) {
  return { description, content: { "application/json": { schema: errorSchema } } };
}

/** Error responses every guarded route may give, described by status. */
export function errorResponses(...statuses: number[]) {
  const described: Record<number, ReturnType<typeof errorContent>> = {};
  for (const status of statuses) described[status] = errorContent(_STATUS_TEXT[status] ?? "error");
  return described;
}

const _STATUS_TEXT: Record<number, string> = {
  400: "invalid input (nothing changed)",
  401: "no valid bearer token",
  403: "the token may not do this",
  404: "not found",
  409: "the replica must re-bootstrap, or its term differs",
  413: "a record or the body is too large",
  503: "not ready, overloaded, or unavailable; retry after the Retry-After delay",
  504: "the commit wait timed out (the records are durable)",
  507: "the disk is full; nothing was written",
};

/**
 * Caps the body at `maxBytes` (413 beyond), parses it as JSON once (400 when malformed) and checks
 * its nesting (400 when too deep) before any schema touches it. The parsed body stays cached for
 * the route's validator.
 */
export function jsonBody(maxBytes: number): MiddlewareHandler[] {
  return [
    bodyLimit({
      maxSize: maxBytes,
      onError: () => {
        throw new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`, {
          max_bytes: maxBytes,
        });
      },
    }),
    async (c, next) => {
      let body: unknown;
      try {
        // Strict UTF-8: a body that is not is refused, never read with replacement characters.
        body = JSON.parse(decodeUtf8Strict(new Uint8Array(await c.req.arrayBuffer())));
      } catch (error) {
        if (error instanceof PayloadTooLargeError) throw error;
        throw new BadRequestError("the request body is not valid UTF-8 JSON");
      }
      assertJsonShape(body);
      // The route's validator reads this parsed body instead of parsing the bytes again.
      (c.req.bodyCache as { json?: Promise<unknown> }).json = Promise.resolve(body);
      await next();
    },
  ];
}
