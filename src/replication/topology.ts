/**
 * Topology (SPEC.md sections 5 and 9.5): the epoch that rises whenever the replica set changes
 * shape (register, unregister, a `rebootstrapping` change, a health flip), long-poll waits on it,
 * and the advertisement document.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { TOPOLOGY_WAITERS_MAX } from "../core/limits.ts";
import { Waiters, WaitOptions } from "../core/waiter.ts";
import { type ReplicaState } from "./registry.ts";

/** One replica as topology shows it. */
export interface TopologyReplica {
  id: string;
  region: string;
  healthy: boolean;
  rebootstrapping: boolean;
  last_applied_lsn: number;
  lag_lsn: number;
  lag_ms: number;
}

/** The advertisement of SPEC.md 9.5. */
export interface TopologyDocument {
  epoch: number;
  primary: { url: string; region: string; term: number; timeline: number; current_lsn: number };
  replicas: TopologyReplica[];
}

/**
 * The topology epoch. It starts at the wall-clock millisecond of start-up so that it keeps rising
 * across restarts (clients compare it with the epoch they last saw), and rises by one per change.
 */
export class TopologyEpoch {
  #epoch: number;
  #waiters = new Waiters({ max: TOPOLOGY_WAITERS_MAX, what: "held topology requests" });

  constructor(startEpoch: number) {
    assert(Number.isSafeInteger(startEpoch) && startEpoch >= 0);
    this.#epoch = startEpoch;
  }

  get value(): number {
    return this.#epoch;
  }

  /** Number of held `waitForChange` calls (for a gauge). */
  get waiters(): number {
    return this.#waiters.size;
  }

  /** Raises the epoch and wakes every waiter. */
  bump(): number {
    this.#epoch += 1;
    this.#waiters.wake();
    return this.#epoch;
  }

  /**
   * Resolves with the current epoch as soon as it differs from `seenEpoch`, or when `timeoutMs`
   * passes or `signal` aborts (then with the unchanged epoch). The waiter is removed at once.
   */
  async waitForChange(seenEpoch: number, options: WaitOptions): Promise<number> {
    await this.#waiters.wait(undefined, () => this.#epoch !== seenEpoch, options);
    return this.#epoch;
  }

  /** Answers every held wait (shutdown). */
  releaseAll(): void {
    this.#waiters.releaseAll();
  }
  /** Shutdown: answers every held wait now and holds no new one (each answers at once). */
  close(): void {
    this.#waiters.close();
  }
}

/** The topology document of `replicas` (each with its lag in ms, in the same order). */
export function topologyDocument(
  parts: {
    epoch: number;
    primary: TopologyDocument["primary"];
    replicas: readonly ReplicaState[];
    lagsMs: readonly number[];
  },
): TopologyDocument {
  const current = parts.primary.current_lsn;
  return {
    epoch: parts.epoch,
    primary: parts.primary,
    replicas: parts.replicas.map((replica, i): TopologyReplica => ({
      id: replica.id,
      region: replica.region ?? "unknown",
      healthy: replica.healthy,
      rebootstrapping: replica.rebootstrapping,
      last_applied_lsn: replica.lastAckedLsn,
      lag_lsn: Math.max(0, current - replica.lastAckedLsn),
      lag_ms: parts.lagsMs[i]!,
    })),
  };
}
