/**
 * Failover slots on the primary's side (SPEC.md 13.4): what a cluster leader puts in its control
 * records (its edges' live slots), and how a new leader adopts the slots its standby mirrored.
 *
 * Members' own slots are never mirrored: a member follows whoever leads, from its own log.
 *
 * @module
 */

import type { MirroredSlot } from "../model/mirrored_slot.ts";
import { isLive, newSlot } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import type { ReplicaState } from "./registry.ts";

/** The live slots of the edges (every replica that is not a member), sorted by id. */
export function edgeSlots(
  slots: SlotStore,
  parts: { members: ReadonlySet<string>; replicas: readonly ReplicaState[] },
): MirroredSlot[] {
  const regions = new Map(parts.replicas.map((replica) => [replica.id, replica.region]));
  const mirrored: MirroredSlot[] = [];
  for (const slot of slots.all()) {
    if (!isLive(slot) || parts.members.has(slot.replicaId)) continue;
    const region = regions.get(slot.replicaId);
    mirrored.push({
      id: slot.replicaId,
      restart_lsn: slot.restartLsn,
      ...(region === undefined ? {} : { region }),
    });
  }
  return mirrored.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The control records of a primary: a cluster leader's (`failoverSlots`) carry its edges' slots,
 * a plain primary's or a relay's are unchanged.
 */
export function controlWithSlots(
  control: () => ControlRecord,
  parts: {
    failoverSlots?: boolean;
    members?: ReadonlySet<string>;
    slots: SlotStore;
    replicas: () => readonly ReplicaState[];
  },
): () => ControlRecord {
  if (!parts.failoverSlots) return control;
  const members = parts.members ?? new Set<string>();
  return () => ({
    ...control(),
    slots: edgeSlots(parts.slots, { members, replicas: parts.replicas() }),
  });
}

/**
 * Creates a live slot for each mirrored slot (already capped at the fork LSN) that this node has
 * none for and that is not a member's, so an edge resuming here at or after its restart LSN is
 * served partially. Persisted before resolving; returns the ids adopted.
 */
export async function adoptMirroredSlots(
  slots: SlotStore,
  mirrored: readonly MirroredSlot[],
  parts: { members: ReadonlySet<string>; timeline: number; nowMs: number },
): Promise<string[]> {
  const adopted: string[] = [];
  for (const slot of mirrored) {
    if (parts.members.has(slot.id) || slots.get(slot.id) || !slots.hasRoom()) continue;
    slots.set(newSlot({
      replicaId: slot.id,
      timeline: parts.timeline,
      restartLsn: slot.restart_lsn,
      nowMs: parts.nowMs,
    }));
    adopted.push(slot.id);
  }
  if (adopted.length > 0) await slots.flushNow();
  return adopted;
}
