/** `GET /healthz` (liveness) and `GET /readyz` (open and not draining). */

import { createRoute, z } from "@hono/zod-openapi";
import { newRouter } from "../router.ts";
import { errorResponses } from "../schemas.ts";
import { NotReadyError } from "../../core/errors.ts";

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["health"],
  responses: {
    200: {
      description: "the process is alive",
      content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } },
    },
  },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["health"],
  responses: {
    200: {
      description: "the spool, slots and KV are open",
      content: { "application/json": { schema: z.object({ ready: z.literal(true) }) } },
    },
    ...errorResponses(503),
  },
});

/** Health routes; open to anyone. */
export function healthRoutes(options: { isReady: () => boolean }) {
  const app = newRouter();
  app.openapi(healthz, (c) => c.json({ ok: true as const }, 200));
  app.openapi(readyz, (c) => {
    if (!options.isReady()) throw new NotReadyError();
    return c.json({ ready: true as const }, 200);
  });
  return app;
}
