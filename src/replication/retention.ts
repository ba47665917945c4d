/**
 * Retention (SPEC.md section 4): slots past a cap (lag, retained bytes, idleness) are invalidated,
 * and the spool is pruned through the lowest position anything still needs: the persisted slots'
 * floor and the materialised state's applied LSN. Invalidations and drops are persisted before the
 * prune that relies on them.
 *
 * @module
 */

import type { Logger } from "../core/log.ts";
import {
  horizonDeferred,
  invalidateSlot,
  invalidationFor,
  type InvalidationReason,
  isLive,
  pastHorizon,
  type RetentionCaps,
  type RetentionReading,
  type Slot,
} from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { PruneResult, Spool } from "../wal/spool.ts";
import type { CommitWaiter } from "./commit_waiter.ts";

/** What retention works on. */
export interface RetentionOptions {
  spool: Spool;
  slots: SlotStore;
  waiter: CommitWaiter;
  caps: RetentionCaps;
  /** Recent WAL always kept, so replicas without a slot can still catch up. */
  walRetainBytesMin: number;
  /** LSN through which the materialised state has applied: WAL after it is never pruned. */
  stateFloor?: () => number;
  /** One more floor: WAL after it is never pruned (a standby's mirrored failover slots). */
  pruneFloor?: () => number;
  /** An invalidated slot is dropped this long after its invalidation (0 = never). */
  slotReclaimAfterMs?: number;
  logger: Logger;
  clock: () => number;
  /** Told of each invalidation at once (the slot's streams end). */
  onInvalidated?: (replicaId: string) => void;
}

/** Invalidation and pruning for one primary. */
export class Retention {
  #options: RetentionOptions;
  #invalidations: Record<string, number> = {};
  /** Slots past a cap whose WAL the state's floor keeps anyway (logged once per episode). */
  #deferred = new Set<string>();

  constructor(options: RetentionOptions) {
    this.#options = options;
  }

  /** Whether the slot of `id` was past a cap at the last sweep but kept: the state keeps its WAL. */
  horizonDeferred(id: string): boolean {
    return this.#deferred.has(id);
  }

  /** Invalidations by reason since start. */
  invalidations(): Record<string, number> {
    return { ...this.#invalidations };
  }

  /** Invalidates `slot` (sticky), takes it out of every commit wait, and says so in the log. */
  invalidate(slot: Slot, reason: InvalidationReason, nowMs: number): void {
    const { slots, waiter, spool, logger } = this.#options;
    slots.set(invalidateSlot(slot, reason, nowMs));
    waiter.dropReplica(slot.replicaId);
    this.#invalidations[reason] = (this.#invalidations[reason] ?? 0) + 1;
    logger.warn("slot.invalidated", {
      replica_id: slot.replicaId,
      reason,
      restart_lsn: slot.restartLsn,
      head_lsn: spool.currentLsn(),
      retained_bytes: spool.retainedBytesAfter(slot.restartLsn),
    });
    this.#options.onInvalidated?.(slot.replicaId);
  }

  /**
   * Invalidates every live slot past a cap (lag, bytes, idleness) whose WAL retention would free;
   * returns their ids. A slot past the lag or byte cap at or past the state's applied LSN is left
   * live (see `invalidationFor`): a snapshot taken while the state lags starts there, and
   * invalidating its slot at once made the replica re-bootstrap again and again.
   */
  invalidateSlots(): string[] {
    const { spool, slots, caps, clock, stateFloor } = this.#options;
    const nowMs = clock();
    const headLsn = spool.currentLsn();
    const keptAfterLsn = stateFloor?.();
    const invalidated: string[] = [];
    const deferred = new Set<string>();
    for (const slot of slots.all()) {
      const retainedBytes = spool.retainedBytesAfter(slot.restartLsn);
      const reading = { headLsn, retainedBytes, nowMs, keptAfterLsn };
      const reason = invalidationFor(slot, reading, caps);
      if (reason) {
        this.invalidate(slot, reason, nowMs);
        invalidated.push(slot.replicaId);
      } else if (isLive(slot) && pastHorizon(slot, reading, caps)) {
        deferred.add(slot.replicaId);
        this.#logDeferral(slot, reading);
      }
    }
    this.#deferred = deferred;
    return invalidated;
  }

  /** Says once per episode that a slot past a cap is kept because the state keeps its WAL. */
  #logDeferral(slot: Slot, reading: RetentionReading): void {
    if (this.#deferred.has(slot.replicaId) || !horizonDeferred(slot, reading)) return;
    this.#options.logger.info("slot.horizon_deferred", {
      replica_id: slot.replicaId,
      restart_lsn: slot.restartLsn,
      head_lsn: reading.headLsn,
      retained_bytes: reading.retainedBytes,
      state_applied_lsn: reading.keptAfterLsn,
    });
  }

  /**
   * Drops the slots invalidated at least `slotReclaimAfterMs` ago: a replica that comes back after
   * that re-bootstraps whatever its slot said, and its place counts against the cap no longer.
   * Returns their ids.
   */
  reclaimSlots(): string[] {
    const { slots, slotReclaimAfterMs, clock, logger } = this.#options;
    if (!slotReclaimAfterMs) return [];
    const nowMs = clock();
    const reclaimed: string[] = [];
    for (const slot of slots.all()) {
      const since = slot.invalidatedAtUnixMs;
      if (since === undefined || nowMs - since < slotReclaimAfterMs) continue;
      slots.delete(slot.replicaId);
      reclaimed.push(slot.replicaId);
      logger.info("slot.reclaimed", {
        replica_id: slot.replicaId,
        reason: slot.invalidationReason,
        invalidated_at_unix_ms: since,
      });
    }
    return reclaimed;
  }

  /**
   * Prunes the spool through `lsn`, never past the retention floor of the persisted slots: first
   * invalidations are evaluated and every pending slot change (invalidations, drops) is persisted;
   * the floor is read when the prune starts.
   */
  async pruneThrough(lsn: number): Promise<PruneResult> {
    const { spool, slots, stateFloor, pruneFloor, walRetainBytesMin } = this.#options;
    this.invalidateSlots();
    this.reclaimSlots();
    if (slots.hasPendingChanges()) await slots.flushNow();
    // Read inside the prune, not now: it may wait behind a running one, and a slot pinned
    // meanwhile (a snapshot's) must keep its WAL.
    const target = (): number =>
      Math.min(lsn, stateFloor?.() ?? lsn, pruneFloor?.() ?? lsn, slots.persistedFloor() ?? lsn);
    return await spool.pruneThrough(target, { retainBytesMin: walRetainBytesMin });
  }
}
