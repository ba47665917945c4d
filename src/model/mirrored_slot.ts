/**
 * A failover slot as mirrored (SPEC.md 13.4): what the leader's control records and the etcd
 * document carry, and its parser. Kept in `model/` so the replication core (which sends them) and
 * the replica side (which receives them) share it without importing `cluster/`.
 *
 * @module
 */

import { REPLICAS_MAX } from "../core/limits.ts";
import { REPLICA_ID_PATTERN } from "./ids.ts";

/**
 * One live slot as mirrored: enough to resume its replica and to keep its WAL. Invalidated slots pin
 * nothing and are not mirrored.
 */
export interface MirroredSlot {
  id: string;
  restart_lsn: number;
  /** The replica's region, so `regions=` policies count it on the new leader too. */
  region?: string;
}

/**
 * The well-formed slots of a control record's or the etcd document's `slots` (each an object with a
 * replica id and a non-negative integer `restart_lsn`, an optional string `region`); malformed
 * entries are ignored, and so is every entry past `REPLICAS_MAX`.
 */
export function parseMirroredSlots(raw: unknown): MirroredSlot[] {
  if (!Array.isArray(raw)) return [];
  const slots: MirroredSlot[] = [];
  for (const entry of raw.slice(0, REPLICAS_MAX)) {
    if (typeof entry !== "object" || entry === null) continue;
    const { id, restart_lsn: restartLsn, region } = entry as Record<string, unknown>;
    if (typeof id !== "string" || !REPLICA_ID_PATTERN.test(id)) continue;
    if (typeof restartLsn !== "number" || !Number.isSafeInteger(restartLsn) || restartLsn < 0) {
      continue;
    }
    if (region !== undefined && typeof region !== "string") continue;
    slots.push(
      region === undefined
        ? { id, restart_lsn: restartLsn }
        : { id, restart_lsn: restartLsn, region },
    );
  }
  return slots;
}
