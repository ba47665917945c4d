/**
 * Replication slots (SPEC.md section 4): the fields and their pure rules. One slot per replica id;
 * it pins the WAL after `restartLsn` until the replica confirms it, or until it is invalidated.
 *
 * @module
 */

/** Why a slot stopped pinning WAL. Strings as on disk and on the wire (reddb's). */
export type InvalidationReason = "horizon" | "idle-timeout" | "wal-removed";

/** Every invalidation reason, for validation. */
export const INVALIDATION_REASONS: readonly InvalidationReason[] = [
  "horizon",
  "idle-timeout",
  "wal-removed",
];

/** One replication slot. Positions only rise; apply ≤ flush ≤ write always holds. */
export interface Slot {
  replicaId: string;
  timeline: number;
  /** WAL after this LSN is retained for the replica, and it resumes from here. */
  restartLsn: number;
  confirmedWriteLsn: number;
  confirmedFlushLsn: number;
  confirmedApplyLsn: number;
  /** Kept for the catalog format: true exactly when the slot is not invalidated. */
  active: boolean;
  /** Last pull, ack or register (ms since the Unix epoch). */
  lastSeenAtUnixMs: number;
  invalidationReason: InvalidationReason | undefined;
  invalidatedAtUnixMs: number | undefined;
}

/** A new live slot pinned at `restartLsn`, every confirmed position equal to it. */
export function newSlot(
  fields: { replicaId: string; timeline: number; restartLsn: number; nowMs: number },
): Slot {
  return {
    replicaId: fields.replicaId,
    timeline: fields.timeline,
    restartLsn: fields.restartLsn,
    confirmedWriteLsn: fields.restartLsn,
    confirmedFlushLsn: fields.restartLsn,
    confirmedApplyLsn: fields.restartLsn,
    active: true,
    lastSeenAtUnixMs: fields.nowMs,
    invalidationReason: undefined,
    invalidatedAtUnixMs: undefined,
  };
}

/** True while the slot pins WAL. */
export function isLive(slot: Slot): boolean {
  return slot.invalidationReason === undefined;
}

/**
 * The slot after an ack `(applied, durable)`: positions only rise; `restart = max(restart,
 * durable)`; `write = max(write, applied, durable)`; `flush` and `apply` rise to `restart`. An
 * invalidated slot ignores acks (returned unchanged).
 */
export function ackSlot(
  slot: Slot,
  ack: { appliedLsn: number; durableLsn: number; nowMs: number },
): Slot {
  if (!isLive(slot)) return slot;
  const restartLsn = Math.max(slot.restartLsn, ack.durableLsn);
  return {
    ...slot,
    restartLsn,
    confirmedWriteLsn: Math.max(slot.confirmedWriteLsn, ack.appliedLsn, ack.durableLsn),
    confirmedFlushLsn: Math.max(slot.confirmedFlushLsn, restartLsn),
    confirmedApplyLsn: Math.max(slot.confirmedApplyLsn, restartLsn),
    lastSeenAtUnixMs: Math.max(slot.lastSeenAtUnixMs, ack.nowMs),
  };
}

/** The slot seen at `nowMs` (a pull or register); an invalidated slot is returned unchanged. */
export function touchSlot(slot: Slot, nowMs: number): Slot {
  if (!isLive(slot) || nowMs <= slot.lastSeenAtUnixMs) return slot;
  return { ...slot, lastSeenAtUnixMs: nowMs };
}

/** The slot invalidated for `reason` at `nowMs` (sticky: an invalidated slot keeps its reason). */
export function invalidateSlot(slot: Slot, reason: InvalidationReason, nowMs: number): Slot {
  if (!isLive(slot)) return slot;
  return { ...slot, active: false, invalidationReason: reason, invalidatedAtUnixMs: nowMs };
}

/** Caps that invalidate a slot; 0 turns a cap off. */
export interface RetentionCaps {
  lagMaxRecords: number;
  retainedBytesMax: number;
  idleTimeoutMs: number;
}

/** Where the log stands when a slot is judged. */
export interface RetentionReading {
  headLsn: number;
  /** WAL retained after the slot's restart LSN. */
  retainedBytes: number;
  nowMs: number;
  /**
   * WAL after this LSN is kept whatever the slots say (the materialised state's applied LSN, a
   * floor nothing invalidates); undefined when there is none.
   */
  keptAfterLsn?: number;
}

/**
 * Why a live slot should be invalidated now, or undefined: `horizon` when it is more than
 * `lagMaxRecords` behind the head or retains more than `retainedBytesMax`, unless its restart LSN
 * is at or past `keptAfterLsn` (the WAL it pins is kept anyway, so invalidating it would free
 * nothing: PostgreSQL too loses a slot only when WAL it needs is removed); `idle-timeout` when it
 * was not seen for longer than `idleTimeoutMs`.
 */
export function invalidationFor(
  slot: Slot,
  reading: RetentionReading,
  caps: RetentionCaps,
): InvalidationReason | undefined {
  if (!isLive(slot)) return undefined;
  if (pastHorizon(slot, reading, caps) && !horizonDeferred(slot, reading)) return "horizon";
  if (caps.idleTimeoutMs > 0 && reading.nowMs - slot.lastSeenAtUnixMs > caps.idleTimeoutMs) {
    return "idle-timeout";
  }
  return undefined;
}

/** True when the slot's WAL is kept anyway: no horizon cap applies to it (see `invalidationFor`). */
export function horizonDeferred(slot: Slot, reading: RetentionReading): boolean {
  return reading.keptAfterLsn !== undefined && slot.restartLsn >= reading.keptAfterLsn;
}

/** True when the slot is past the lag cap or the byte cap. */
export function pastHorizon(slot: Slot, reading: RetentionReading, caps: RetentionCaps): boolean {
  if (caps.lagMaxRecords > 0 && reading.headLsn - slot.restartLsn > caps.lagMaxRecords) return true;
  return caps.retainedBytesMax > 0 && reading.retainedBytes > caps.retainedBytesMax;
}

/** The retention floor: the smallest `restartLsn` over live slots, or undefined when none is live. */
export function retentionFloor(slots: Iterable<Slot>): number | undefined {
  let floor: number | undefined;
  for (const slot of slots) {
    if (isLive(slot) && (floor === undefined || slot.restartLsn < floor)) floor = slot.restartLsn;
  }
  return floor;
}

/** A slot with reddb's field names (snake_case, `null` for none): its KV copy and its JSON view. */
export function slotRecord(slot: Slot): {
  replica_id: string;
  timeline: number;
  restart_lsn: number;
  confirmed_write_lsn: number;
  confirmed_flush_lsn: number;
  confirmed_apply_lsn: number;
  last_seen_at_unix_ms: number;
  invalidation_reason: InvalidationReason | null;
  invalidated_at_unix_ms: number | null;
} {
  return {
    replica_id: slot.replicaId,
    timeline: slot.timeline,
    restart_lsn: slot.restartLsn,
    confirmed_write_lsn: slot.confirmedWriteLsn,
    confirmed_flush_lsn: slot.confirmedFlushLsn,
    confirmed_apply_lsn: slot.confirmedApplyLsn,
    last_seen_at_unix_ms: slot.lastSeenAtUnixMs,
    invalidation_reason: slot.invalidationReason ?? null,
    invalidated_at_unix_ms: slot.invalidatedAtUnixMs ?? null,
  };
}
