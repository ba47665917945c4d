/**
 * `GET /v1/topology` (SPEC.md 9.5): the primary, the epoch (also as the ETag), and, for
 * authenticated callers, the replicas with health and lag. `?wait_epoch=E` holds until the epoch
 * differs from E or `await_timeout_ms` passes.
 */

import { createRoute, z } from "@hono/zod-openapi";
import { PULL_WAIT_MS_MAX } from "../../core/limits.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { isAuthenticated } from "../guards.ts";
import { errorResponses, queryUint, queryUintClamped } from "../schemas.ts";

const topologyQuery = z.object({
  wait_epoch: queryUint.optional(),
  await_timeout_ms: queryUintClamped(PULL_WAIT_MS_MAX).optional(),
});

const topologyResponse = z
  .object({
    epoch: z.number(),
    primary: z.object({
      url: z.string(),
      region: z.string(),
      term: z.number(),
      timeline: z.number(),
      current_lsn: z.number(),
    }),
    replicas: z.array(z.object({
      id: z.string(),
      region: z.string(),
      healthy: z.boolean(),
      rebootstrapping: z.boolean(),
      last_applied_lsn: z.number(),
      lag_lsn: z.number(),
      lag_ms: z.number(),
    })),
  })
  .openapi("Topology");

/** Topology route; anyone may read it, only authenticated callers see the replicas. */
export function topologyRoutes(deps: AppDeps) {
  const app = newRouter();
  const route = createRoute({
    method: "get",
    path: "/v1/topology",
    tags: ["topology"],
    request: { query: topologyQuery },
    responses: {
      200: {
        description: "the current topology",
        content: { "application/json": { schema: topologyResponse } },
      },
      ...errorResponses(400, 503),
    },
  });
  app.openapi(route, async (c) => {
    const query = c.req.valid("query");
    if (query.wait_epoch !== undefined) {
      await deps.primary.epoch.waitForChange(query.wait_epoch, {
        timeoutMs: query.await_timeout_ms ?? 0,
        signal: c.req.raw.signal,
      });
    }
    const document = deps.primary.topology({ includeReplicas: isAuthenticated(c) });
    c.header("etag", `"${document.epoch}"`);
    // In a cluster every node names the leader it knows (null during an election).
    return c.json(deps.leader ? { ...document, leader: deps.leader() } : document, 200);
  });
  return app;
}
