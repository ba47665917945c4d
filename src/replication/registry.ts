/**
 * The replica registry (SPEC.md section 5): who is registered, what each was sent and acked, when
 * each was last seen, and health by last-seen time. Every change of shape (a new or removed replica,
 * a `rebootstrapping` change, a health flip) raises the topology epoch; reconnects do not.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { NotFoundError, OverloadedError } from "../core/errors.ts";
import { REPLICAS_MAX } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
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

/** A replica as the registry keeps it. */
export interface RegisteredReplica extends ReplicaState {
  /** The next served pull is a reconnect (after a register, or after the replica was unhealthy). */
  resumePending: boolean;
  /** Pulls of this replica held open right now: while one is, the replica is seen. */
  openPulls: number;
}

/** Progress across replicas (undefined with none): SPEC.md section 5. */
export interface ReplicationProgress {
  lagLsn: number;
  safeReplayLsn: number;
}

/** What the registry raises on every change of shape (the topology epoch). */
export interface EpochCounter {
  bump(): number;
}

/** The registered replicas of one primary. */
export class ReplicaRegistry {
  #replicas = new Map<string, RegisteredReplica>();
  #epoch: EpochCounter;
  #logger: Logger;
  #healthyWithinMs: number;

  constructor(options: { epoch: EpochCounter; logger: Logger; healthyWithinMs: number }) {
    this.#epoch = options.epoch;
    this.#logger = options.logger;
    this.#healthyWithinMs = options.healthyWithinMs;
  }

  get size(): number {
    return this.#replicas.size;
  }

  get(id: string): RegisteredReplica | undefined {
    return this.#replicas.get(id);
  }

  values(): IterableIterator<RegisteredReplica> {
    return this.#replicas.values();
  }

  /**
   * The replica `id`, registered now when new (starting at `startLsn`, its slot's position). A
   * known one is touched and, when `region` differs, takes it (`regionChanged`). Throws
   * `OverloadedError` past {@link REPLICAS_MAX} replicas.
   */
  upsert(
    id: string,
    options: { region: string | undefined; nowMs: number; startLsn: number },
  ): { replica: RegisteredReplica; regionChanged: boolean } {
    assert.match(id, REPLICA_ID_PATTERN);
    const existing = this.#replicas.get(id);
    if (existing) {
      const regionChanged = options.region !== undefined && options.region !== existing.region;
      if (regionChanged) existing.region = options.region;
      this.touch(existing, options.nowMs);
      return { replica: existing, regionChanged };
    }
    if (this.#replicas.size >= REPLICAS_MAX) {
      throw new OverloadedError(`ferry serves at most ${REPLICAS_MAX} replicas`);
    }
    const replica = _newReplica(id, options);
    this.#replicas.set(id, replica);
    this.#epoch.bump();
    this.#logger.info("replica.registered", {
      replica_id: id,
      region: options.region,
      restart_lsn: options.startLsn,
    });
    return { replica, regionChanged: false };
  }

  /**
   * Forgets `id` (`unregistered` by an admin, or `forgotten`: unhealthy with no slot); false when
   * it was not registered.
   */
  delete(id: string, why: "unregistered" | "forgotten" = "unregistered"): boolean {
    if (!this.#replicas.delete(id)) return false;
    this.#epoch.bump();
    this.#logger.info(`replica.${why}`, { replica_id: id });
    return true;
  }

  /** Seen now: last-seen only rises, and an unhealthy replica turns healthy (an epoch move). */
  touch(replica: RegisteredReplica, nowMs: number): void {
    replica.lastSeenAtUnixMs = Math.max(replica.lastSeenAtUnixMs, nowMs);
    if (!replica.healthy) {
      replica.healthy = true;
      this.#epoch.bump();
      this.#logger.info("replica.healthy", { replica_id: replica.id });
    }
  }

  /** A pull of `replica` is held open: the replica is seen for as long as it is. */
  pullOpened(replica: RegisteredReplica): void {
    replica.openPulls += 1;
  }

  /** A held pull ended (answered, timed out or abandoned): seen now. */
  pullClosed(replica: RegisteredReplica, nowMs: number): void {
    replica.openPulls -= 1;
    this.touch(replica, nowMs);
  }

  /**
   * Frames through `lsn` went to `id` on a stream: noted for progress, but not a sign of life (a
   * replica is seen by its requests and acks, never by an open socket: SPEC.md 13.1).
   */
  noteSent(id: string, lsn: number): void {
    const replica = this.#replicas.get(id);
    if (replica) replica.lastSentLsn = Math.max(replica.lastSentLsn, lsn);
  }

  /** Sets the `rebootstrapping` flag; a change moves the epoch. */
  setRebootstrapping(id: string, rebootstrapping: boolean): ReplicaState {
    const replica = this.#replicas.get(id);
    if (!replica) throw new NotFoundError(`replica ${id} is not registered`, { replica_id: id });
    if (replica.rebootstrapping !== rebootstrapping) {
      replica.rebootstrapping = rebootstrapping;
      this.#epoch.bump();
      const event = rebootstrapping
        ? "replica.rebootstrap_started"
        : "replica.rebootstrap_finished";
      this.#logger.info(event, { replica_id: id });
    }
    return stateOf(replica);
  }

  /**
   * Flips health by last-seen time; a flip moves the epoch, and a recovery is a reconnect. A
   * replica with a pull held open is seen now: a held pull outlasts the health window.
   */
  sweepHealth(nowMs: number): void {
    for (const replica of this.#replicas.values()) {
      if (replica.openPulls > 0) {
        replica.lastSeenAtUnixMs = Math.max(replica.lastSeenAtUnixMs, nowMs);
      }
      const healthy = nowMs - replica.lastSeenAtUnixMs <= this.#healthyWithinMs;
      if (healthy === replica.healthy) continue;
      replica.healthy = healthy;
      if (!healthy) replica.resumePending = true;
      this.#epoch.bump();
      this.#logger.info(healthy ? "replica.healthy" : "replica.unhealthy", {
        replica_id: replica.id,
        last_seen_at_unix_ms: replica.lastSeenAtUnixMs,
      });
    }
  }

  /** Every registered replica, sorted by id. */
  list(): ReplicaState[] {
    return [...this.#replicas.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(stateOf);
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
}

/** A copy of what status and topology may see of a replica. */
export function stateOf(replica: RegisteredReplica): ReplicaState {
  const { resumePending: _resume, openPulls: _pulls, ...state } = replica;
  return { ...state };
}

function _newReplica(
  id: string,
  options: { region: string | undefined; nowMs: number; startLsn: number },
): RegisteredReplica {
  const { region, nowMs, startLsn } = options;
  return {
    id,
    region,
    lastSentLsn: startLsn,
    lastAckedLsn: startLsn,
    lastDurableLsn: startLsn,
    applyErrorCount: 0,
    divergenceCount: 0,
    connectedAtUnixMs: nowMs,
    lastSeenAtUnixMs: nowMs,
    rebootstrapping: false,
    healthy: true,
    resumePending: true,
    openPulls: 0,
  };
}
