/**
 * `createApp(deps)`: the primary's Hono app (SPEC.md section 9). One sub-app per resource, zod
 * schemas through `@hono/zod-openapi` (served at `/openapi.json`), one error shape, one `onError`
 * mapping domain errors to statuses, one `notFound`.
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import { routePath } from "hono/route";
import { FerryError } from "../core/errors.ts";
import { requireRole } from "./guards.ts";
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

/** Routes where HEAD (a GET without the body) is harmless. */
const _HEAD_ALLOWED = new Set(["/healthz", "/readyz"]);

/** Builds the app. No I/O happens here; `app/` serves it with `Deno.serve`. */
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
  _mountRoutes(app, deps);
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
