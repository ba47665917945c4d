/**
 * How `FerryClient` builds its requests: query strings of the defined values, a pull's query, a
 * replica's path.
 *
 * @module
 */

import type { PullOptions } from "./types.ts";

/** Query values; undefined ones are left out. */
export type Query = Record<string, string | number | undefined>;

/** `?a=1&b=x` of the defined values, or "" when there are none. */
export function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.set(name, String(value));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** The query of a pull (SPEC.md 9.3), in wire names. */
export function pullQuery(options: PullOptions): Query {
  return {
    since_lsn: options.sinceLsn,
    max_count: options.maxCount,
    max_bytes: options.maxBytes,
    replica_id: options.replicaId,
    term: options.term,
    await_timeout_ms: options.awaitTimeoutMs,
  };
}

/** `/v1/replicas/<id>`, the id escaped. */
export function replicaPath(replicaId: string): string {
  return `/v1/replicas/${encodeURIComponent(replicaId)}`;
}
