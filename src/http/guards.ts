/**
 * Who may call what (SPEC.md section 10): `admin` may do everything, `writer` may write and read
 * records, `replica` may pull, register, ack and snapshot as its own id and read topology.
 *
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import type { Auth, AuthRole, Principal } from "./auth.ts";
import type { AppEnv } from "./router.ts";
import { FerryError, ForbiddenError, UnauthorizedError } from "../core/errors.ts";

/** Routes where HEAD (a GET without the body) is harmless. */
const _HEAD_ALLOWED = new Set(["/healthz", "/readyz"]);

/**
 * The first step of every request in both apps (primary and replica): HEAD only on the health
 * routes, then the caller resolved from its bearer token for the guards below. With auth off
 * every caller is admin.
 */
export function authenticateRequest(c: Context<AppEnv>, auth: Auth): void {
  // Hono answers HEAD by running the GET handler: pulls, snapshots and reads have effects.
  if (c.req.method === "HEAD" && !_HEAD_ALLOWED.has(new URL(c.req.url).pathname)) {
    c.header("allow", "GET");
    throw new FerryError("method_not_allowed", "HEAD is not supported on this route; use GET");
  }
  c.set("auth", auth.authenticate(c.req.header("authorization")));
}

/** `authenticateRequest` as the first middleware of an app. */
export function authenticateRequests(auth: Auth): MiddlewareHandler<AppEnv>[] {
  return [
    async (c, next) => {
      authenticateRequest(c, auth);
      await next();
    },
  ];
}

/** The caller, or 401 when anonymous or the token is not valid. */
export function principalOf(c: Context<AppEnv>): Principal {
  const auth = c.get("auth");
  if (auth.kind === "principal") return auth.principal;
  throw new UnauthorizedError(
    auth.kind === "invalid" ? "the bearer token is not valid" : "a bearer token is required",
  );
}

/** True when the caller presented a valid token (any role). */
export function isAuthenticated(c: Context<AppEnv>): boolean {
  return c.get("auth").kind === "principal";
}

/** The caller if its role is `role` or admin; 401/403 otherwise. */
export function requireRole(c: Context<AppEnv>, role: AuthRole): Principal {
  const principal = principalOf(c);
  if (principal.role !== "admin" && principal.role !== role) {
    throw new ForbiddenError(`this route needs the ${role} role; the token has ${principal.role}`);
  }
  return principal;
}

/** The caller if it is admin or the replica `replicaId` itself; 401/403 otherwise. */
export function requireReplicaSelf(c: Context<AppEnv>, replicaId: string): Principal {
  const principal = requireRole(c, "replica");
  if (principal.role === "replica" && principal.replicaId !== replicaId) {
    throw new ForbiddenError(
      `a replica token for ${principal.replicaId} cannot act as replica ${replicaId}`,
    );
  }
  return principal;
}

/** `requireRole` as route middleware, so a caller without the role is refused before any body is read. */
export function roleGuard(role: AuthRole): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    requireRole(c, role);
    await next();
  };
}

/** `requireReplicaSelf` for the `:id` of the path, as route middleware (before any body is read). */
export function replicaSelfGuard(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    requireReplicaSelf(c, c.req.param("id") ?? "");
    await next();
  };
}

/**
 * The replica id a replica-role request acts as: a replica token is bound to its own id (another
 * id in the query is 403; none means its own); admin acts as whatever id it names, if any.
 */
export function boundReplicaId(
  c: Context<AppEnv>,
  requested: string | undefined,
  action: string,
): string | undefined {
  const principal = requireRole(c, "replica");
  if (principal.role !== "replica") return requested;
  if (requested !== undefined && requested !== principal.replicaId) {
    throw new ForbiddenError(
      `a replica token for ${principal.replicaId} cannot ${action} as ${requested}`,
    );
  }
  return principal.replicaId;
}
