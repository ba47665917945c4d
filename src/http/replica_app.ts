/**
 * The replica's HTTP server (SPEC.md 9.7): `GET /v1/records/:collection/:key` with `min_lsn`
 * bookmark waits, `/v1/status`, `/metrics`, `/healthz`, `/readyz`. Reads are open to anyone; a
 * replica serves what it has applied.
 *
 * @module
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Logger } from "../core/log.ts";
import { replicaMetrics } from "../metrics/replica_metrics.ts";
import type { ReplicaRuntime } from "../replica/runtime.ts";
import { type AppEnv, finishApp, newRouter } from "./router.ts";
import { healthRoutes } from "./routes/health.ts";
import { recordReadRoutes } from "./routes/record_read.ts";

/** The replica's app over a running runtime. */
export function createReplicaApp(
  runtime: ReplicaRuntime,
  options: { logger: Logger; isReady: () => boolean },
): OpenAPIHono<AppEnv> {
  const app = newRouter();
  const registry = replicaMetrics(runtime);
  app.route("/", healthRoutes(options));
  app.get("/v1/status", (c) => c.json(runtime.status()));
  app.get(
    "/metrics",
    async (c) => c.body(await registry.metrics(), 200, { "content-type": registry.contentType }),
  );
  app.route("/", recordReadRoutes({ reader: () => runtime }));
  finishApp(app, options.logger);
  return app;
}
