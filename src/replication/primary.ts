/**
 * The primary's replication core (SPEC.md sections 4 to 7): the replica registry, slots, resume
 * planning with its two counters, acks, retention (invalidation and pruning on a timer), health and
 * the topology epoch, and the append path that feeds the commit waiter. No HTTP here: the routes
 * call these methods.
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
import { HEALTH_SWEEP_MS_MAX, REPLICAS_MAX } from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import {
  ackSlot,
  invalidateSlot,
  invalidationFor,
  isLive,
  newSlot,
  type RetentionCaps,
  type Slot,
  touchSlot,
} from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { AppendResult, PruneResult, Spool } from "../wal/spool.ts";
import {
  checkPolicyAgainstFloor,
  type CommitOutcome,
  type CommitPolicy,
  CommitWaiter,
} from "./commit_waiter.ts";
import { type TopologyDocument, TopologyEpoch, type TopologyReplica } from "./topology.ts";
import { REPLICA_ID_PATTERN } from "../model/ids.ts";

/** One registered replica, as status, topology and metrics see it. */
export interface ReplicaState {
  id: string;
  region: string | undefined;
  lastSentLsn: number;
  lastAckedLsn: number;
  lastDurableLsn: number;
  applyErrorCount: number;
  divergenceCount: number;
  connectedAtUnixMs: number;
  lastSeenAtUnixMs: number;
  rebootstrapping: boolean;
  healthy: boolean;
}

interface _Replica extends ReplicaState {
  /** The next served pull is a reconnect (after a register, or after the replica was unhealthy). */
  resumePending: boolean;
}

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

/** Progress across replicas (undefined with none): SPEC.md section 5. */
export interface ReplicationProgress {
  lagLsn: number;
  safeReplayLsn: number;
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
  #replicas = new Map<string, _Replica>();
  #fullResyncTotal = 0;
  #partialResyncTotal = 0;
  #invalidations: Record<string, number> = {};
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
      if (!isLive(slot)) throw this.#rebootstrap(slot.invalidationReason!);
      this.slots.set(touchSlot(slot, now));
      resumeLsn = slot.restartLsn;
    } else {
      resumeLsn = options.sinceLsn ?? 0;
      this.#assertServable(resumeLsn);
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
    const existed = this.#replicas.delete(id);
    if (!existed) return false;
    this.waiter.dropReplica(id);
    this.epoch.bump();
    this.#logger.info("replica.unregistered", { replica_id: id });
    return true;
  }

  /** Sets the `rebootstrapping` flag; a change moves the epoch. */
  setRebootstrapping(id: string, rebootstrapping: boolean): ReplicaState {
    const replica = this.#replicas.get(id);
    if (!replica) throw new NotFoundError(`replica ${id} is not registered`, { replica_id: id });
    if (replica.rebootstrapping !== rebootstrapping) {
      replica.rebootstrapping = rebootstrapping;
      this.epoch.bump();
      this.#logger.info(
        rebootstrapping ? "replica.rebootstrap_started" : "replica.rebootstrap_finished",
        {
          replica_id: id,
        },
      );
    }
    return this.#snapshotOf(replica);
  }

  #upsertReplica(id: string, region: string | undefined, now: number): _Replica {
    assert.match(id, REPLICA_ID_PATTERN);
    const existing = this.#replicas.get(id);
    if (existing) {
      if (region !== undefined && region !== existing.region) {
        existing.region = region;
        this.#syncWaiter(id);
      }
      this.#touch(existing, now);
      return existing;
    }
    if (this.#replicas.size >= REPLICAS_MAX) {
      throw new OverloadedError(`ferry serves at most ${REPLICAS_MAX} replicas`);
    }
    const start = this.slots.get(id)?.restartLsn ?? 0;
    const replica: _Replica = {
      id,
      region,
      lastSentLsn: start,
      lastAckedLsn: start,
      lastDurableLsn: start,
      applyErrorCount: 0,
      divergenceCount: 0,
      connectedAtUnixMs: now,
      lastSeenAtUnixMs: now,
      rebootstrapping: false,
      healthy: true,
      resumePending: true,
    };
    this.#replicas.set(id, replica);
    this.epoch.bump();
    this.#logger.info("replica.registered", { replica_id: id, region, restart_lsn: start });
    return replica;
  }

  /** A replica counts in commit waits exactly while it is registered and its slot is live. */
  #syncWaiter(id: string): void {
    const replica = this.#replicas.get(id);
    const slot = this.slots.get(id);
    if (replica && slot && isLive(slot)) this.waiter.upsertReplica(id, replica.region);
    else this.waiter.dropReplica(id);
  }

  #touch(replica: _Replica, now: number): void {
    replica.lastSeenAtUnixMs = Math.max(replica.lastSeenAtUnixMs, now);
    if (!replica.healthy) {
      replica.healthy = true;
      this.epoch.bump();
      this.#logger.info("replica.healthy", { replica_id: replica.id });
    }
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

  #rebootstrap(reason: string, message?: string): RebootstrapRequiredError {
    this.#fullResyncTotal += 1;
    return new RebootstrapRequiredError(reason, { oldest_lsn: this.spool.oldestLsn(), message });
  }

  /** Throws when the records after `startLsn` cannot be served from the spool. */
  #assertServable(startLsn: number): void {
    const current = this.spool.currentLsn();
    if (startLsn > current) {
      throw this.#rebootstrap(
        "replica-ahead",
        `position ${startLsn} is ahead of the primary's current LSN ${current}; the replica must re-bootstrap`,
      );
    }
    const oldest = this.spool.oldestLsn();
    if (oldest > startLsn + 1) {
      throw this.#rebootstrap(
        "wal-removed",
        `records after LSN ${startLsn} were pruned (oldest retained: ${oldest}); load a snapshot`,
      );
    }
  }

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
    if (slot && !isLive(slot)) throw this.#rebootstrap(slot.invalidationReason!);
    try {
      this.#assertServable(start);
    } catch (error) {
      if (
        slot && error instanceof RebootstrapRequiredError &&
        error.details.invalidation_reason === "wal-removed"
      ) {
        this.#invalidate(slot, "wal-removed", now);
      }
      throw error;
    }
    if (slot) this.slots.set(touchSlot(slot, now), { lazy: true });
    else this.#createSlot(id, start, now);
    this.#syncWaiter(id);
    if (replica.resumePending) {
      replica.resumePending = false;
      this.#partialResyncTotal += 1;
    }
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
      this.#assertServable(start);
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
      if (error instanceof WalRemovedError) throw this.#rebootstrap("wal-removed", error.message);
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
    const replica = this.#replicas.get(id);
    if (!replica) return;
    const now = this.#clock();
    const last = frames[frames.length - 1];
    if (last) replica.lastSentLsn = Math.max(replica.lastSentLsn, last.lsn);
    // The slot was touched when the pull was planned; the registry keeps the exact last-seen time.
    this.#touch(replica, now);
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
    if (!this.#replicas.has(id) && !slot) {
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
    return this.#snapshotOf(replica);
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

  #invalidate(slot: Slot, reason: "horizon" | "idle-timeout" | "wal-removed", now: number): void {
    this.slots.set(invalidateSlot(slot, reason, now));
    this.waiter.dropReplica(slot.replicaId);
    this.#invalidations[reason] = (this.#invalidations[reason] ?? 0) + 1;
    this.#logger.warn("slot.invalidated", {
      replica_id: slot.replicaId,
      reason,
      restart_lsn: slot.restartLsn,
      head_lsn: this.spool.currentLsn(),
      retained_bytes: this.spool.retainedBytesAfter(slot.restartLsn),
    });
  }

  /** Invalidates every live slot past a cap (lag, bytes, idleness); returns their ids. */
  invalidateSlots(): string[] {
    const now = this.#clock();
    const headLsn = this.spool.currentLsn();
    const invalidated: string[] = [];
    for (const slot of this.slots.all()) {
      const retainedBytes = this.spool.retainedBytesAfter(slot.restartLsn);
      const reason = invalidationFor(
        slot,
        { headLsn, retainedBytes, nowMs: now },
        this.#options.caps,
      );
      if (reason) {
        this.#invalidate(slot, reason, now);
        invalidated.push(slot.replicaId);
      }
    }
    return invalidated;
  }

  /**
   * Prunes the spool through `lsn`, never past the retention floor of the persisted slots: first
   * invalidations are evaluated and every pending slot change (invalidations, drops) is persisted.
   */
  async pruneThrough(lsn: number): Promise<PruneResult> {
    this.invalidateSlots();
    if (this.slots.hasPendingChanges()) await this.slots.flushNow();
    const floor = this.slots.persistedFloor();
    const stateFloor = this.#options.stateFloor?.() ?? lsn;
    const target = Math.min(lsn, stateFloor, floor ?? lsn);
    return await this.spool.pruneThrough(target, {
      retainBytesMin: this.#options.walRetainBytesMin,
    });
  }

  /** One retention pass (the timer's body): invalidate, persist, prune through the floor. */
  runRetention(): Promise<PruneResult> {
    return this.pruneThrough(this.spool.currentLsn());
  }

  /** Flips health by last-seen time; a flip moves the epoch, and a recovery is a reconnect. */
  sweepHealth(): void {
    const now = this.#clock();
    for (const replica of this.#replicas.values()) {
      const healthy = now - replica.lastSeenAtUnixMs <= this.#options.healthyWithinMs;
      if (healthy === replica.healthy) continue;
      replica.healthy = healthy;
      if (!healthy) replica.resumePending = true;
      this.epoch.bump();
      this.#logger.info(healthy ? "replica.healthy" : "replica.unhealthy", {
        replica_id: replica.id,
        last_seen_at_unix_ms: replica.lastSeenAtUnixMs,
      });
    }
  }

  // ---- observation ----

  #snapshotOf(replica: _Replica): ReplicaState {
    const { resumePending: _, ...state } = replica;
    return { ...state };
  }

  /** Every registered replica, sorted by id. */
  replicas(): ReplicaState[] {
    return [...this.#replicas.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((r) =>
      this.#snapshotOf(r)
    );
  }

  replica(id: string): ReplicaState | undefined {
    const replica = this.#replicas.get(id);
    return replica ? this.#snapshotOf(replica) : undefined;
  }

  /** lag = max sent - min acked; safe replay = min durable; undefined without replicas. */
  progress(): ReplicationProgress | undefined {
    const replicas = [...this.#replicas.values()];
    if (replicas.length === 0) return undefined;
    const maxSent = Math.max(...replicas.map((r) => r.lastSentLsn));
    const minAcked = Math.min(...replicas.map((r) => r.lastAckedLsn));
    return {
      lagLsn: Math.max(0, maxSent - minAcked),
      safeReplayLsn: Math.min(...replicas.map((r) => r.lastDurableLsn)),
    };
  }

  /** Resync counters and invalidations by reason since start. */
  counters(): {
    fullResyncTotal: number;
    partialResyncTotal: number;
    invalidations: Record<string, number>;
  } {
    return {
      fullResyncTotal: this.#fullResyncTotal,
      partialResyncTotal: this.#partialResyncTotal,
      invalidations: { ...this.#invalidations },
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
    const floor = this.#options.commitPolicyFloor;
    switch (floor.kind) {
      case "local":
        return this.spool.currentLsn();
      case "ack_n":
        return floor.n === 0 ? this.spool.currentLsn() : this.waiter.watermark(floor.n);
      case "quorum":
        return this.waiter.watermark(Math.floor(this.waiter.registeredCount() / 2) + 1);
      case "regions":
        return this.#regionsWatermark(floor.regions);
    }
  }

  #regionsWatermark(regions: readonly string[]): number {
    let watermark = Number.MAX_SAFE_INTEGER;
    for (const region of regions) {
      let best = 0;
      for (const replica of this.#replicas.values()) {
        const slot = this.slots.get(replica.id);
        if (replica.region === region && slot && isLive(slot)) {
          best = Math.max(best, replica.lastDurableLsn);
        }
      }
      watermark = Math.min(watermark, best);
    }
    return regions.length === 0 ? 0 : watermark;
  }

  /** The topology advertisement; the replica list only for authenticated callers. */
  async topology(options: { includeReplicas: boolean }): Promise<TopologyDocument> {
    const current = this.spool.currentLsn();
    const replicas: TopologyReplica[] = [];
    if (options.includeReplicas) {
      for (const replica of this.replicas()) {
        replicas.push({
          id: replica.id,
          region: replica.region ?? "unknown",
          healthy: replica.healthy,
          rebootstrapping: replica.rebootstrapping,
          last_applied_lsn: replica.lastAckedLsn,
          lag_lsn: Math.max(0, current - replica.lastAckedLsn),
          lag_ms: await this.lagMs(replica),
        });
      }
    }
    return {
      epoch: this.epoch.value,
      primary: {
        url: this.#options.advertiseUrl,
        region: this.#options.region,
        term: this.term,
        timeline: this.timeline,
        current_lsn: current,
      },
      replicas,
    };
  }
}
