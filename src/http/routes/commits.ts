/**
 * `GET /v1/commits/:term/:lsn` (SPEC.md 13.4): what became of the write made in `term` at `lsn`,
 * after a `503 commit_unknown`. `committed` and `lost` are final; `unknown` means ask again later
 * (the leader, named in the answer, knows the commit LSN). A single primary never forks: a record it
 * holds in its own term is committed.
 */

import { createRoute, z } from "@hono/zod-openapi";
import { type AppDeps, newRouter } from "../router.ts";
import { requireRole } from "../guards.ts";
import { errorResponses } from "../schemas.ts";

const commitParams = z.object({
  term: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  lsn: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});

const leaderSchema = z.object({ node_id: z.string(), url: z.string(), term: z.number() });

const commitResponse = z.object({
  term: z.number(),
  lsn: z.number(),
  outcome: z.enum(["committed", "lost", "unknown"]),
  leader: leaderSchema.nullable(),
}).openapi("CommitOutcome");

/** Commit outcome route (writer role: whoever may write may ask about a write). */
export function commitRoutes(deps: AppDeps) {
  const app = newRouter();
  const route = createRoute({
    method: "get",
    path: "/v1/commits/{term}/{lsn}",
    tags: ["writes"],
    request: { params: commitParams },
    responses: {
      200: {
        description: "committed, lost or unknown",
        content: { "application/json": { schema: commitResponse } },
      },
      ...errorResponses(400, 401, 403),
    },
  });
  app.openapi(route, (c) => {
    requireRole(c, "writer");
    const { term, lsn } = c.req.valid("param");
    if (deps.commits) {
      const { outcome, leader } = deps.commits({ term, lsn });
      return c.json({ term, lsn, outcome, leader }, 200);
    }
    const primary = deps.primary;
    const held = term === primary.term && lsn <= primary.spool.currentLsn();
    return c.json({
      term,
      lsn,
      outcome: held ? "committed" as const : "unknown" as const,
      leader: null,
    }, 200);
  });
  return app;
}
