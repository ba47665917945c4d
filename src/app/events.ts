/**
 * What the event stream carries (SPEC.md 13.5): the operator's log events, published as they are
 * logged, and a tick every `EVENTS_TICK_MS` with the process's status (the same document as
 * `GET /v1/status`, so a page shows exactly its values) and the write rate.
 *
 * @module
 */

import type { EventHub } from "../core/events.ts";
import { EVENTS_TICK_MS } from "../core/limits.ts";

/** Log events of a primary an operator watches live. */
export const PRIMARY_EVENTS: ReadonlySet<string> = new Set([
  "replica.registered",
  "replica.unregistered",
  "replica.forgotten",
  "replica.healthy",
  "replica.unhealthy",
  "replica.rebootstrap_started",
  "replica.rebootstrap_finished",
  "slot.pinned",
  "slot.dropped",
  "slot.invalidated",
  "slot.invalidation_soon",
  "slot.reclaimed",
  "spool.corruption",
  "spool.pruned",
  "ferry.stopping",
]);

/** Log events of a replica an operator watches live. */
export const REPLICA_EVENTS: ReadonlySet<string> = new Set([
  "replica.state",
  "replica.rebootstrap_started",
  "replica.rebootstrap_progress",
  "replica.rebootstrap_failed",
  "replica.rebootstrap_finished",
  "replica.store_corrupt",
  "ferry.stopping",
]);

/**
 * Publishes a `tick` every `EVENTS_TICK_MS` while anyone listens: `status()` and the writes per
 * second since the last tick (from `currentLsn()`). Stop it at shutdown.
 */
export function startTicks(
  hub: EventHub,
  source: { status: () => Record<string, unknown>; currentLsn: () => number },
): { stop(): void } {
  let lastLsn = source.currentLsn();
  let lastAt = performance.now();
  const timer = setInterval(() => {
    const lsn = source.currentLsn();
    const at = performance.now();
    const writesPerS = (lsn - lastLsn) * 1000 / Math.max(1, at - lastAt);
    lastLsn = lsn;
    lastAt = at;
    if (hub.subscribers === 0) return;
    hub.publish("tick", { writes_per_s: Math.round(writesPerS), status: source.status() });
  }, EVENTS_TICK_MS);
  return { stop: () => clearInterval(timer) };
}
