/**
 * `createApp(deps)`: the primary's Hono app (SPEC.md section 9). One sub-app per resource, zod
 * schemas through `@hono/zod-openapi` (served at `/openapi.json`, admin like `/v1/status`), one
 * error shape, one `onError` mapping domain errors to statuses, one `notFound`.
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import { routePath } from "hono/route";
import type { MiddlewareHandler } from "hono";
import { authenticateRequest, requireRole, roleGuard } from "./guards.ts";
import { type AppDeps, type AppEnv, finishApp, newRouter } from "./router.ts";
import { commitRoutes } from "./routes/commits.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { recordReadRoutes } from "./routes/record_read.ts";
import { recordRoutes } from "./routes/records.ts";
import { replicaRoutes } from "./routes/replicas.ts";
import { segmentRoutes } from "./routes/segments.ts";
import { slotRoutes } from "./routes/slots.ts";
import { snapshotRoutes } from "./routes/snapshot.ts";
import { statusRoutes } from "./routes/status.ts";
import { topologyRoutes } from "./routes/topology.ts";
import { uiRoutes } from "./routes/ui.ts";
import { walRoutes } from "./routes/wal.ts";

/** Builds the app. No I/O happens here; `app/` serves it with `Deno.serve`. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.use("*", _frontDoor(deps));
  _mountRoutes(app, deps);
  app.use("/openapi.json", roleGuard("admin"));
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: { title: "ferry", version: "1", description: "ferry's replication primary, HTTP API v1" },
  });
  finishApp(app, deps.logger);
  return app;
}

/**
 * The one middleware every request passes: authentication, then (after the route) the response
 * counted by route pattern. One layer instead of one per concern: each layer is a promise more on
 * every write.
 */
function _frontDoor(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const { auth, metrics } = deps;
  return async (c, next) => {
    authenticateRequest(c, auth);
    await next();
    if (!metrics) return;
    const route = routePath(c, -1);
    metrics.observeHttp(route === "*" || route === "/*" ? "unmatched" : route, c.res.status);
  };
}

function _mountRoutes(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.route("/", healthRoutes(deps));
  app.route("/", recordRoutes(deps));
  app.route("/", commitRoutes(deps));
  const state = deps.state;
  if (state) {
    app.route(
      "/",
      recordReadRoutes({ reader: () => state, authorize: (c) => requireRole(c, "writer") }),
    );
  }
  if (deps.servesLog !== false) {
    app.route("/", snapshotRoutes(deps));
    app.route("/", walRoutes(deps));
    app.route("/", replicaRoutes(deps));
    app.route("/", segmentRoutes(deps));
  }
  app.route("/", topologyRoutes(deps));
  app.route("/", statusRoutes(deps));
  app.route("/", slotRoutes(deps));
  app.route("/", metricsRoutes(deps));
  app.route("/", eventRoutes(deps));
  app.route("/", uiRoutes(deps));
}
