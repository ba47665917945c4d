/**
 * The one JSON error shape of every ferry HTTP server (primary and replica): domain error codes
 * mapped to statuses in one table, Hono's own exceptions, and zod validation failures.
 *
 * @module
 */

import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { BadRequestError, FerryError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { RETRY_AFTER_S } from "../core/limits.ts";
import { CACHE_CONTROL_NO_STORE, HEADER_CACHE_CONTROL } from "../model/wire.ts";

/** HTTP status of each domain error code. */
const STATUS_BY_CODE: Record<string, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  rebootstrap_required: 409,
  stale_term: 409,
  term_ahead: 409,
  payload_too_large: 413,
  range_not_satisfiable: 416,
  unsupported_media_type: 415,
  insufficient_storage: 507,
  overloaded: 503,
  not_ready: 503,
  lsn_not_applied: 503,
  snapshot_busy: 503,
  unavailable: 503,
  no_leader: 503,
  not_leader: 503,
  commit_unknown: 503,
  timeline_diverged: 409,
  wal_removed: 410,
  wal_corrupt: 500,
  kv_corrupt: 500,
  corrupt_frame: 500,
  catalog_corrupt: 500,
  slots_corrupt: 500,
};

/** 503s that are part of normal operation (a client asked for something not there yet): info. */
const _ROUTINE_CODES = new Set(["lsn_not_applied", "not_ready", "snapshot_busy"]);

/** Error code of a bare HTTP status (for Hono's own exceptions: body limit, bad JSON, media type). */
function _codeOfStatus(status: number): string {
  if (status === 413) return "payload_too_large";
  if (status === 415) return "unsupported_media_type";
  if (status === 401) return "unauthorized";
  if (status >= 400 && status < 500) return "bad_request";
  return "internal";
}

/**
 * Writes the one JSON error shape: `{"error", "message", ...details}`, with `Cache-Control:
 * no-store` (SPEC.md 13.2): no cache in front of ferry may keep an error in place of an object.
 */
export function errorResponse(c: Context, error: unknown, logger: Logger): Response {
  c.header(HEADER_CACHE_CONTROL, CACHE_CONTROL_NO_STORE);
  if (error instanceof FerryError) {
    const status = STATUS_BY_CODE[error.code] ?? 500;
    if (status === 503) c.header("retry-after", String(RETRY_AFTER_S));
    _logError(logger, error, status);
    return c.json(_publicBody(error), status as 400);
  }
  if (error instanceof HTTPException) {
    const status = error.status;
    const message = error.message || "the request could not be processed";
    return c.json({ error: _codeOfStatus(status), message }, status);
  }
  logger.error("http.internal_error", { error, stack: (error as Error)?.stack });
  return c.json({ error: "internal", message: "internal error; the server log has details" }, 500);
}

/** 5xx in the log: routine ones at info, the rest at error (with the details a body leaves out). */
function _logError(logger: Logger, error: FerryError, status: number): void {
  if (status < 500) return;
  const fields = { code: error.code, message: error.message, ...error.details };
  if (_ROUTINE_CODES.has(error.code)) logger.info("http.unavailable", fields);
  else logger.error("http.error", fields);
}

/**
 * The JSON body of a domain error. A server path (a corrupt segment's, a KV file's) stays in the
 * log: the body names only the file.
 */
function _publicBody(error: FerryError): Record<string, unknown> {
  const { path, ...details } = error.details;
  let message = error.message;
  if (typeof path === "string" && path.length > 0) {
    message = message.replaceAll(path, path.slice(path.lastIndexOf("/") + 1));
  }
  return { ...details, error: error.code, message };
}

/** Validation failures of zod schemas become one 400 with every issue listed. */
export function validationHook(
  result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } },
): void {
  if (result.success) return;
  const issues = (result.error?.issues ?? []).map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const first = issues[0];
  throw new BadRequestError(
    first ? `invalid ${first.path || "request"}: ${first.message}` : "invalid request",
    { issues },
  );
}
