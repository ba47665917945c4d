/** `GET /metrics` (SPEC.md 11, admin): the Prometheus text exposition. */

import { createRoute, z } from "@hono/zod-openapi";
import { UnavailableError } from "../../core/errors.ts";
import { requireRole } from "../guards.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { errorResponses } from "../schemas.ts";

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["admin"],
  responses: {
    200: {
      description: "Prometheus text exposition",
      content: { "text/plain": { schema: z.string() } },
    },
    ...errorResponses(401, 403, 503),
  },
});

/** Metrics route (admin). */
export function metricsRoutes(deps: AppDeps) {
  const app = newRouter();
  app.openapi(metricsRoute, async (c) => {
    requireRole(c, "admin");
    if (!deps.metrics) throw new UnavailableError("metrics are not enabled");
    const text = await deps.metrics.render();
    return c.body(text, 200, { "content-type": deps.metrics.contentType }) as never;
  });
  return app;
}
