/**
 * The replica's Prometheus metrics, read from the runtime at scrape time.
 *
 * @module
 */

import client from "prom-client";
import type { ReplicaRuntime } from "../replica/runtime.ts";
import type { ReplicaStateName } from "../replica/status.ts";

const _STATES: readonly ReplicaStateName[] = [
  "connecting",
  "healthy",
  "rebootstrapping",
  "gap",
  "divergence",
  "stale_term",
  "apply_error",
];

/** The replica's Prometheus registry, read from the runtime at scrape time. */
export function replicaMetrics(runtime: ReplicaRuntime): client.Registry {
  const registry = new client.Registry();
  const gauge = (name: string, help: string, read: () => number) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  const mirrored = (name: string, help: string, read: () => number) =>
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  gauge(
    "ferry_replica_applied_lsn",
    "LSN this replica has applied (and made durable).",
    () => runtime.appliedLsn(),
  );
  gauge(
    "ferry_replica_primary_current_lsn",
    "The primary's current LSN at the last pull.",
    () => runtime.status().primary_current_lsn,
  );
  gauge(
    "ferry_replica_bookmark_waiters",
    "Reads held for a min_lsn.",
    () => runtime.applied.waiters,
  );
  mirrored(
    "ferry_replica_apply_errors_total",
    "Frames or records this replica could not apply.",
    () => runtime.status().apply_errors_total,
  );
  mirrored(
    "ferry_replica_divergence_total",
    "LSNs whose payload differed from what was applied.",
    () => runtime.status().divergence_total,
  );
  mirrored(
    "ferry_replica_rebootstraps_total",
    "Re-bootstraps from a snapshot.",
    () => runtime.status().rebootstraps_total,
  );
  mirrored(
    "ferry_replica_applied_records_total",
    "Records applied.",
    () => runtime.status().applied_records_total,
  );
  new client.Gauge({
    name: "ferry_replica_state",
    help: "1 for the replica's current state, 0 for the others.",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      for (const state of _STATES) this.set({ state }, runtime.state === state ? 1 : 0);
    },
  });
  return registry;
}
