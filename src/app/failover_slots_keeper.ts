/**
 * A cluster member's failover slots (SPEC.md 13.4), across its roles:
 *
 * - **standby**: keeps the slots of the leader's latest control record; its retention never prunes
 *   past their lowest `restart_lsn` (`pruneFloor`);
 * - **promotion**: the slots kept (or, with none, etcd's document) capped at the fork LSN become
 *   real slots, so an edge that resumes here at or after its restart LSN is served partially;
 * - **leader**: writes the batched etcd document when the throttle says so (a failure is logged
 *   once until a write succeeds, never fatal), only while etcd's leader key still names it: once
 *   another leader holds the key, it stops publishing (`cluster.slots_write_refused`).
 *
 * @module
 */

import {
  capAtFork,
  mirroredPruneFloor,
  type MirroredSlot,
  parseSlotsDocument,
  slotsDocument,
  SlotsDocumentThrottle,
} from "../cluster/failover_slots.ts";
import type { Coordinator, LeaderRecord } from "../cluster/coordinator.ts";
import { SLOTS_MIRROR_CHECK_MS } from "../core/cluster_limits.ts";
import type { Logger } from "../core/log.ts";
import { adoptMirroredSlots, edgeSlots } from "../replication/failover_slots_source.ts";
import type { Primary } from "../replication/primary.ts";

/** The failover slots of one member (see the module comment). */
export class FailoverSlotsKeeper {
  readonly #coordinator: Coordinator;
  readonly #logger: Logger;
  readonly #clock: () => number;
  #mirrored: MirroredSlot[] = [];
  #throttle = new SlotsDocumentThrottle();
  #timer: ReturnType<typeof setInterval> | undefined;
  #writeFailing = false;

  constructor(parts: { coordinator: Coordinator; logger: Logger; clock?: () => number }) {
    this.#coordinator = parts.coordinator;
    this.#logger = parts.logger;
    this.#clock = parts.clock ?? Date.now;
  }

  /** The slots of the leader's latest control record (a standby's follower hands them over). */
  keep(slots: MirroredSlot[]): void {
    const ids = (list: readonly MirroredSlot[]) => list.map((slot) => slot.id).join(",");
    if (ids(slots) !== ids(this.#mirrored)) {
      this.#logger.info("cluster.slots_mirrored", { replica_ids: slots.map((slot) => slot.id) });
    }
    this.#mirrored = slots;
  }

  /** The slots kept now. */
  get mirrored(): readonly MirroredSlot[] {
    return this.#mirrored;
  }

  /** A standby's extra retention floor: the lowest mirrored restart LSN (Infinity when none). */
  readonly pruneFloor = (): number => mirroredPruneFloor(this.#mirrored);

  /**
   * The slots a new leader adopts: the ones kept, or with none (this node was not streaming) the
   * etcd document's. Read before the leader's stores open, so adopting them takes no await.
   */
  async toAdopt(): Promise<MirroredSlot[]> {
    if (this.#mirrored.length > 0) return this.#mirrored;
    try {
      return parseSlotsDocument(await this.#coordinator.readSlots());
    } catch (error) {
      this.#logger.warn("cluster.slots_read_failed", { error });
      return [];
    }
  }

  /** Creates the adopted slots (capped at `forkLsn`, members skipped) on the new leader. */
  async adopt(
    primary: Primary,
    slots: readonly MirroredSlot[],
    parts: { forkLsn: number; members: ReadonlySet<string> },
  ): Promise<void> {
    const capped = capAtFork(slots, parts.forkLsn);
    const adopted = await adoptMirroredSlots(primary.slots, capped, {
      members: parts.members,
      timeline: primary.timeline,
      nowMs: this.#clock(),
    });
    if (adopted.length > 0) {
      this.#logger.info("cluster.slots_adopted", { replica_ids: adopted, fork_lsn: parts.forkLsn });
    }
  }

  /** As leader: checks every `SLOTS_MIRROR_CHECK_MS` whether the etcd document is due. */
  startPublishing(primary: Primary, parts: _Publishing): void {
    this.stopPublishing();
    this.#throttle = new SlotsDocumentThrottle();
    this.#timer = setInterval(() => void this.#publish(primary, parts), SLOTS_MIRROR_CHECK_MS);
  }

  stopPublishing(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #publish(primary: Primary, parts: _Publishing) {
    const nowMs = this.#clock();
    const slots = edgeSlots(primary.slots, {
      members: parts.members,
      replicas: primary.replicas(),
    });
    if (!this.#throttle.shouldWrite(slots, nowMs)) return;
    try {
      const written = await this.#coordinator.writeSlots(
        slotsDocument(slots, { term: parts.leader.term, writtenAtUnixMs: nowMs }),
        parts.leader,
      );
      this.#writeFailing = false;
      if (!written) {
        this.#logger.warn("cluster.slots_write_refused", { term: parts.leader.term });
        this.stopPublishing();
      }
    } catch (error) {
      // Written again at the next check: the throttle forgets the failed write.
      this.#throttle = new SlotsDocumentThrottle();
      if (!this.#writeFailing) this.#logger.warn("cluster.slots_write_failed", { error });
      this.#writeFailing = true;
    }
  }
}

/** What a leader publishes under: its leader key's value, and the members (never mirrored). */
interface _Publishing {
  leader: LeaderRecord;
  members: ReadonlySet<string>;
}
