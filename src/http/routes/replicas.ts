/**
 * Replica routes (SPEC.md 9.1): register, ack, the `rebootstrapping` flag (each by the replica
 * itself or an admin), and unregister (admin; frees commit waits).
 */

import { createRoute, z } from "@hono/zod-openapi";
import { NotFoundError } from "../../core/errors.ts";
import { SMALL_BODY_BYTES_MAX } from "../../core/limits.ts";
import { type AppDeps, newRouter } from "../router.ts";
import { replicaSelfGuard, requireReplicaSelf, requireRole } from "../guards.ts";
import { errorResponses, jsonBody, jsonUint, regionSchema, replicaIdParams } from "../schemas.ts";
import { replicaView } from "../views.ts";

const registerBody = z.object({ region: regionSchema.optional(), since_lsn: jsonUint.optional() })
  .strict();
const registerResponse = z
  .object({
    resume_lsn: z.number(),
    term: z.number(),
    timeline: z.number(),
    current_lsn: z.number(),
  })
  .openapi("RegisterResponse");

const ackBody = z
  .object({
    applied_lsn: jsonUint,
    durable_lsn: jsonUint.optional(),
    apply_errors_total: jsonUint.optional(),
    divergence_total: jsonUint.optional(),
  })
  .strict();
const ackResponse = z
  .object({
    ok: z.literal(true),
    replica_id: z.string(),
    applied_lsn: z.number(),
    durable_lsn: z.number(),
    apply_errors_total: z.number(),
    divergence_total: z.number(),
  })
  .openapi("AckResponse");

const flagBody = z.object({ rebootstrapping: z.boolean() }).strict();
const okResponse = z.object({ ok: z.literal(true), replica_id: z.string() });
const json = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});
const small = () => [replicaSelfGuard(), ...jsonBody(SMALL_BODY_BYTES_MAX)];

const registerRoute = createRoute({
  method: "put",
  path: "/v1/replicas/{id}",
  tags: ["replication"],
  middleware: small(),
  request: { params: replicaIdParams, body: json(registerBody) },
  responses: {
    200: {
      description: "registered; resume after resume_lsn",
      content: { "application/json": { schema: registerResponse } },
    },
    ...errorResponses(400, 401, 403, 409, 503),
  },
});

const ackRoute = createRoute({
  method: "post",
  path: "/v1/replicas/{id}/ack",
  tags: ["replication"],
  middleware: small(),
  request: { params: replicaIdParams, body: json(ackBody) },
  responses: {
    200: { description: "recorded", content: { "application/json": { schema: ackResponse } } },
    ...errorResponses(400, 401, 403, 404),
  },
});

const flagRoute = createRoute({
  method: "put",
  path: "/v1/replicas/{id}/rebootstrapping",
  tags: ["replication"],
  middleware: small(),
  request: { params: replicaIdParams, body: json(flagBody) },
  responses: {
    200: {
      description: "the replica as topology now shows it",
      content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

const unregisterRoute = createRoute({
  method: "delete",
  path: "/v1/replicas/{id}",
  tags: ["admin"],
  request: { params: replicaIdParams },
  responses: {
    200: {
      description: "unregistered; its commit waits are freed",
      content: { "application/json": { schema: okResponse } },
    },
    ...errorResponses(400, 401, 403, 404),
  },
});

/** Replica routes: register, ack and the flag by the replica itself (or admin); unregister (admin). */
export function replicaRoutes(deps: AppDeps) {
  const app = newRouter();
  app.openapi(registerRoute, (c) => {
    const { id } = c.req.valid("param");
    requireReplicaSelf(c, id);
    const body = c.req.valid("json");
    const result = deps.primary.register(id, { region: body.region, sinceLsn: body.since_lsn });
    return c.json({
      resume_lsn: result.resumeLsn,
      term: result.term,
      timeline: result.timeline,
      current_lsn: result.currentLsn,
    }, 200);
  });
  app.openapi(ackRoute, (c) => {
    const { id } = c.req.valid("param");
    requireReplicaSelf(c, id);
    const body = c.req.valid("json");
    const state = deps.primary.ack(id, {
      appliedLsn: body.applied_lsn,
      durableLsn: body.durable_lsn,
      applyErrorsTotal: body.apply_errors_total,
      divergenceTotal: body.divergence_total,
    });
    return c.json({
      ok: true as const,
      replica_id: id,
      applied_lsn: state.lastAckedLsn,
      durable_lsn: state.lastDurableLsn,
      apply_errors_total: state.applyErrorCount,
      divergence_total: state.divergenceCount,
    }, 200);
  });
  app.openapi(flagRoute, (c) => {
    const { id } = c.req.valid("param");
    requireReplicaSelf(c, id);
    const state = deps.primary.setRebootstrapping(id, c.req.valid("json").rebootstrapping);
    return c.json(replicaView(deps.primary, state), 200);
  });
  app.openapi(unregisterRoute, (c) => {
    const { id } = c.req.valid("param");
    requireRole(c, "admin");
    if (!deps.primary.unregister(id)) {
      throw new NotFoundError(`replica ${id} is not registered`, { replica_id: id });
    }
    return c.json({ ok: true as const, replica_id: id }, 200);
  });
  return app;
}
