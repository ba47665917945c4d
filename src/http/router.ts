/**
 * What every route module shares: the Hono environment (`AppEnv`: the caller's auth), the
 * dependencies the primary's routes are built from (`AppDeps`), a sub-app factory with ferry's
 * validation hook, and the one not-found and error handling both apps end with. Routes import this
 * module, never the app that mounts them.
 *
 * @module
 */

import { OpenAPIHono } from "@hono/zod-openapi";
import type { EventHub } from "../core/events.ts";
import type { Logger } from "../core/log.ts";
import type { Metrics } from "../metrics/primary_metrics.ts";
import type { Primary } from "../replication/primary.ts";
import type { SnapshotServer } from "../replication/snapshot.ts";
import type { StateReader } from "../state/reader.ts";
import type { Auth, AuthResult } from "./auth.ts";
import { errorResponse, validationHook } from "./errors.ts";
import { CACHE_CONTROL_NO_STORE, HEADER_CACHE_CONTROL } from "../model/wire.ts";

/** Hono variables every route may read. */
export type AppEnv = { Variables: { auth: AuthResult } };

/** Size limits of write requests (from the config). */
export interface WriteLimits {
  requestBytesMax: number;
  recordBytesMax: number;
  requestRecordsMax: number;
}

/** Everything the primary's routes need, opened by `app/` and passed in. */
export interface AppDeps {
  primary: Primary;
  auth: Auth;
  metrics?: Metrics;
  limits: WriteLimits;
  failOnCommitTimeout: boolean;
  /** False while starting or draining (`/readyz` answers 503). */
  isReady: () => boolean;
  logger: Logger;
  clock?: () => number;
  /** The materialised state (reads with `min_lsn`, status), when this primary keeps one. */
  state?: StateReader;
  /**
   * Asked by each write before its body is read: undefined to go on, or a wait while the state is
   * too far behind (`BacklogGate.pass`; it throws `OverloadedError` when it ends in vain).
   */
  writeGate?: (request: Request) => Promise<void> | undefined;
  /** Snapshot streams, when this primary serves them. */
  snapshots?: SnapshotServer;
  /** Live events (`GET /v1/events`), when enabled. */
  events?: EventHub;
  /**
   * Where writes go instead (a relay's upstream, a standby's leader): `POST /v1/records` answers
   * 307 there; null while there is no leader (503 `no_leader`).
   */
  writesGoTo?: () => string | null;
  /** A leader's fencing check (SPEC.md 13.4): throws `NotLeaderError` past its deadline. */
  fence?: () => void;
  /** In a cluster: what became of a write (`GET /v1/commits/:term/:lsn`, SPEC.md 13.4). */
  commits?: (write: { term: number; lsn: number }) => {
    outcome: "committed" | "lost" | "unknown";
    leader: { node_id: string; url: string; term: number } | null;
  };
  /** The cluster's leader, for `/v1/topology` (SPEC.md 13.4). */
  leader?: () => { node_id: string; url: string; term: number } | null;
  /** A relay's follower, shown in `/v1/status` as `upstream`. */
  upstream?: () => Record<string, unknown>;
  /** False on a replica that keeps its log without serving it (`--keep-wal` alone). */
  servesLog?: boolean;
}

/** A sub-app with ferry's validation hook. */
export function newRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

/**
 * The last handlers of an app: a known path with another method is 405 with `Allow` (SPEC.md
 * 13.5), an unknown path a JSON 404, and every error goes through the one error mapping.
 */
export function finishApp(app: OpenAPIHono<AppEnv>, logger: Logger): void {
  const routes = app.routes
    .filter((route) => route.method !== "ALL" && !route.path.includes("*"))
    .map((route) => ({ method: route.method, pattern: _pathPattern(route.path) }));
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    c.header(HEADER_CACHE_CONTROL, CACHE_CONTROL_NO_STORE);
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))];
    if (allowed.length > 0) {
      c.header("allow", allowed.sort().join(", "));
      return c.json({
        error: "method_not_allowed",
        message: `${c.req.method} is not allowed on ${path}; use ${allowed.join(" or ")}`,
        allow: allowed,
      }, 405);
    }
    return c.json({ error: "not_found", message: `no route for ${c.req.method} ${path}` }, 404);
  });
  app.onError((error, c) => errorResponse(c, error, logger));
}

/** A route path (`/v1/replicas/:id`) as a regular expression of the paths it matches. */
function _pathPattern(path: string): RegExp {
  const escaped = path.split("/").map((part) =>
    part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  );
  return new RegExp(`^${escaped.join("/")}$`);
}
