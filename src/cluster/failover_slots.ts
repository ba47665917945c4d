/**
 * Failover slots (SPEC 13.4): the leader's slot positions reach every standby in the `slots` field
 * of the stream's control records, and etcd keeps one batched document at most every 10 s, so a new
 * leader can honour what its replicas' slots promised.
 *
 * - A standby never prunes its WAL past the lowest mirrored `restart_lsn` (a replica that resumes
 *   on the new leader finds its records there).
 * - On promotion the mirrored slots are capped at the fork LSN: a slot may not promise a position
 *   past the new leader's head.
 *
 * One write per slot per second from thousands of edges would be millions of etcd revisions a day;
 * one batched document every 10 s is 8 640.
 *
 * @module
 */

import { SLOTS_MIRROR_INTERVAL_MS } from "../core/cluster_limits.ts";
import { type MirroredSlot, parseMirroredSlots } from "../model/mirrored_slot.ts";

export { type MirroredSlot, parseMirroredSlots };

/** The slots of an etcd document (`slotsDocument`), none when it is missing or malformed. */
export function parseSlotsDocument(document: string | undefined): MirroredSlot[] {
  if (document === undefined) return [];
  try {
    return parseMirroredSlots((JSON.parse(document) as { slots?: unknown })?.slots);
  } catch (error) {
    if (error instanceof SyntaxError) return [];
    throw error;
  }
}

/** The lowest restart LSN of the mirrored slots: a standby's prune floor (Infinity when none). */
export function mirroredPruneFloor(slots: readonly MirroredSlot[]): number {
  let floor = Infinity;
  for (const slot of slots) floor = Math.min(floor, slot.restart_lsn);
  return floor;
}

/** The mirrored slots a new leader adopts: every position capped at its fork LSN. */
export function capAtFork(slots: readonly MirroredSlot[], forkLsn: number): MirroredSlot[] {
  return slots.map((slot) => ({ ...slot, restart_lsn: Math.min(slot.restart_lsn, forkLsn) }));
}

/** The etcd document: the slots and when the leader wrote them. */
export function slotsDocument(
  slots: readonly MirroredSlot[],
  meta: { term: number; writtenAtUnixMs: number },
): string {
  return JSON.stringify({ term: meta.term, written_at_unix_ms: meta.writtenAtUnixMs, slots });
}

/**
 * Decides when the leader writes the etcd document: only when the slots changed, and at most once
 * per interval (the first change is written at once).
 */
export class SlotsDocumentThrottle {
  readonly #intervalMs: number;
  #lastWrittenAtMs = -Infinity;
  #lastDocument = "";

  constructor(intervalMs = SLOTS_MIRROR_INTERVAL_MS) {
    this.#intervalMs = intervalMs;
  }

  /** True when `slots` should be written now; records the write when it says so. */
  shouldWrite(slots: readonly MirroredSlot[], nowMs: number): boolean {
    const document = JSON.stringify(slots);
    if (document === this.#lastDocument) return false;
    if (nowMs - this.#lastWrittenAtMs < this.#intervalMs) return false;
    this.#lastDocument = document;
    this.#lastWrittenAtMs = nowMs;
    return true;
  }
}
