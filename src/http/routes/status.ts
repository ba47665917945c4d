/** `GET /v1/status` (SPEC.md 9.6, admin): the primary's replication status. */

import { createRoute, z } from "@hono/zod-openapi";
import { requireRole } from "../guards.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { errorResponses } from "../schemas.ts";
import { statusView } from "../views.ts";

const statusRoute = createRoute({
  method: "get",
  path: "/v1/status",
  tags: ["admin"],
  responses: {
    200: {
      description: "the primary's replication status",
      content: {
        "application/json": { schema: z.record(z.string(), z.unknown()).openapi("Status") },
      },
    },
    ...errorResponses(401, 403),
  },
});

/** Status route (admin). */
export function statusRoutes(deps: AppDeps) {
  const app = newRouter();
  app.openapi(statusRoute, (c) => {
    requireRole(c, "admin");
    const view = statusView(deps.primary, {
      appliedLsn: deps.state?.appliedLsn() ?? 0,
      commitPolicy: deps.primary.commitPolicyFloor,
      stateApply: deps.state?.applyStatus?.(),
    });
    // A relay (SPEC.md 13.3): its own log and slots, and where it stands with its upstream.
    const upstream = deps.upstream?.();
    return c.json(upstream ? { ...view, role: "relay", upstream } : view, 200);
  });
  return app;
}
