/**
 * `GET /v1/snapshot?replica_id=&after=` (SPEC.md 9.4): a streamed NDJSON snapshot of the
 * materialised state, by the replica itself (or an admin). Its slot is pinned first.
 */

import { createRoute, z } from "@hono/zod-openapi";
import { BadRequestError, UnavailableError } from "../../core/errors.ts";
import { COLLECTION_PATTERN, isRecordKey } from "../../model/ids.ts";
import {
  HEADER_SNAPSHOT_ENTRIES,
  NDJSON_MEDIA_TYPE,
  parseSnapshotCursor,
} from "../../model/wire.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { boundReplicaId } from "../guards.ts";
import { errorResponses, replicaIdSchema } from "../schemas.ts";

const snapshotQuery = z.object({
  replica_id: replicaIdSchema.optional(),
  after: z.string().min(3).max(2048).optional().openapi({ example: "users/u42" }),
});

/** Snapshot route (replica role). */
export function snapshotRoutes(deps: AppDeps) {
  const app = newRouter();
  const route = createRoute({
    method: "get",
    path: "/v1/snapshot",
    tags: ["replication"],
    request: { query: snapshotQuery },
    responses: {
      200: {
        description:
          "header line, entry lines in (collection, key) order, trailer line with end_lsn, count, crc32",
        content: { [NDJSON_MEDIA_TYPE]: { schema: z.string() } },
      },
      ...errorResponses(400, 401, 403, 409, 503),
    },
  });
  app.openapi(route, async (c) => {
    const query = c.req.valid("query");
    const replicaId = boundReplicaId(c, query.replica_id, "snapshot");
    if (replicaId === undefined) {
      throw new BadRequestError("replica_id is required: the snapshot pins its slot");
    }
    const after = query.after === undefined ? undefined : parseSnapshotCursor(query.after);
    const cursorValid = after === undefined ||
      (COLLECTION_PATTERN.test(after.collection) && isRecordKey(after.key));
    if ((query.after !== undefined && after === undefined) || !cursorValid) {
      throw new BadRequestError(
        `after must be <collection>/<key> naming a valid collection and key, got ${
          JSON.stringify(query.after)
        }`,
      );
    }
    if (!deps.snapshots) throw new UnavailableError("snapshots are not served by this process");
    const opened = await deps.snapshots.open(replicaId, after);
    return c.body(opened.body, 200, {
      "content-type": NDJSON_MEDIA_TYPE,
      [HEADER_SNAPSHOT_ENTRIES]: String(opened.entries),
    }) as never;
  });
  return app;
}
