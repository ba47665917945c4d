/** Admin routes (SPEC.md 9.1, 9.6, 11): status, slots (list, drop), and `/metrics`. */

import { createRoute, z } from "@hono/zod-openapi";
import { NotFoundError, UnavailableError } from "../../core/errors.ts";
import type { AppDeps } from "../primary_app.ts";
import { newRouter } from "../primary_app.ts";
import { requireRole } from "../guards.ts";
import { errorResponses, replicaIdParams } from "../schemas.ts";
import { slotView, statusView } from "../views.ts";

const anyObject = z.record(z.string(), z.unknown());

/** Admin routes. */
export function adminRoutes(deps: AppDeps) {
  const app = newRouter();
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/status",
      tags: ["admin"],
      responses: {
        200: {
          description: "the primary's replication status",
          content: { "application/json": { schema: anyObject.openapi("Status") } },
        },
        ...errorResponses(401, 403),
      },
    }),
    async (c) => {
      requireRole(c, "admin");
      const appliedLsn = deps.state?.appliedLsn() ?? 0;
      return c.json(
        await statusView(deps.primary, {
          appliedLsn,
          commitPolicy: deps.primary.commitPolicyFloor,
        }),
        200,
      );
    },
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/slots",
      tags: ["admin"],
      responses: {
        200: {
          description: "every replication slot",
          content: { "application/json": { schema: z.object({ slots: z.array(anyObject) }) } },
        },
        ...errorResponses(401, 403),
      },
    }),
    (c) => {
      requireRole(c, "admin");
      return c.json(
        { slots: deps.primary.slots.all().map((slot) => slotView(deps.primary, slot)) },
        200,
      );
    },
  );
  app.openapi(
    createRoute({
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
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireRole(c, "admin");
      if (!(await deps.primary.dropSlot(id))) {
        throw new NotFoundError(`no slot for replica ${id}`, { replica_id: id });
      }
      return c.json({ ok: true as const, replica_id: id }, 200);
    },
  );
  app.openapi(
    createRoute({
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
    }),
    async (c) => {
      requireRole(c, "admin");
      if (!deps.metrics) throw new UnavailableError("metrics are not enabled");
      const text = await deps.metrics.render();
      return c.body(text, 200, { "content-type": deps.metrics.contentType }) as never;
    },
  );
  return app;
}
