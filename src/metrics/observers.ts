/**
 * The metrics that components report as things happen (the spool's fsyncs and group commits, the
 * slot store's persists and fallbacks), as observers those components are handed at open.
 *
 * @module
 */

import assert from "../core/assert.ts";
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
  const inline = new client.Counter({
    name: "ferry_wal_fsync_inline_total",
    help:
      "Group commit fsyncs run on the event loop's thread (a writer alone; wal/inline_sync.ts).",
    registers: [registry],
  });
  const corruption = new client.Counter({
    name: "ferry_wal_corruption_total",
    help: "Corrupt WAL frames or segments the spool found.",
    registers: [registry],
  });
  return {
    fsyncSeconds: (seconds, onLoop) => {
      fsync.observe(seconds);
      if (onLoop) inline.inc();
    },
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

/** What the origin served: sealed segments as objects (SPEC.md 13.2), and pulls. */
export interface TransferObserver {
  /** One answer of `GET /v1/segments/:timeline/:name`, by status (200, 206, 304, 404, ...). */
  segmentAnswered(status: number): void;
  /** Bytes of a sealed segment's body handed on to the connection. */
  segmentBytes(bytes: number): void;
  /** Frame bytes (as stored) that a pull (`GET /v1/wal`) served. */
  pullBytes(bytes: number): void;
}

/**
 * The origin's transfer counters, registered in `registry`: what a cache in front of ferry saved
 * shows as segment requests and bytes that never reached it.
 */
export function transferObserver(registry: client.Registry): TransferObserver {
  const requests = new client.Counter({
    name: "ferry_segment_requests_total",
    help: "Answers to requests for a sealed segment served by this process, by status.",
    labelNames: ["status"],
    registers: [registry],
  });
  const segmentBytes = new client.Counter({
    name: "ferry_segment_bytes_total",
    help: "Bytes of sealed segments served by this process (bodies of 200 and 206 answers).",
    registers: [registry],
  });
  const pullBytes = new client.Counter({
    name: "ferry_pull_bytes_total",
    help: "Frame bytes served by pulls (GET /v1/wal), as stored.",
    registers: [registry],
  });
  return {
    segmentAnswered: (status) => requests.inc({ status: String(status) }),
    segmentBytes: (bytes) => segmentBytes.inc(bytes),
    pullBytes: (bytes) => pullBytes.inc(bytes),
  };
}
