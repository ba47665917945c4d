/**
 * The primary's replication core (SPEC.md sections 4 to 7): registration, resume planning with its
 * two counters, pulls, acks, and the append path that feeds the commit waiter, over the replica
 * registry (`registry.ts`), the slots and retention (`retention.ts`, on a timer). No HTTP here: the
 * routes call these methods.
 *
 * @module
 */

import assert from "../core/assert.ts";
import {
  BadRequestError,
  NotFoundError,
  OverloadedError,
  RebootstrapRequiredError,
} from "../core/errors.ts";
import {
  HEALTH_SWEEP_MS_MAX,
  HEALTH_SWEEP_MS_MIN,
  SLOT_ETA_WARN_S_DEFAULT,
  STREAM_TICK_MS,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { ackSlot, isLive, newSlot, touchSlot } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { AppendResult, PruneResult, Spool } from "../wal/spool.ts";
import { CommitWaiter } from "./commit_waiter.ts";
import { checkPolicyAgainstFloor, type CommitPolicy, policyWatermark } from "./commit_policy.ts";
import { type TopologyDocument, topologyDocument, TopologyEpoch } from "./topology.ts";
import { REPLICA_ID_PATTERN } from "../model/ids.ts";
import {
  type RegisteredReplica,
  ReplicaRegistry,
  type ReplicaState,
  type ReplicationProgress,
  stateOf,
} from "./registry.ts";
import { Retention } from "./retention.ts";
import { ResyncCounters } from "./resume.ts";
import { PullServer } from "./pulls.ts";
import { primaryStreamHub, type StreamHub } from "./stream_hub.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import {
  type AckRequest,
  type PrimaryOptions,
  type PullRequest,
  type PullResult,
  type RawPullResult,
  type RegisterResult,
  type StreamOpened,
  type StreamRequest,
  type WriteResult,
} from "./types.ts";
import { type SlotForecast, SlotHealth, slotReadings } from "./slot_health.ts";

/** The replication core of a primary. */
export class Primary {
  readonly spool: Spool;
  readonly slots: SlotStore;
  readonly waiter: CommitWaiter;
  readonly epoch: TopologyEpoch;
  /** The open streaming pulls (SPEC.md 13.1). */
  readonly streams: StreamHub;
  #options: PrimaryOptions;
  #logger: Logger;
  #clock: () => number;
  #registry: ReplicaRegistry;
  #slotHealth: SlotHealth;
  #retention: Retention;
  #resyncs: ResyncCounters;
  #pulls: PullServer;
  #timers: Array<ReturnType<typeof setInterval>> = [];
  #retentionRunning: Promise<unknown> | undefined;

  constructor(options: PrimaryOptions) {
    this.#options = options;
    this.spool = options.spool;
    this.slots = options.slots;
    this.waiter = options.waiter ?? new CommitWaiter();
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? Date.now;
    this.epoch = new TopologyEpoch(this.#clock());
    this.#resyncs = new ResyncCounters(this.spool);
    this.#registry = new ReplicaRegistry({
      epoch: this.epoch,
      logger: this.#logger,
      healthyWithinMs: options.healthyWithinMs,
    });
    this.#pulls = new PullServer({
      ...options,
      registry: this.#registry,
      resyncs: this.#resyncs,
      clock: this.#clock,
      term: () => this.term,
      timeline: () => this.timeline,
      planResume: (id, sinceLsn) => this.planResume(id, sinceLsn),
    });
    this.streams = primaryStreamHub({
      ...options,
      pulls: this.#pulls,
      registry: this.#registry,
      control: () => this.controlRecord(),
      logger: this.#logger,
      clock: this.#clock,
    });
    this.#slotHealth = new SlotHealth({
      caps: options.caps,
      warnBelowS: options.slotEtaWarnS ?? SLOT_ETA_WARN_S_DEFAULT,
      logger: this.#logger,
    });
    this.#retention = new Retention({
      ...options,
      waiter: this.waiter,
      logger: this.#logger,
      clock: this.#clock,
      onInvalidated: (id) => this.streams.endFor(id, "slot_invalidated"),
    });
  }

  get term(): number {
    const term = this.#options.term;
    return typeof term === "function" ? term() : term;
  }

  get timeline(): number {
    return this.#options.timeline;
  }

  /** The server's commit-policy floor. */
  get commitPolicyFloor(): CommitPolicy {
    return this.#options.commitPolicyFloor;
  }

  /** Starts the retention timer and the health sweep. */
  start(): void {
    const sweepMs = Math.min(
      HEALTH_SWEEP_MS_MAX,
      Math.max(HEALTH_SWEEP_MS_MIN, this.#options.healthyWithinMs / 2),
    );
    this.#timers.push(setInterval(() => this.sweepHealth(), sweepMs));
    this.#timers.push(setInterval(() => this.streams.tick(), STREAM_TICK_MS));
    this.#timers.push(setInterval(() => {
      if (this.#retentionRunning) return;
      this.#retentionRunning = this.runRetention()
        .catch((error) => this.#logger.error("retention.failed", { error }))
        .finally(() => (this.#retentionRunning = undefined));
    }, this.#options.retentionIntervalMs));
  }

  /** Ends the streams, stops the timers, waits for a running retention, answers topology waits. */
  async stop(): Promise<void> {
    this.streams.endAll("shutdown");
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await this.#retentionRunning;
    this.epoch.releaseAll();
  }

  // ---- registry ----

  /**
   * Registers `id` (idempotent): a reconnect keeps its progress, refreshes its region and does not
   * move the epoch; an existing slot keeps its positions and its `restart_lsn` is the answer. A new
   * slot starts at the declared `sinceLsn` (default 0) when the spool still holds every record
   * after it; otherwise `RebootstrapRequiredError` (the replica bootstraps from a snapshot).
   */
  register(id: string, options: { region?: string; sinceLsn?: number } = {}): RegisterResult {
    const now = this.#clock();
    const replica = this.#upsertReplica(id, options.region, now);
    replica.resumePending = true;
    const slot = this.slots.get(id);
    let resumeLsn: number;
    if (slot) {
      if (!isLive(slot)) throw this.#resyncs.rebootstrap(slot.invalidationReason!);
      this.slots.set(touchSlot(slot, now));
      resumeLsn = slot.restartLsn;
    } else {
      resumeLsn = options.sinceLsn ?? 0;
      this.#resyncs.assertServable(resumeLsn);
      this.#createSlot(id, resumeLsn, now);
    }
    this.#syncWaiter(id);
    return {
      resumeLsn,
      term: this.term,
      timeline: this.timeline,
      currentLsn: this.spool.currentLsn(),
    };
  }

  /** Removes `id` from the registry and from every commit wait. Its slot stays (drop it apart). */
  unregister(id: string): boolean {
    if (!this.#registry.delete(id)) return false;
    this.waiter.dropReplica(id);
    return true;
  }

  /** Sets the `rebootstrapping` flag; a change moves the epoch. */
  setRebootstrapping(id: string, rebootstrapping: boolean): ReplicaState {
    return this.#registry.setRebootstrapping(id, rebootstrapping);
  }

  /** Registers `id` (or touches it), starting a new one at its slot's position. */
  #upsertReplica(id: string, region: string | undefined, now: number): RegisteredReplica {
    const startLsn = this.slots.get(id)?.restartLsn ?? 0;
    const { replica, regionChanged } = this.#registry.upsert(id, { region, nowMs: now, startLsn });
    if (regionChanged) this.#syncWaiter(id);
    return replica;
  }

  #isLive(id: string): boolean {
    const slot = this.slots.get(id);
    return slot !== undefined && isLive(slot);
  }

  /** A replica counts in commit waits exactly while it is registered and its slot is live. */
  #syncWaiter(id: string): void {
    const replica = this.#registry.get(id);
    if (replica && this.#isLive(id)) {
      this.waiter.upsertReplica(id, replica.region, replica.lastDurableLsn);
    } else this.waiter.dropReplica(id);
  }

  #createSlot(id: string, restartLsn: number, now: number): void {
    if (!this.slots.hasRoom()) throw new OverloadedError("no room for another replication slot");
    this.slots.set(newSlot({ replicaId: id, timeline: this.timeline, restartLsn, nowMs: now }));
    // A new pin should survive a crash soon; nothing waits for it.
    this.slots.flushNow().catch((error) => this.#logger.error("slots.persist_failed", { error }));
  }

  /** (Re)creates the slot of `id` at `restartLsn` (a snapshot's start); persisted on return. */
  async pinSlot(id: string, restartLsn: number): Promise<void> {
    assert.match(id, REPLICA_ID_PATTERN);
    const now = this.#clock();
    this.slots.set(newSlot({ replicaId: id, timeline: this.timeline, restartLsn, nowMs: now }));
    this.#upsertReplica(id, undefined, now);
    this.#syncWaiter(id);
    await this.slots.flushNow();
    this.#logger.info("slot.pinned", { replica_id: id, restart_lsn: restartLsn });
  }

  /** Drops the slot of `id` (admin); persisted before resolving. */
  async dropSlot(id: string): Promise<boolean> {
    const existed = this.slots.delete(id);
    if (!existed) return false;
    this.waiter.dropReplica(id);
    this.streams.endFor(id, "slot_dropped");
    await this.slots.flushNow();
    this.#logger.info("slot.dropped", { replica_id: id });
    return true;
  }

  // ---- resume planning and pulls ----

  /**
   * Decides where to serve `id` from (SPEC.md section 7): the declared `sinceLsn`, else the slot's
   * `restart_lsn`. Partial resync when the slot is live and the spool holds the next record; else
   * `RebootstrapRequiredError` (counted as a full resync). The first served pull after a register or
   * after the replica was unhealthy counts as a partial resync; steady-state pulls count as neither.
   */
  planResume(id: string, sinceLsn: number | undefined): number {
    const now = this.#clock();
    // Registered first, so a replica told to re-bootstrap can flag itself as rebootstrapping.
    const replica = this.#upsertReplica(id, undefined, now);
    const slot = this.slots.get(id);
    const start = sinceLsn ?? slot?.restartLsn ?? 0;
    if (slot && !isLive(slot)) throw this.#resyncs.rebootstrap(slot.invalidationReason!);
    try {
      this.#resyncs.assertServable(start);
    } catch (error) {
      if (
        slot && error instanceof RebootstrapRequiredError &&
        error.details.invalidation_reason === "wal-removed"
      ) {
        this.#retention.invalidate(slot, "wal-removed", now);
      }
      throw error;
    }
    if (slot) this.slots.set(touchSlot(slot, now), { lazy: true });
    else this.#createSlot(id, start, now);
    this.#syncWaiter(id);
    this.#resyncs.noteServed(replica);
    return start;
  }

  /** Serves a pull (`PullServer`): term check, resume plan, long-poll wait, checked records. */
  pull(request: PullRequest): Promise<PullResult> {
    return this.#pulls.pull(request);
  }

  /** Serves a raw-frame pull like `pull`, the records as the bytes stored (`PullServer`). */
  pullRaw(request: PullRequest): Promise<RawPullResult> {
    return this.#pulls.pullRaw(request);
  }

  /** Opens a streaming pull (SPEC.md 13.1): planned as a pull, then fed by `streams`. */
  async openStream(request: StreamRequest): Promise<StreamOpened> {
    const startLsn = this.#pulls.planStart(request);
    const body = await this.streams.open({ ...request, startLsn });
    return { body, ...this.#pulls.position(startLsn) };
  }

  /** What a stream's control record says now; with no cluster yet, committed = current. */
  controlRecord(): ControlRecord {
    const current = this.spool.currentLsn();
    return { currentLsn: current, commitLsn: current, term: this.term, timeline: this.timeline };
  }

  /** Call when the commit LSN may have risen (SPEC.md 13.4): edge pulls and streams go on. */
  commitAdvanced(): void {
    this.#pulls.commitAdvanced();
    this.streams.commitAdvanced();
    this.#options.onCommitAdvanced?.();
  }

  // ---- acks ----

  /**
   * Records an ack of `id`: the slot advances (unless invalidated), the registry keeps per-field
   * maxima, and the commit waiter hears the durable LSN. An ack beyond the current LSN is refused.
   */
  ack(id: string, ack: AckRequest): ReplicaState {
    // Without durable_lsn the ack reports applied only: nothing durable moves (SPEC.md 6).
    const durableLsn = ack.durableLsn ?? 0;
    const current = this.spool.currentLsn();
    if (ack.appliedLsn > current || durableLsn > current) {
      throw new BadRequestError(
        `ack of LSN ${
          Math.max(ack.appliedLsn, durableLsn)
        } is beyond the primary's current LSN ${current}`,
        { applied_lsn: ack.appliedLsn, durable_lsn: ack.durableLsn, current_lsn: current },
      );
    }
    const replica = this.#registry.get(id);
    if (!replica) {
      // An unregistered replica (new, or removed by an admin) registers again before it acks.
      throw new NotFoundError(`replica ${id} is not registered; register it first`, {
        replica_id: id,
      });
    }
    const now = this.#clock();
    const slot = this.slots.get(id);
    this.#registry.touch(replica, now);
    replica.lastAckedLsn = Math.max(replica.lastAckedLsn, ack.appliedLsn);
    replica.lastDurableLsn = Math.max(replica.lastDurableLsn, durableLsn);
    replica.applyErrorCount = Math.max(replica.applyErrorCount, ack.applyErrorsTotal ?? 0);
    replica.divergenceCount = Math.max(replica.divergenceCount, ack.divergenceTotal ?? 0);
    if (slot && isLive(slot)) {
      this.slots.set(ackSlot(slot, { appliedLsn: ack.appliedLsn, durableLsn, nowMs: now }));
      this.#syncWaiter(id);
      this.waiter.recordAck(id, durableLsn);
      // In a cluster a member's durable ack may raise the commit LSN (SPEC.md 13.4).
      if (this.#options.commitLsn) this.commitAdvanced();
    }
    return stateOf(replica);
  }

  // ---- writes ----

  /**
   * Appends one request's payloads (durable when this resolves), then waits for the commit policy
   * (the request's, which may only be stronger than the server's floor, or the floor). A timed-out
   * wait is reported, never rolled back.
   */
  async append(
    payloads: readonly Uint8Array[],
    options: { policy?: CommitPolicy; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<WriteResult> {
    assert(!this.#options.mirror, "a relay's log takes records from upstream only");
    const floor = this.#options.commitPolicyFloor;
    const policy = options.policy ?? floor;
    if (options.policy) checkPolicyAgainstFloor(options.policy, floor);
    // The wait's place is taken first: once the records are durable, the write cannot fail.
    const reservation = this.waiter.reserve(policy);
    let appended: AppendResult;
    try {
      appended = await this.spool.append(payloads);
    } catch (error) {
      reservation.release();
      throw error;
    }
    const commit = await this.waiter.wait(appended.lastLsn, policy, {
      timeoutMs: options.timeoutMs ?? this.#options.commitTimeoutMs,
      signal: options.signal,
      reservation,
    });
    return { ...appended, term: this.term, timeline: this.timeline, commit };
  }

  // ---- retention and health ----

  /** Invalidates every live slot past a cap (lag, bytes, idleness); returns their ids. */
  invalidateSlots(): string[] {
    return this.#retention.invalidateSlots();
  }

  /** Prunes the spool through `lsn`, never past what the slots and the state still need. */
  pruneThrough(lsn: number): Promise<PruneResult> {
    return this.#retention.pruneThrough(lsn);
  }

  /** One retention pass (the timer's body): invalidate, persist, prune through the floor. */
  runRetention(): Promise<PruneResult> {
    return this.pruneThrough(this.spool.currentLsn());
  }

  /**
   * Flips health by last-seen time (a flip moves the epoch, and a recovery is a reconnect), then
   * forgets unhealthy replicas that have no slot (dropped or reclaimed): they would otherwise hold
   * a place in the registry for ever.
   */
  sweepHealth(): void {
    const now = this.#clock();
    this.#registry.sweepHealth(now);
    for (const replica of this.#registry.values()) {
      if (replica.healthy || this.slots.get(replica.id)) continue;
      this.#registry.delete(replica.id, "forgotten");
      this.waiter.dropReplica(replica.id);
    }
    this.#slotHealth.sample(now, slotReadings(this.spool, this.slots, this.#registry));
  }

  /** Whether the slot of `id` is past a cap but kept: the state keeps its WAL (`Retention`). */
  horizonDeferred(id: string): boolean {
    return this.#retention.horizonDeferred(id);
  }

  /** Growth and predicted invalidation of the slot of `id`, as of the last sweep. */
  slotForecast(id: string): SlotForecast {
    return this.#slotHealth.forecastOf(id);
  }

  // ---- observation ----

  /** Every registered replica, sorted by id. */
  replicas(): ReplicaState[] {
    return this.#registry.list();
  }

  /** lag = max sent - min acked; safe replay = min durable; undefined without replicas. */
  progress(): ReplicationProgress | undefined {
    return this.#registry.progress();
  }

  /** Resync counters and invalidations by reason since start. */
  counters(): {
    fullResyncTotal: number;
    partialResyncTotal: number;
    invalidations: Record<string, number>;
  } {
    return {
      fullResyncTotal: this.#resyncs.fullResyncTotal,
      partialResyncTotal: this.#resyncs.partialResyncTotal,
      invalidations: this.#retention.invalidations(),
    };
  }

  /**
   * Age in ms of the oldest record `replica` has not acked (0 when caught up), from the append
   * times the spool keeps in memory (never a disk read, so a damaged segment cannot break status,
   * metrics or topology); for a replica whose next record was pruned, the oldest retained one's.
   */
  lagMs(replica: ReplicaState): number {
    const current = this.spool.currentLsn();
    if (replica.lastAckedLsn >= current) return 0;
    const next = Math.max(replica.lastAckedLsn + 1, this.spool.oldestLsn());
    return Math.max(0, this.#clock() - this.spool.appendedAtMs(next));
  }

  /** The highest LSN that meets the server's commit-policy floor (the current LSN for `local`). */
  commitWatermark(): number {
    return policyWatermark(this.#options.commitPolicyFloor, {
      currentLsn: this.spool.currentLsn(),
      nthDurable: (n) => this.waiter.watermark(n),
      counted: this.waiter.registeredCount(),
      regionDurable: (region) => this.waiter.bestDurableIn(region),
    });
  }

  /** The topology advertisement; the replica list only for authenticated callers. */
  topology(options: { includeReplicas: boolean }): TopologyDocument {
    const replicas = options.includeReplicas ? this.replicas() : [];
    const lagsMs = replicas.map((replica) => this.lagMs(replica));
    return topologyDocument({
      epoch: this.epoch.value,
      primary: {
        url: this.#options.advertiseUrl,
        region: this.#options.region,
        term: this.term,
        timeline: this.timeline,
        current_lsn: this.spool.currentLsn(),
      },
      replicas,
      lagsMs,
    });
  }
}
