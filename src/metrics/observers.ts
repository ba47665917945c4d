/**
 * The metrics that components report as things happen (the spool's fsyncs and group commits, the
 * slot store's persists and fallbacks), as observers those components are handed at open.
 *
 * @module
 */

import assert from "node:assert/strict";
import client from "prom-client";
import { GROUP_COMMIT_RECORDS_MAX } from "../core/limits.ts";
import type { SlotStoreObserver } from "../slots/slot_store.ts";
import type { SpoolObserver } from "../wal/spool.ts";

/** Buckets of `ferry_wal_fsync_seconds`: 50 µs (a fast NVMe flush) to 1 s (a struggling disk). */
export const FSYNC_SECONDS_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
];

/** Buckets of `ferry_wal_group_commit_records`: powers of two up to the group-commit bound. */
export const GROUP_COMMIT_RECORDS_BUCKETS: readonly number[] = [
  1,
  2,
  4,
  8,
  16,
  32,
  64,
  128,
  256,
  512,
  1024,
  2048,
  4096,
  8192,
  16384,
];

assert.equal(GROUP_COMMIT_RECORDS_BUCKETS.at(-1), GROUP_COMMIT_RECORDS_MAX);

/** The spool's histograms and corruption counter, registered in `registry`. */
export function spoolObserver(registry: client.Registry): SpoolObserver {
  const fsync = new client.Histogram({
    name: "ferry_wal_fsync_seconds",
    help: "Duration of the spool's fsync of each group commit.",
    buckets: [...FSYNC_SECONDS_BUCKETS],
    registers: [registry],
  });
  const groupCommit = new client.Histogram({
    name: "ferry_wal_group_commit_records",
    help: "Records made durable by each group commit.",
    buckets: [...GROUP_COMMIT_RECORDS_BUCKETS],
    registers: [registry],
  });
  const corruption = new client.Counter({
    name: "ferry_wal_corruption_total",
    help: "Corrupt WAL frames or segments the spool found.",
    registers: [registry],
  });
  return {
    fsyncSeconds: (seconds) => fsync.observe(seconds),
    groupCommitRecords: (records) => groupCommit.observe(records),
    corruption: () => corruption.inc(),
  };
}

/** The slot store's persist and load-fallback counters, registered in `registry`. */
export function slotStoreObserver(registry: client.Registry): SlotStoreObserver {
  const persisted = new client.Counter({
    name: "ferry_slots_persist_total",
    help: "Slot persists (catalog file and Deno KV, one generation each).",
    registers: [registry],
  });
  const loadFallback = new client.Counter({
    name: "ferry_slots_load_fallback_total",
    help: "Slot loads that found one source missing or corrupt, by the source used instead.",
    labelNames: ["source"],
    registers: [registry],
  });
  // Both series exist from the start, so a rate over them is defined before the first fallback.
  for (const source of ["catalog", "kv"]) loadFallback.inc({ source }, 0);
  return {
    persisted: () => persisted.inc(),
    loadFallback: (source) => loadFallback.inc({ source }),
  };
}
