/**
 * Prometheus metrics (SPEC.md section 11), all prefixed `ferry_`, in one private prom-client
 * registry (never the global default one, and no default process metrics: those read `/proc`,
 * which ferry's scoped permissions do not allow).
 *
 * Two kinds of source:
 * - **observed**: the spool and slot store call the observers, and the HTTP layer calls
 *   `observeHttp()`; these histograms and counters count in the metric itself.
 * - **read at scrape time**: every gauge, and every counter whose source of truth lives in ferry's
 *   own objects (resyncs, commit waits, invalidations), is filled in its `collect()` callback from
 *   the attached `Primary`. Labelled gauges are reset first, so a replica or slot that went away
 *   leaves the output with it; mirrored counters are reset then raised to the source's value,
 *   because prom-client counters have no `set()`.
 *
 * @example
 * ```ts
 * const metrics = new Metrics();
 * const spool = await Spool.open({ walDir, timeline: 1, term: 1, observer: metrics.spoolObserver });
 * const slots = await SlotStore.open({ dataDir, kv, timeline: 1, flushIntervalMs: 200, observer: metrics.slotStoreObserver });
 * const primary = new Primary({ spool, slots, ...options });
 * metrics.attachPrimary(primary);
 * const text = await metrics.render(); // serve with `metrics.contentType`
 * ```
 *
 * @module
 */

import assert from "../core/assert.ts";
import client from "prom-client";
import { MIB_BYTES, READ_AHEAD_BYTES_MAX } from "../core/limits.ts";
import type { Primary } from "../replication/primary.ts";
import { INVALIDATION_REASONS } from "../slots/slot.ts";
import type { SlotStoreObserver } from "../slots/slot_store.ts";
import type { SpoolObserver } from "../wal/spool.ts";
import {
  type GaugeSpec,
  type MetricContext,
  type MetricSource,
  mirroredCounter,
  type MirroredCounterSpec,
  replicaGauge,
  type ReplicaGaugeSpec,
  scalarGauge,
  slotGauge,
  type SlotGaugeSpec,
  slotInvalidatedGauge,
} from "./metric_builders.ts";
import {
  slotStoreObserver,
  spoolObserver,
  type TransferObserver,
  transferObserver,
} from "./observers.ts";

/** Lowest and highest HTTP status code `observeHttp()` accepts. */
const HTTP_STATUS_MIN = 100;
const HTTP_STATUS_MAX = 599;
const READ_AHEAD_MIB = READ_AHEAD_BYTES_MAX / MIB_BYTES;

const _SCALAR_GAUGES: readonly GaugeSpec[] = [
  {
    name: "ferry_wal_current_lsn",
    help: "LSN of the newest durable record in the spool.",
    read: (s) => s.primary.spool.currentLsn(),
  },
  {
    name: "ferry_wal_oldest_lsn",
    help: "LSN of the oldest retained record (the current LSN + 1 when none is retained).",
    read: (s) => s.primary.spool.oldestLsn(),
  },
  {
    name: "ferry_wal_retained_bytes",
    help: "Bytes of WAL segment files on disk.",
    read: (s) => s.primary.spool.retainedBytes(),
  },
  {
    name: "ferry_wal_segments",
    help: "WAL segment files on disk, the active one included.",
    read: (s) => s.primary.spool.segments().length,
  },
  {
    name: "ferry_wal_tail_bytes",
    help: "Bytes of recent frames held in the in-memory tail.",
    read: (s) => s.primary.spool.stats().tailBytes,
  },
  {
    name: "ferry_wal_read_ahead_bytes",
    help:
      `Bytes read ahead from segment files for replicas catching up (at most ${READ_AHEAD_MIB} MiB).`,
    read: (s) => s.primary.spool.stats().readAheadBytes,
  },
  {
    name: "ferry_pull_waiters",
    help: "Pulls held in a long-poll wait for the next record.",
    read: (s) => s.primary.spool.stats().waiters,
  },
  {
    name: "ferry_wal_streams",
    help: "Streaming pulls open (they are not held pulls: a replica is seen by its acks).",
    read: (s) => s.primary.streams.size,
  },
  {
    name: "ferry_replica_count",
    help: "Registered replicas.",
    read: (s) => s.primary.replicas().length,
  },
  {
    name: "ferry_topology_epoch",
    help: "Topology epoch; rises on register, unregister, rebootstrapping and health changes.",
    read: (s) => s.primary.epoch.value,
  },
  {
    name: "ferry_topology_waiters",
    help: "Topology requests held in a long-poll wait for the next epoch.",
    read: (s) => s.primary.epoch.waiters,
  },
  {
    name: "ferry_state_applied_lsn",
    help: "LSN the primary's own state has applied (0 when not tracked).",
    read: (s) => s.appliedLsn(),
  },
  {
    name: "ferry_state_apply_lag_seconds",
    help: "How long ago the oldest record the primary's state may apply but has not was appended " +
      "(0 when it has applied all it may).",
    read: (s) => s.stateLagMs() / 1000,
  },
  {
    name: "ferry_commit_watermark_lsn",
    help: "Highest LSN that meets the server's commit-policy floor.",
    read: (s) => s.primary.commitWatermark(),
  },
  {
    name: "ferry_event_subscribers",
    help: "Live event streams (GET /v1/events) open.",
    read: (s) => s.events?.subscribers ?? 0,
  },
  {
    name: "ferry_commit_waits_pending",
    help: "Writes held waiting for their commit policy.",
    read: (s) => s.primary.waiter.pendingWaits(),
  },
  {
    name: "ferry_replication_lag_records",
    help:
      "Highest LSN sent to any replica minus the lowest LSN any replica applied (0 without replicas).",
    read: (s) => s.primary.progress()?.lagLsn ?? 0,
  },
  {
    name: "ferry_replication_safe_replay_lsn",
    help: "Lowest durable LSN across replicas (0 without replicas).",
    read: (s) => s.primary.progress()?.safeReplayLsn ?? 0,
  },
];

const _REPLICA_GAUGES: readonly ReplicaGaugeSpec[] = [
  {
    name: "ferry_replica_acked_lsn",
    help: "Highest LSN the replica reported applied.",
    read: (r) => r.lastAckedLsn,
  },
  {
    name: "ferry_replica_durable_lsn",
    help: "Highest LSN the replica reported durable.",
    read: (r) => r.lastDurableLsn,
  },
  {
    name: "ferry_replica_sent_lsn",
    help: "Highest LSN sent to the replica.",
    read: (r) => r.lastSentLsn,
  },
  {
    name: "ferry_replica_lag_records",
    help: "Records the replica has not applied: the current LSN minus its applied LSN.",
    read: (r, s) => Math.max(0, s.primary.spool.currentLsn() - r.lastAckedLsn),
  },
  {
    name: "ferry_replica_lag_seconds",
    help: "Age of the oldest record the replica has not applied (0 when caught up).",
    read: (r, s) => s.primary.lagMs(r) / 1000,
  },
  {
    name: "ferry_replica_healthy",
    help: "1 when the replica was seen within the health window, else 0.",
    read: (r) => (r.healthy ? 1 : 0),
  },
  {
    name: "ferry_replica_rebootstrapping",
    help: "1 while the replica is loading a snapshot, else 0.",
    read: (r) => (r.rebootstrapping ? 1 : 0),
  },
  {
    name: "ferry_replica_apply_errors",
    help: "Apply errors the replica reported (its own running total).",
    read: (r) => r.applyErrorCount,
  },
  {
    name: "ferry_replica_divergences",
    help: "Divergences the replica reported (its own running total).",
    read: (r) => r.divergenceCount,
  },
];

const _SLOT_GAUGES: readonly SlotGaugeSpec[] = [
  {
    name: "ferry_slot_invalidation_eta_seconds",
    help:
      "Predicted seconds until the slot crosses a cap (lag, bytes, or idle timeout); absent when none applies.",
    read: (slot, s) => s.primary.slotForecast(slot.replicaId).etaInvalidationS,
  },
  {
    name: "ferry_slot_growth_bytes_per_second",
    help: "Growth of the WAL the slot retains, over the last minutes.",
    read: (slot, s) => s.primary.slotForecast(slot.replicaId).growthBytesPerS,
  },
  {
    name: "ferry_slot_restart_lsn",
    help: "LSN after which the slot retains WAL and the replica resumes.",
    read: (slot) => slot.restartLsn,
  },
  {
    name: "ferry_slot_retained_bytes",
    help: "Bytes of WAL segments holding records after the slot's restart LSN.",
    read: (slot, s) => s.primary.spool.retainedBytesAfter(slot.restartLsn),
  },
];

const _MIRRORED_COUNTERS: readonly MirroredCounterSpec[] = [
  {
    name: "ferry_replication_full_resync_total",
    help: "Replicas told to re-bootstrap from a snapshot (rebootstrap_required answers).",
    read: (s) => s.primary.counters().fullResyncTotal,
  },
  {
    name: "ferry_replication_partial_resync_total",
    help: "Reconnects that resumed from the WAL without a snapshot.",
    read: (s) => s.primary.counters().partialResyncTotal,
  },
  {
    name: "ferry_commit_wait_total",
    help: "Commit waits ended, by outcome.",
    labelName: "outcome",
    read: (s) => {
      const counters = s.primary.waiter.counters();
      return {
        reached: counters.reached,
        timed_out: counters.timed_out,
        not_required: counters.not_required,
      };
    },
  },
  {
    name: "ferry_event_subscribers_dropped_total",
    help: "Event streams ended because their reader fell behind (writes never wait for them).",
    read: (s) => s.events?.droppedTotal ?? 0,
  },
  {
    name: "ferry_state_skipped_records_total",
    help:
      "Logged records the materialised state passed over: their payload is not a change record.",
    read: (s) => s.skippedRecords(),
  },
  {
    name: "ferry_state_apply_rest_seconds_total",
    help: "Time the primary's state apply rested between batches to give the CPU to the writes.",
    read: (s) => s.stateRestedMs() / 1000,
  },
  {
    name: "ferry_state_writes_held_total",
    help: "Writes that waited for the primary's state to apply its backlog " +
      "(--state-backlog-bytes-max).",
    read: (s) => s.writesHeld(),
  },
  {
    name: "ferry_wal_streams_ended_total",
    help: "Streaming pulls ended, by reason (the client resumes from its last LSN).",
    labelName: "reason",
    read: (s) => s.primary.streams.endedByReason(),
  },
  {
    name: "ferry_slot_invalidations_total",
    help: "Replication slots invalidated, by reason.",
    labelName: "reason",
    read: (s) => ({
      ...Object.fromEntries(INVALIDATION_REASONS.map((reason) => [reason, 0])),
      ...s.primary.counters().invalidations,
    }),
  },
];

/** ferry's metrics: one registry, the observers to hand the spool and slot store, and a renderer. */
export class Metrics {
  /** The private registry every ferry metric is registered in. */
  readonly registry: client.Registry;
  /** Pass to `Spool.open({ observer })`. */
  readonly spoolObserver: SpoolObserver;
  /** Pass to `SlotStore.open({ observer })`. */
  readonly slotStoreObserver: SlotStoreObserver;
  /** What the routes served: sealed segments and pulls (`ferry_segment_*`, `ferry_pull_bytes`). */
  readonly transfers: TransferObserver;
  /** The `Content-Type` of `render()`'s text. */
  readonly contentType: string;
  #source: MetricSource | undefined;
  /** Responses by route pattern, then status: counted here, copied into the counter at scrape. */
  #httpCounts = new Map<string, Map<number, number>>();

  constructor() {
    this.registry = new client.Registry();
    this.contentType = this.registry.contentType;
    const context: MetricContext = { registry: this.registry, source: () => this.#source };
    for (const spec of _SCALAR_GAUGES) scalarGauge(context, spec);
    for (const spec of _REPLICA_GAUGES) replicaGauge(context, spec);
    for (const spec of _SLOT_GAUGES) slotGauge(context, spec);
    slotInvalidatedGauge(context);
    for (const spec of _MIRRORED_COUNTERS) mirroredCounter(context, spec);
    this.spoolObserver = spoolObserver(this.registry);
    this.slotStoreObserver = slotStoreObserver(this.registry);
    this.transfers = transferObserver(this.registry);
    const httpCounts = this.#httpCounts;
    new client.Counter({
      name: "ferry_http_requests_total",
      help: "HTTP responses, by route pattern and status code.",
      labelNames: ["route", "status"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [route, byStatus] of httpCounts) {
          for (const [status, count] of byStatus) {
            this.inc({ route, status: String(status) }, count);
          }
        }
      },
    });
  }

  /**
   * Counts one HTTP response: `route` is the route pattern (`/v1/replicas/:id/ack`). Called on
   * every request, so it only bumps a number in a map; the counter reads the map at scrape time
   * (prom-client would hash the labels on every call).
   */
  observeHttp(route: string, status: number): void {
    if (
      route.length === 0 || !Number.isInteger(status) || status < HTTP_STATUS_MIN ||
      status > HTTP_STATUS_MAX
    ) {
      assert.fail(`observeHttp() needs a route pattern and a status, got "${route}" ${status}`);
    }
    let byStatus = this.#httpCounts.get(route);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.#httpCounts.set(route, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }

  /**
   * Makes the scrape-time gauges and counters read `primary`, and `extra` for the primary's own
   * state and events (each reads 0 without its source). Call once, after the primary exists;
   * until then those metrics read 0 or have no series.
   */
  attachPrimary(
    primary: Primary,
    extra: Partial<Omit<MetricSource, "primary">> = {},
  ): void {
    assert.equal(this.#source, undefined, "attachPrimary() is called once");
    const zero = () => 0;
    this.#source = {
      primary,
      appliedLsn: extra.appliedLsn ?? zero,
      skippedRecords: extra.skippedRecords ?? zero,
      stateLagMs: extra.stateLagMs ?? zero,
      stateRestedMs: extra.stateRestedMs ?? zero,
      writesHeld: extra.writesHeld ?? zero,
      events: extra.events,
    };
  }

  /** The Prometheus text exposition of every metric, read now. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
