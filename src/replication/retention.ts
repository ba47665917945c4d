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
  invalidateSlot,
  invalidationFor,
  type InvalidationReason,
  type RetentionCaps,
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
  logger: Logger;
  clock: () => number;
}

/** Invalidation and pruning for one primary. */
export class Retention {
  #options: RetentionOptions;
  #invalidations: Record<string, number> = {};

  constructor(options: RetentionOptions) {
    this.#options = options;
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
  }

  /** Invalidates every live slot past a cap (lag, bytes, idleness); returns their ids. */
  invalidateSlots(): string[] {
    const { spool, slots, caps, clock } = this.#options;
    const nowMs = clock();
    const headLsn = spool.currentLsn();
    const invalidated: string[] = [];
    for (const slot of slots.all()) {
      const retainedBytes = spool.retainedBytesAfter(slot.restartLsn);
      const reason = invalidationFor(slot, { headLsn, retainedBytes, nowMs }, caps);
      if (reason) {
        this.invalidate(slot, reason, nowMs);
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
    const { spool, slots, stateFloor, walRetainBytesMin } = this.#options;
    this.invalidateSlots();
    if (slots.hasPendingChanges()) await slots.flushNow();
    const floor = slots.persistedFloor();
    const target = Math.min(lsn, stateFloor?.() ?? lsn, floor ?? lsn);
    return await spool.pruneThrough(target, { retainBytesMin: walRetainBytesMin });
  }
}
