/**
 * The replica's HTTP server (SPEC.md 9.7), under the primary's auth rules (SPEC.md section 10):
 * `GET /v1/records/:collection/:key` with `min_lsn` bookmark waits (writer), `/v1/status`,
 * `/metrics` and `/openapi.json` (admin), `/healthz` and `/readyz` (anyone).
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import type { EventHub } from "../core/events.ts";
import type { Logger } from "../core/log.ts";
import { replicaMetrics } from "../metrics/replica_metrics.ts";
import type { ReplicaRuntime } from "../replica/runtime.ts";
import type { Auth } from "./auth.ts";
import { authenticateRequests, requireRole, roleGuard } from "./guards.ts";
import { type AppEnv, finishApp, newRouter } from "./router.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { uiRoutes } from "./routes/ui.ts";
import { recordReadRoutes } from "./routes/record_read.ts";

/** The replica's app over a running runtime. No I/O happens here; `app/` serves it. */
export function createReplicaApp(
  runtime: ReplicaRuntime,
  options: { auth: Auth; logger: Logger; isReady: () => boolean; events?: EventHub },
): OpenAPIHono<AppEnv> {
  const app = newRouter();
  const registry = replicaMetrics(runtime);
  app.use("*", ...authenticateRequests(options.auth));
  app.route("/", healthRoutes(options));
  app.get("/v1/status", roleGuard("admin"), (c) => c.json(runtime.status()));
  app.get(
    "/metrics",
    roleGuard("admin"),
    async (c) => c.body(await registry.metrics(), 200, { "content-type": registry.contentType }),
  );
  app.route(
    "/",
    recordReadRoutes({ reader: () => runtime, authorize: (c) => requireRole(c, "writer") }),
  );
  app.route("/", eventRoutes(options));
  app.route("/", uiRoutes(options));
  app.use("/openapi.json", roleGuard("admin"));
  app.doc("/openapi.json", {
    openapi: "3.0.0",
    info: {
      title: "ferry replica",
      version: "1",
      description: "ferry's edge replica, HTTP API v1",
    },
  });
  finishApp(app, options.logger);
  return app;
}
