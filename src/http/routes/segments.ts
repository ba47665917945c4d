/**
 * Sealed segments as immutable, cacheable objects (SPEC.md 13.2): `GET /v1/segments` lists them
 * (replica role; with URL signing keys each `url` is signed), and
 * `GET /v1/segments/:timeline/:first-:last-:hash` serves one as stored, with a strong ETag (its
 * SHA-256), ranges, `If-None-Match`, and `Cache-Control: public, max-age=31536000, immutable`
 * (`private` when a bearer token, not a signature, let the caller in). Every error is `no-store`.
 * In a cluster the listing holds only segments at or below the commit LSN (SPEC.md 13.4); a
 * segment's own URL serves any sealed segment (its name is known only once it was listed).
 */

import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ForbiddenError, NotFoundError, RangeNotSatisfiableError } from "../../core/errors.ts";
import { SEGMENT_CACHE_MAX_AGE_S } from "../../core/limits.ts";
import {
  CACHE_CONTROL_NO_STORE,
  FRAMES_MEDIA_TYPE,
  HEADER_CACHE_CONTROL,
  parseSegmentObjectName,
  segmentObjectPath,
  SEGMENTS_PATH,
  SIGNED_URL_EXP,
  SIGNED_URL_KID,
  SIGNED_URL_SIG,
} from "../../model/wire.ts";
import type { SealedSegmentInfo } from "../../wal/sealed_segments.ts";
import { byteRangeOf, etagMatches } from "../byte_range.ts";
import { requireRole } from "../guards.ts";
import { type AppDeps, type AppEnv, newRouter } from "../router.ts";
import { errorResponses } from "../schemas.ts";

const segmentEntry = z.object({
  first_lsn: z.number(),
  last_lsn: z.number(),
  bytes: z.number(),
  sha256: z.string(),
  url: z.string().openapi({ description: "relative to the primary (or a cache in front of it)" }),
});

const listResponse = z
  .object({ timeline: z.number(), segments: z.array(segmentEntry) })
  .openapi("SegmentList");

const listRoute = createRoute({
  method: "get",
  path: SEGMENTS_PATH,
  tags: ["replication"],
  responses: {
    200: {
      description: "the sealed segments, oldest first",
      content: { "application/json": { schema: listResponse } },
    },
    ...errorResponses(401, 403, 500),
  },
});

const objectRoute = createRoute({
  method: "get",
  path: `${SEGMENTS_PATH}/{timeline}/{name}`,
  tags: ["replication"],
  request: {
    params: z.object({
      timeline: z.string(),
      name: z.string().openapi({ example: "1-4096-0123456789abcdef" }),
    }),
  },
  responses: {
    200: {
      description: "the sealed segment as stored",
      content: { [FRAMES_MEDIA_TYPE]: { schema: z.string().openapi({ format: "binary" }) } },
    },
    206: { description: "one byte range of it" },
    304: { description: "If-None-Match named its ETag" },
    ...errorResponses(401, 403, 404, 410, 416, 500),
  },
});

/** Segment routes: the listing (replica role) and the objects (a bearer token or a signed URL). */
export function segmentRoutes(deps: AppDeps) {
  const app = newRouter();
  const clock = deps.clock ?? Date.now;
  app.openapi(listRoute, async (c) => {
    requireRole(c, "replica");
    const { primary, auth } = deps;
    const now = clock();
    const sealed = await primary.spool.sealed.list();
    // In a cluster only segments wholly at or below the commit LSN (SPEC.md 13.2, 13.4); read
    // after the listing, so outside a cluster (commit = current) every sealed segment is listed.
    const commitLsn = primary.streams.commitLsn();
    const segments = sealed.filter((info) => info.lastLsn <= commitLsn).map((info) => ({
      first_lsn: info.firstLsn,
      last_lsn: info.lastLsn,
      bytes: info.sizeBytes,
      sha256: info.sha256,
      url: auth.urlSigner.sign(segmentObjectPath({ timeline: primary.timeline, ...info }), now),
    }));
    c.header(HEADER_CACHE_CONTROL, CACHE_CONTROL_NO_STORE);
    return c.json({ timeline: primary.timeline, segments }, 200);
  });
  app.use(`${SEGMENTS_PATH}/:timeline/:name`, async (c, next) => {
    await next();
    deps.metrics?.transfers.segmentAnswered(c.res.status);
  });
  app.openapi(objectRoute, async (c) => {
    const { timeline, name } = c.req.valid("param");
    const parsed = parseSegmentObjectName(name);
    if (!parsed || timeline !== String(deps.primary.timeline)) {
      throw new NotFoundError(`no sealed segment ${timeline}/${name}`);
    }
    const visibility = _authorize(c, deps, clock());
    const sealed = deps.primary.spool.sealed;
    const info = await sealed.find(parsed);
    const etag = `"${info.sha256}"`;
    c.header("etag", etag);
    c.header("accept-ranges", "bytes");
    c.header(HEADER_CACHE_CONTROL, `${visibility}, max-age=${SEGMENT_CACHE_MAX_AGE_S}, immutable`);
    if (etagMatches(c.req.header("if-none-match"), etag)) return c.body(null, 304) as never;
    const range = _range(c, info, etag);
    const reader = await sealed.open(parsed);
    const counted = (bytes: number) => deps.metrics?.transfers.segmentBytes(bytes);
    const body = reader.stream(range, counted);
    c.header("content-type", FRAMES_MEDIA_TYPE);
    c.header("content-length", String(range.end - range.start));
    if (!range.partial) return c.body(body, 200) as never;
    c.header("content-range", `bytes ${range.start}-${range.end - 1}/${info.sizeBytes}`);
    return c.body(body, 206) as never;
  });
  return app;
}

/**
 * Who may fetch a segment: anyone without tokens (`public`); with tokens, a valid signed URL
 * (`public`: the signature is in the URL, so a cache keyed on it serves only its holders) or a
 * replica or admin token (`private`: no shared cache may keep it). A bad or expired signature is
 * 403, whatever the token.
 */
function _authorize(c: Context<AppEnv>, deps: AppDeps, nowMs: number): "public" | "private" {
  if (!deps.auth.enabled) return "public";
  const query = {
    kid: c.req.query(SIGNED_URL_KID),
    exp: c.req.query(SIGNED_URL_EXP),
    sig: c.req.query(SIGNED_URL_SIG),
  };
  if (query.kid === undefined && query.exp === undefined && query.sig === undefined) {
    requireRole(c, "replica");
    return "private";
  }
  const refusal = deps.auth.urlSigner.refusal(new URL(c.req.url).pathname, query, nowMs);
  if (refusal !== undefined) throw new ForbiddenError(refusal);
  return "public";
}

/** The byte range to send (the whole segment without `Range`); 416 when it is past the end. */
function _range(
  c: Context<AppEnv>,
  info: SealedSegmentInfo,
  etag: string,
): { start: number; end: number; partial: boolean } {
  const headers = { range: c.req.header("range"), ifRange: c.req.header("if-range") };
  const answer = byteRangeOf(headers, info.sizeBytes, etag);
  if (answer.kind === "unsatisfiable") {
    c.header("content-range", `bytes */${info.sizeBytes}`);
    throw new RangeNotSatisfiableError(info.sizeBytes);
  }
  if (answer.kind === "part") return { start: answer.start, end: answer.end, partial: true };
  return { start: 0, end: info.sizeBytes, partial: false };
}
