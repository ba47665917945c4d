/**
 * The commit waiter (SPEC.md section 6): once a write is durable on the primary it may wait until
 * enough replicas have durably acked its last LSN. Policies themselves are in `commit_policy.ts`.
 *
 * The waiter keeps one durable LSN per registered replica. Every change (a rising ack, a
 * registration or region change, a drop) re-evaluates the pending waits right away; there is no
 * polling. A wait ends only when its policy holds ("reached") or at its timeout ("timed_out"); an
 * aborted request signal counts as a timeout. A timed-out write is never rolled back.
 *
 * @module
 */

import assert from "../core/assert.ts";
import {
  ACK_N_MAX,
  COMMIT_POLICY_REGIONS_MAX,
  COMMIT_TIMEOUT_MS_MAX,
  COMMIT_WAITS_MAX,
} from "../core/limits.ts";
import { Waiters } from "../core/waiter.ts";
import { type CommitPolicy, formatCommitPolicy } from "./commit_policy.ts";
import type { CommitOutcome } from "../model/commit.ts";
import { OverloadedError } from "../core/errors.ts";

/** How many waits ended with each outcome (`ferry_commit_wait_total{outcome}`). */
export interface CommitWaitCounters {
  reached: number;
  timed_out: number;
  not_required: number;
}

/** A place held for one commit wait, taken before its write is appended. */
export interface CommitReservation {
  /** Gives the place back (the append failed); idempotent. */
  release(): void;
}

interface _Replica {
  region: string | undefined;
  durableLsn: number;
}

const _NO_RESERVATION: CommitReservation = { release() {} };

interface _Evaluation {
  met: boolean;
  required: number;
  observed: number;
}

/**
 * Holds writes until their commit policy is met by the replicas' durable acks, or their timeout
 * passes. In-memory and synchronous apart from `wait()`; no I/O.
 *
 * @example
 * ```ts
 * const waiter = new CommitWaiter();
 * waiter.upsertReplica("r1", "eu");
 * const pending = waiter.wait(42, { kind: "ack_n", n: 1 }, { timeoutMs: 5000 });
 * waiter.recordAck("r1", 42);
 * const outcome = await pending; // { outcome: "reached", durableReplicas: ["r1"], ... }
 * ```
 */
export class CommitWaiter {
  #clock: () => number;
  #replicas = new Map<string, _Replica>();
  /** Held writes, keyed by their target LSN. */
  #waits: Waiters<number>;
  #waitsMax: number;
  /** Places taken by writes still being appended. */
  #reserved = 0;
  #counters: CommitWaitCounters = { reached: 0, timed_out: 0, not_required: 0 };
  #members: ReadonlySet<string> | undefined;
  /**
   * No counted replica's durable LSN is above this (never lowered: a drop leaves it high, which
   * only costs a look). A write above it is held by no replica yet, known without visiting each.
   */
  #durableMax = 0;

  /**
   * `clock` in ms, used only for `waitedMs` (default `performance.now`, monotonic); `waitsMax`
   * waits held at once (default {@link COMMIT_WAITS_MAX}). In a cluster (SPEC.md 13.4) `members`
   * are the other members' ids: `quorum` is then a majority of the members with this primary
   * counted as one, and edge replicas do not count towards it.
   */
  constructor(
    options: { clock?: () => number; waitsMax?: number; members?: ReadonlySet<string> } = {},
  ) {
    this.#clock = options.clock ?? (() => performance.now());
    this.#members = options.members;
    this.#waitsMax = options.waitsMax ?? COMMIT_WAITS_MAX;
    this.#waits = new Waiters({ max: this.#waitsMax, what: "writes waiting for replicas" });
  }

  /**
   * Counts a replica in commit waits from `durableLsn` (where the registry says it stands, 0 for
   * a new one), or updates a counted one: its region, and its durable LSN if `durableLsn` is
   * higher. Re-evaluates the pending waits when something changed.
   */
  upsertReplica(id: string, region: string | undefined, durableLsn = 0): void {
    assert(id.length > 0, "a replica id is never empty");
    assert(Number.isSafeInteger(durableLsn) && durableLsn >= 0, "durable LSN out of range");
    const replica = this.#replicas.get(id);
    this.#durableMax = Math.max(this.#durableMax, durableLsn);
    if (replica === undefined) {
      this.#replicas.set(id, { region, durableLsn });
    } else if (replica.region !== region || replica.durableLsn < durableLsn) {
      replica.region = region;
      replica.durableLsn = Math.max(replica.durableLsn, durableLsn);
    } else {
      return;
    }
    this.#waits.wake();
  }

  /**
   * Records a replica's durable LSN. Only raises the stored value; ignored for an unregistered
   * id. Wakes the waits whose target the replica just crossed.
   */
  recordAck(id: string, durableLsn: number): void {
    assert(Number.isSafeInteger(durableLsn) && durableLsn >= 0, "durable LSN out of range");
    const replica = this.#replicas.get(id);
    if (replica === undefined || durableLsn <= replica.durableLsn) return;
    const before = replica.durableLsn;
    replica.durableLsn = durableLsn;
    this.#durableMax = Math.max(this.#durableMax, durableLsn);
    this.#waits.wake((targetLsn) => targetLsn > before && targetLsn <= durableLsn);
  }

  /** Forgets a replica: its ack stops counting and every pending wait re-evaluates at once. */
  dropReplica(id: string): void {
    if (this.#replicas.delete(id)) this.#waits.wake();
  }

  /** The n-th highest durable LSN of the registered replicas; 0 when n = 0 or fewer exist. */
  watermark(n: number): number {
    assert(Number.isSafeInteger(n) && n >= 0);
    if (n === 0 || n > this.#replicas.size) return 0;
    const lsns = Array.from(this.#replicas.values(), (r) => r.durableLsn).sort((a, b) => b - a);
    return lsns[n - 1]!;
  }

  /** The highest durable LSN of a counted replica in `region` (0 with none). */
  bestDurableIn(region: string): number {
    let best = 0;
    for (const replica of this.#replicas.values()) {
      if (replica.region === region) best = Math.max(best, replica.durableLsn);
    }
    return best;
  }

  /**
   * In a cluster, the commit LSN: the highest LSN durable on a majority of the members, this
   * primary (durable at `currentLsn`) counted as one. Undefined outside a cluster.
   */
  commitLsn(currentLsn: number): number | undefined {
    if (this.#members === undefined) return undefined;
    const others = Math.floor((this.#members.size + 1) / 2);
    if (others === 0) return currentLsn;
    const lsns = [...this.#members].map((id) => this.#replicas.get(id)?.durableLsn ?? 0)
      .sort((a, b) => b - a);
    return Math.min(currentLsn, lsns[others - 1] ?? 0);
  }

  /** Registered replicas. */
  registeredCount(): number {
    return this.#replicas.size;
  }

  /**
   * Holds a place for the wait of a write about to be appended, so a write that could not wait is
   * refused before it is durable: a durable write is never answered as failed (SPEC.md 6, 9.2).
   * Policies that never wait need no place. Pass the reservation to `wait()`, or release it.
   *
   * @throws {OverloadedError} when every place is taken.
   */
  reserve(policy: CommitPolicy): CommitReservation {
    if (!_needsWait(policy)) return _NO_RESERVATION;
    if (this.#waits.size + this.#reserved >= this.#waitsMax) {
      throw new OverloadedError("too many writes are waiting for replicas; retry shortly", {
        pending_waits: this.#waits.size,
      });
    }
    this.#reserved += 1;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#reserved -= 1;
      },
    };
  }

  /** Waits held right now (a gauge). */
  pendingWaits(): number {
    return this.#waits.size;
  }

  /** How many waits ended with each outcome, since construction. */
  counters(): CommitWaitCounters {
    return { ...this.#counters };
  }

  /**
   * Waits until `policy` holds for `targetLsn` or `timeoutMs` passes. `local` and `ack_n=0`
   * resolve "not_required" at once; a policy already met resolves "reached" at once. Otherwise
   * the wait is held until an ack, registration or drop makes the policy hold ("reached") or the
   * timeout passes ("timed_out"); an aborted `signal` ends it at once as "timed_out". A drop
   * never ends a wait early as failed. Never rejects except with `OverloadedError` when every
   * place is taken and no `reservation` (from `reserve()`) holds one for this wait.
   *
   * `targetLsn` ≥ 0 and 0 ≤ `timeoutMs` ≤ {@link COMMIT_TIMEOUT_MS_MAX} are asserted: callers
   * validate client input first.
   */
  async wait(
    targetLsn: number,
    policy: CommitPolicy,
    options: { timeoutMs: number; signal?: AbortSignal; reservation?: CommitReservation },
  ): Promise<CommitOutcome> {
    // The reserved place becomes this wait's: the bound below counts it once.
    options.reservation?.release();
    assert(Number.isSafeInteger(targetLsn) && targetLsn >= 0, "target LSN out of range");
    assert(
      Number.isFinite(options.timeoutMs) && options.timeoutMs >= 0 &&
        options.timeoutMs <= COMMIT_TIMEOUT_MS_MAX,
    );
    _assertPolicy(policy);
    if (!_needsWait(policy)) return this.#end(targetLsn, policy, "not_required", 0);
    const met = () => _evaluate(this.#replicas, targetLsn, policy, this.#members).met;
    // Answered without holding: waitedMs is exactly 0.
    if (met()) return this.#end(targetLsn, policy, "reached", 0);
    if (options.timeoutMs === 0 || options.signal?.aborted) {
      return this.#end(targetLsn, policy, "timed_out", 0);
    }
    const startedMs = this.#clock();
    const reached = await this.#waits.wait(targetLsn, met, options);
    const waitedMs = Math.max(0, this.#clock() - startedMs);
    return this.#end(targetLsn, policy, reached ? "reached" : "timed_out", waitedMs);
  }

  /**
   * Ends every pending wait now (shutdown): each reports what its policy reached at this moment,
   * `reached` if it holds, else `timed_out`. The writes themselves are durable either way.
   */
  releaseAll(): void {
    this.#waits.releaseAll();
  }
  /** Shutdown: answers every held wait now and holds no new one (each answers at once). */
  close(): void {
    this.#waits.close();
  }

  /** Counts the outcome and describes what the replicas hold now. */
  #end(
    targetLsn: number,
    policy: CommitPolicy,
    outcome: CommitOutcome["outcome"],
    waitedMs: number,
  ): CommitOutcome {
    this.#counters[outcome] += 1;
    const durableReplicas: string[] = [];
    const regions = new Set<string>();
    // Most writes are answered before any replica holds them: no need to visit every replica.
    const replicas = targetLsn > this.#durableMax ? [] : this.#replicas;
    for (const [id, replica] of replicas) {
      if (replica.durableLsn < targetLsn) continue;
      durableReplicas.push(id);
      if (replica.region !== undefined) regions.add(replica.region);
    }
    const { required, observed } = _evaluate(this.#replicas, targetLsn, policy, this.#members);
    return {
      policy: formatCommitPolicy(policy),
      outcome,
      durableReplicas: durableReplicas.sort(),
      regions: [...regions].sort(),
      waitedMs,
      required,
      observed,
    };
  }
}

/** Whether the policy holds for `targetLsn`, with the required and observed figures. */
function _evaluate(
  replicas: ReadonlyMap<string, _Replica>,
  targetLsn: number,
  policy: CommitPolicy,
  members: ReadonlySet<string> | undefined,
): _Evaluation {
  if (policy.kind === "local") return { met: true, required: 0, observed: 0 };
  if (policy.kind === "quorum" && members !== undefined) {
    return _memberQuorum(replicas, targetLsn, members);
  }
  if (policy.kind === "regions") {
    const covered = new Set<string | undefined>();
    for (const replica of replicas.values()) {
      if (replica.durableLsn >= targetLsn) covered.add(replica.region);
    }
    const observed = policy.regions.filter((region) => covered.has(region)).length;
    const required = policy.regions.length;
    return { met: observed === required, required, observed };
  }
  let observed = 0;
  for (const replica of replicas.values()) {
    if (replica.durableLsn >= targetLsn) observed += 1;
  }
  // With no replica registered the majority is 1, which nothing can meet.
  const required = policy.kind === "ack_n" ? policy.n : Math.floor(replicas.size / 2) + 1;
  return { met: observed >= required, required, observed };
}

/** A majority of the members, this primary counted as one: the others needed are ⌊(M+1)/2⌋. */
function _memberQuorum(
  replicas: ReadonlyMap<string, _Replica>,
  targetLsn: number,
  members: ReadonlySet<string>,
): _Evaluation {
  let observed = 0;
  for (const id of members) if ((replicas.get(id)?.durableLsn ?? 0) >= targetLsn) observed += 1;
  const required = Math.floor((members.size + 1) / 2);
  return { met: observed >= required, required, observed };
}

function _needsWait(policy: CommitPolicy): boolean {
  return !(policy.kind === "local" || (policy.kind === "ack_n" && policy.n === 0));
}

/** Policies built in code (not parsed) must still be ones `parseCommitPolicy` could return. */
function _assertPolicy(policy: CommitPolicy): void {
  if (policy.kind === "ack_n") {
    assert(Number.isSafeInteger(policy.n) && policy.n >= 0 && policy.n <= ACK_N_MAX);
  } else if (policy.kind === "regions") {
    assert(policy.regions.length >= 1 && policy.regions.length <= COMMIT_POLICY_REGIONS_MAX);
  }
}
