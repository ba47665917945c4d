/**
 * The primary's replication core (SPEC.md sections 4 to 7): registration, resume planning with its
 * two counters, pulls, acks, and the append path that feeds the commit waiter, over the replica
 * registry (`registry.ts`), the slots and retention (`retention.ts`, on a timer). No HTTP here: the
 * routes call these methods.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BadRequestError,
  NotFoundError,
  OverloadedError,
  RebootstrapRequiredError,
  TermMismatchError,
  WalRemovedError,
} from "../core/errors.ts";
import { HEALTH_SWEEP_MS_MAX } from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { ackSlot, isLive, newSlot, type RetentionCaps, touchSlot } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { AppendResult, PruneResult, Spool } from "../wal/spool.ts";
import { CommitWaiter } from "./commit_waiter.ts";
import type { CommitOutcome } from "../model/commit.ts";
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

/** Options of `new Primary()`. */
export interface PrimaryOptions {
  spool: Spool;
  slots: SlotStore;
  waiter?: CommitWaiter;
  term: number;
  timeline: number;
  region: string;
  advertiseUrl: string;
  caps: RetentionCaps;
  retentionIntervalMs: number;
  /** Recent WAL always kept, so replicas without a slot can still catch up. */
  walRetainBytesMin: number;
  healthyWithinMs: number;
  commitPolicyFloor: CommitPolicy;
  commitTimeoutMs: number;
  logger?: Logger;
  clock?: () => number;
  /** LSN through which the materialised state has applied: WAL after it is never pruned. */
  stateFloor?: () => number;
}

/** Answer to a register call. */
export interface RegisterResult {
  resumeLsn: number;
  term: number;
  timeline: number;
  currentLsn: number;
}

/** A pull request, after HTTP validation. */
export interface PullRequest {
  replicaId?: string;
  sinceLsn?: number;
  maxCount: number;
  maxBytes: number;
  awaitTimeoutMs: number;
  term?: number;
  signal?: AbortSignal;
}

/** What a pull serves. */
export interface PullResult {
  frames: DecodedFrame[];
  startLsn: number;
  currentLsn: number;
  oldestLsn: number;
  term: number;
  timeline: number;
}

/** An ack, after HTTP validation. */
export interface AckRequest {
  appliedLsn: number;
  durableLsn?: number;
  applyErrorsTotal?: number;
  divergenceTotal?: number;
}

/** A durable write and what its commit policy reached. */
export interface WriteResult extends AppendResult {
  term: number;
  timeline: number;
  commit: CommitOutcome;
}

/** The replication core of a primary. */
export class Primary {
  readonly spool: Spool;
  readonly slots: SlotStore;
  readonly waiter: CommitWaiter;
  readonly epoch: TopologyEpoch;
  #options: PrimaryOptions;
  #logger: Logger;
  #clock: () => number;
  #registry: ReplicaRegistry;
  #retention: Retention;
  #resyncs: ResyncCounters;
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
    this.#retention = new Retention({
      ...options,
      waiter: this.waiter,
      logger: this.#logger,
      clock: this.#clock,
    });
  }

  get term(): number {
    return this.#options.term;
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
    const sweepMs = Math.min(HEALTH_SWEEP_MS_MAX, Math.max(10, this.#options.healthyWithinMs / 2));
    this.#timers.push(setInterval(() => this.sweepHealth(), sweepMs));
    this.#timers.push(setInterval(() => {
      if (this.#retentionRunning) return;
      this.#retentionRunning = this.runRetention()
        .catch((error) => this.#logger.error("retention.failed", { error }))
        .finally(() => (this.#retentionRunning = undefined));
    }, this.#options.retentionIntervalMs));
  }

  /** Stops the timers, waits for a running retention pass, answers held topology waits. */
  async stop(): Promise<void> {
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
    if (replica && this.#isLive(id)) this.waiter.upsertReplica(id, replica.region);
    else this.waiter.dropReplica(id);
  }

  #createSlot(id: string, restartLsn: number, now: number): void {
    if (!this.slots.hasRoom()) throw new OverloadedError("no room for another replication slot");
    this.slots.set(newSlot({ replicaId: id, timeline: this.timeline, restartLsn, nowMs: now }));
    // A new pin should survive a crash soon; nothing waits for it.
    this.slots.flushNow().catch((error) => this.#logger.error("slots.persist_failed", { error }));
  }

  /**
   * (Re)creates the slot of `id` at `restartLsn` (a snapshot's start), pinning the WAL after it,
   * and persists it before resolving.
   */
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

  /**
   * Serves a pull: term check, resume planning for an identified replica, an optional long-poll
   * wait for the next record, then the records (from the tail or the segments).
   */
  async pull(request: PullRequest): Promise<PullResult> {
    if (request.term !== undefined && request.term !== this.term) {
      throw new TermMismatchError(request.term, this.term);
    }
    const { replicaId } = request;
    let start: number;
    if (replicaId !== undefined) start = this.planResume(replicaId, request.sinceLsn);
    else {
      start = request.sinceLsn ?? 0;
      this.#resyncs.assertServable(start);
    }
    if (request.awaitTimeoutMs > 0 && this.spool.currentLsn() <= start) {
      await this.spool.waitForAppend(start, {
        timeoutMs: request.awaitTimeoutMs,
        signal: request.signal,
      });
    }
    let frames: DecodedFrame[];
    try {
      frames = await this.spool.readSince(start, request.maxCount, request.maxBytes);
    } catch (error) {
      if (error instanceof WalRemovedError) {
        throw this.#resyncs.rebootstrap("wal-removed", error.message);
      }
      throw error;
    }
    if (replicaId !== undefined) this.#noteSent(replicaId, frames);
    return {
      frames,
      startLsn: start,
      currentLsn: this.spool.currentLsn(),
      oldestLsn: this.spool.oldestLsn(),
      term: this.term,
      timeline: this.timeline,
    };
  }

  #noteSent(id: string, frames: readonly DecodedFrame[]): void {
    const replica = this.#registry.get(id);
    if (!replica) return;
    const last = frames[frames.length - 1];
    if (last) replica.lastSentLsn = Math.max(replica.lastSentLsn, last.lsn);
    // The slot was touched when the pull was planned; the registry keeps the exact last-seen time.
    this.#registry.touch(replica, this.#clock());
  }

  // ---- acks ----

  /**
   * Records an ack of `id`: the slot advances (unless invalidated), the registry keeps per-field
   * maxima, and the commit waiter hears the durable LSN. An ack beyond the current LSN is refused.
   */
  ack(id: string, ack: AckRequest): ReplicaState {
    const durableLsn = ack.durableLsn ?? ack.appliedLsn;
    const current = this.spool.currentLsn();
    if (ack.appliedLsn > current || durableLsn > current) {
      throw new BadRequestError(
        `ack of LSN ${
          Math.max(ack.appliedLsn, durableLsn)
        } is beyond the primary's current LSN ${current}`,
        { applied_lsn: ack.appliedLsn, durable_lsn: durableLsn, current_lsn: current },
      );
    }
    const slot = this.slots.get(id);
    if (!this.#registry.get(id) && !slot) {
      throw new NotFoundError(`replica ${id} is not registered`, { replica_id: id });
    }
    const now = this.#clock();
    const replica = this.#upsertReplica(id, undefined, now);
    replica.lastAckedLsn = Math.max(replica.lastAckedLsn, ack.appliedLsn);
    replica.lastDurableLsn = Math.max(replica.lastDurableLsn, durableLsn);
    replica.applyErrorCount = Math.max(replica.applyErrorCount, ack.applyErrorsTotal ?? 0);
    replica.divergenceCount = Math.max(replica.divergenceCount, ack.divergenceTotal ?? 0);
    if (slot && isLive(slot)) {
      this.slots.set(ackSlot(slot, { appliedLsn: ack.appliedLsn, durableLsn, nowMs: now }));
      this.#syncWaiter(id);
      this.waiter.recordAck(id, durableLsn);
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
    const floor = this.#options.commitPolicyFloor;
    const policy = options.policy ?? floor;
    if (options.policy) checkPolicyAgainstFloor(options.policy, floor);
    const appended = await this.spool.append(payloads);
    const commit = await this.waiter.wait(appended.lastLsn, policy, {
      timeoutMs: options.timeoutMs ?? this.#options.commitTimeoutMs,
      signal: options.signal,
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

  /** Flips health by last-seen time; a flip moves the epoch, and a recovery is a reconnect. */
  sweepHealth(): void {
    this.#registry.sweepHealth(this.#clock());
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
   * Age in ms of the oldest record `replica` has not acked (0 when caught up), from the frames'
   * timestamps; for a replica whose next record was pruned, the age of the oldest retained one.
   */
  async lagMs(replica: ReplicaState): Promise<number> {
    const current = this.spool.currentLsn();
    if (replica.lastAckedLsn >= current) return 0;
    const next = Math.max(replica.lastAckedLsn + 1, this.spool.oldestLsn());
    const frame = await this.spool.frameAt(next);
    return frame ? Math.max(0, this.#clock() - frame.timestampMs) : 0;
  }

  /** The highest LSN that meets the server's commit-policy floor (the current LSN for `local`). */
  commitWatermark(): number {
    return policyWatermark(this.#options.commitPolicyFloor, {
      currentLsn: this.spool.currentLsn(),
      nthDurable: (n) => this.waiter.watermark(n),
      counted: this.waiter.registeredCount(),
      regionDurable: (region) => this.#registry.bestDurableIn(region, (id) => this.#isLive(id)),
    });
  }

  /** The topology advertisement; the replica list only for authenticated callers. */
  async topology(options: { includeReplicas: boolean }): Promise<TopologyDocument> {
    const replicas = options.includeReplicas ? this.replicas() : [];
    const lagsMs = await Promise.all(replicas.map((replica) => this.lagMs(replica)));
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
