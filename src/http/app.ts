/**
 * `createApp(deps)`: ferry's one Hono app (SPEC.md section 9). One sub-app per resource, zod
 * schemas through `@hono/zod-openapi` (served at `/openapi.json`), one error shape, one `onError`
 * mapping domain errors to statuses, one `notFound`.
 *
 * @module
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { routePath } from "hono/route";
import type { Auth } from "../auth.ts";
import { BadRequestError, FerryError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Primary } from "../replication/primary.ts";
import type { AppEnv } from "./guards.ts";
import { adminRoutes } from "./routes/admin.ts";
import { healthRoutes } from "./routes/health.ts";
import { recordRoutes } from "./routes/records.ts";
import { replicaRoutes } from "./routes/replicas.ts";
import { topologyRoutes } from "./routes/topology.ts";
import { walRoutes } from "./routes/wal.ts";

/** Size limits of write requests (from the config). */
export interface WriteLimits {
  requestBytesMax: number;
  recordBytesMax: number;
  requestRecordsMax: number;
}

/** Everything the routes need, opened by `main.ts` and passed in. */
export interface AppDeps {
  primary: Primary;
  auth: Auth;
  metrics?: Metrics;
  limits: WriteLimits;
  failOnCommitTimeout: boolean;
  /** False while starting or draining (`/readyz` answers 503). */
  isReady: () => boolean;
  logger: Logger;
  clock?: () => number;
  /** LSN the materialised state has applied (status and metrics), when there is one. */
  appliedLsn?: () => number;
}

/** HTTP status of each domain error code. */
const STATUS_BY_CODE: Record<string, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  rebootstrap_required: 409,
  stale_term: 409,
  term_ahead: 409,
  payload_too_large: 413,
  insufficient_storage: 507,
  overloaded: 503,
  not_ready: 503,
  unavailable: 503,
  wal_corrupt: 500,
  corrupt_frame: 500,
};

/** Seconds a client should wait before retrying a 503. */
const RETRY_AFTER_SECONDS = 1;

/** Error code of a bare HTTP status (for Hono's own exceptions: body limit, bad JSON, media type). */
function _codeOfStatus(status: number): string {
  if (status === 413) return "payload_too_large";
  if (status === 415) return "unsupported_media_type";
  if (status === 401) return "unauthorized";
  if (status >= 400 && status < 500) return "bad_request";
  return "internal";
}

/** Writes the one JSON error shape: `{"error", "message", ...details}`. */
export function errorResponse(c: Context, error: unknown, logger: Logger): Response {
  if (error instanceof FerryError) {
    const status = STATUS_BY_CODE[error.code] ?? 500;
    if (status === 503) c.header("retry-after", String(RETRY_AFTER_SECONDS));
    if (status >= 500) logger.error("http.error", { code: error.code, message: error.message });
    return c.json({ ...error.details, error: error.code, message: error.message }, status as 400);
  }
  if (error instanceof HTTPException) {
    const status = error.status;
    const message = error.message || "the request could not be processed";
    return c.json({ error: _codeOfStatus(status), message }, status);
  }
  logger.error("http.internal_error", { error, stack: (error as Error)?.stack });
  return c.json({ error: "internal", message: "internal error; the server log has details" }, 500);
}

/** Validation failures of zod schemas become one 400 with every issue listed. */
export function validationHook(
  result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } },
): void {
  if (result.success) return;
  const issues = (result.error?.issues ?? []).map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const first = issues[0];
  throw new BadRequestError(
    first ? `invalid ${first.path || "request"}: ${first.message}` : "invalid request",
    { issues },
  );
}

/** A sub-app with ferry's validation hook. */
export function newRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** Builds the app. No I/O happens here; `main.ts` serves it with `Deno.serve`. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.use("*", async (c, next) => {
    c.set("auth", deps.auth.authenticate(c.req.header("authorization")));
    await next();
    if (deps.metrics) {
      const route = routePath(c, -1);
      deps.metrics.observeHttp(route === "*" || route === "/*" ? "unmatched" : route, c.res.status);
    }
  });
  app.route("/", healthRoutes(deps));
  app.route("/", recordRoutes(deps));
  app.route("/", walRoutes(deps));
  app.route("/", replicaRoutes(deps));
  app.route("/", topologyRoutes(deps));
  app.route("/", adminRoutes(deps));
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: { title: "ferry", version: "1", description: "ferry's replication primary, HTTP API v1" },
  });
  app.notFound((c) =>
    c.json({
      error: "not_found",
      message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}`,
    }, 404)
  );
  app.onError((error, c) => errorResponse(c, error, deps.logger));
  return app;
}
