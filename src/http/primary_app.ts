/**
 * `createApp(deps)`: ferry's one Hono app (SPEC.md section 9). One sub-app per resource, zod
 * schemas through `@hono/zod-openapi` (served at `/openapi.json`), one error shape, one `onError`
 * mapping domain errors to statuses, one `notFound`.
 *
 * @module
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import { routePath } from "hono/route";
import type { Auth } from "./auth.ts";
import { errorResponse, validationHook } from "./errors.ts";
import { FerryError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Metrics } from "../metrics/primary_metrics.ts";
import type { Primary } from "../replication/primary.ts";
import type { SnapshotServer } from "../replication/snapshot.ts";
import { recordReadRoutes, type StateReader } from "./routes/record_read.ts";
import { snapshotRoutes } from "./routes/snapshot.ts";
import { type AppEnv, requireRole } from "./guards.ts";
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
  /** The materialised state (reads with `min_lsn`, status), when this primary keeps one. */
  state?: StateReader;
  /** Snapshot streams, when this primary serves them. */
  snapshots?: SnapshotServer;
}

/** Routes where HEAD (a GET without the body) is harmless. */
const _HEAD_ALLOWED = new Set(["/healthz", "/readyz"]);

/** A sub-app with ferry's validation hook. */
export function newRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/** Builds the app. No I/O happens here; `main.ts` serves it with `Deno.serve`. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.use("*", async (c, next) => {
    // Hono answers HEAD by running the GET handler: pulls, snapshots and reads have effects.
    if (c.req.method === "HEAD" && !_HEAD_ALLOWED.has(new URL(c.req.url).pathname)) {
      c.header("allow", "GET");
      throw new FerryError("method_not_allowed", "HEAD is not supported on this route; use GET");
    }
    await next();
  });
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
  if (deps.state) {
    const state = deps.state;
    app.route(
      "/",
      recordReadRoutes<AppEnv>({ reader: () => state, authorize: (c) => requireRole(c, "writer") }),
    );
  }
  app.route("/", snapshotRoutes(deps));
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
