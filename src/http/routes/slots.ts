/** `GET /v1/slots` and `DELETE /v1/slots/:id` (SPEC.md 9.1, admin): list and drop slots. */

import { createRoute, z } from "@hono/zod-openapi";
import { NotFoundError } from "../../core/errors.ts";
import { requireRole } from "../guards.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { errorResponses, replicaIdParams } from "../schemas.ts";
import { slotView } from "../views.ts";

const listRoute = createRoute({
  method: "get",
  path: "/v1/slots",
  tags: ["admin"],
  responses: {
    200: {
      description: "every replication slot",
      content: {
        "application/json": {
          schema: z.object({ slots: z.array(z.record(z.string(), z.unknown())) }),
        },
      },
    },
    ...errorResponses(401, 403),
  },
});

const dropRoute = createRoute({
  method: "delete",
  path: "/v1/slots/{id}",
  tags: ["admin"],
  request: { params: replicaIdParams },
  responses: {
    200: {
      description: "dropped (persisted before this answer)",
      content: {
        "application/json": {
          schema: z.object({ ok: z.literal(true), replica_id: z.string() }),
        },
      },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

/** Slot routes (admin). */
export function slotRoutes(deps: AppDeps) {
  const app = newRouter();
  app.openapi(listRoute, (c) => {
    requireRole(c, "admin");
    const slots = deps.primary.slots.all().map((slot) => slotView(deps.primary, slot));
    return c.json({ slots }, 200);
  });
  app.openapi(dropRoute, async (c) => {
    const { id } = c.req.valid("param");
    requireRole(c, "admin");
    if (!(await deps.primary.dropSlot(id))) {
      throw new NotFoundError(`no slot for replica ${id}`, { replica_id: id });
    }
    return c.json({ ok: true as const, replica_id: id }, 200);
  });
  return app;
}
