/**
 * `createApp(deps)`: the primary's Hono app (SPEC.md section 9). One sub-app per resource, zod
 * schemas through `@hono/zod-openapi` (served at `/openapi.json`, admin like `/v1/status`), one
 * error shape, one `onError` mapping domain errors to statuses, one `notFound`.
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import { routePath } from "hono/route";
import { authenticateRequests, requireRole, roleGuard } from "./guards.ts";
import { type AppDeps, type AppEnv, finishApp, newRouter } from "./router.ts";
import { healthRoutes } from "./routes/health.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { recordReadRoutes } from "./routes/record_read.ts";
import { recordRoutes } from "./routes/records.ts";
import { replicaRoutes } from "./routes/replicas.ts";
import { slotRoutes } from "./routes/slots.ts";
import { snapshotRoutes } from "./routes/snapshot.ts";
import { statusRoutes } from "./routes/status.ts";
import { topologyRoutes } from "./routes/topology.ts";
import { walRoutes } from "./routes/wal.ts";

/** Builds the app. No I/O happens here; `app/` serves it with `Deno.serve`. */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.use("*", ...authenticateRequests(deps.auth));
  const metrics = deps.metrics;
  if (metrics) {
    app.use("*", async (c, next) => {
      await next();
      const route = routePath(c, -1);
      metrics.observeHttp(route === "*" || route === "/*" ? "unmatched" : route, c.res.status);
    });
  }
  _mountRoutes(app, deps);
  app.use("/openapi.json", roleGuard("admin"));
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: { title: "ferry", version: "1", description: "ferry's replication primary, HTTP API v1" },
  });
  finishApp(app, deps.logger);
  return app;
}

function _mountRoutes(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.route("/", healthRoutes(deps));
  app.route("/", recordRoutes(deps));
  const state = deps.state;
  if (state) {
    app.route(
      "/",
      recordReadRoutes({ reader: () => state, authorize: (c) => requireRole(c, "writer") }),
    );
  }
  app.route("/", snapshotRoutes(deps));
  app.route("/", walRoutes(deps));
  app.route("/", replicaRoutes(deps));
  app.route("/", topologyRoutes(deps));
  app.route("/", statusRoutes(deps));
  app.route("/", slotRoutes(deps));
  app.route("/", metricsRoutes(deps));
}
