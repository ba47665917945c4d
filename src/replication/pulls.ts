/**
 * Serving pulls (SPEC.md 7 and 9.3) for `Primary.pull` and `Primary.pullRaw`: the term check,
 * resume planning for an identified replica, the optional long-poll hold, then the records, and
 * the registry's note of what was sent. JSON pulls get the records decoded and CRC-checked
 * (`Spool.readSince`); raw-frame pulls get them as the bytes stored (`Spool.readRawSince`, no CRC
 * computed here: the receiver checks them).
 *
 * In a cluster (SPEC.md 13.4, `commitLsn` given) an edge (a replica that is not a member, or an
 * anonymous pull) gets only records at or below the commit LSN: its reads are capped there, and
 * its held pull waits until a record after its start is committed, not merely appended. The
 * commit LSN rises on members' acks, so whoever computes it calls `commitAdvanced()` after each
 * rise; group commits are watched here (while an edge pull waits for one).
 *
 * @module
 */

import { TermMismatchError, WalRemovedError } from "../core/errors.ts";
import { APPEND_WAITERS_MAX } from "../core/limits.ts";
import { Waiters, type WaitOptions } from "../core/waiter.ts";
import type { Spool } from "../wal/spool.ts";
import type { ReplicaRegistry } from "./registry.ts";
import type { ResyncCounters } from "./resume.ts";
import { emptyRawFrames, type RawFrames } from "../wal/range_read.ts";
import type { PullPosition, PullRequest, PullResult, RawPullResult } from "./types.ts";

/** What the pull server uses of the primary. */
export interface PullServerDeps {
  spool: Spool;
  registry: ReplicaRegistry;
  clock: () => number;
  term: () => number;
  timeline: () => number;
  resyncs: ResyncCounters;
  /** Where to serve an identified replica from (`Primary.planResume`). */
  planResume: (replicaId: string, sinceLsn: number | undefined) => number;
  /** In a cluster (SPEC.md 13.4): the members' ids; every other replica is an edge. */
  members?: ReadonlySet<string>;
  /** In a cluster: the commit LSN. Absent (a single primary): nothing is gated. */
  commitLsn?: () => number;
  /** In a cluster: throws `TimelineDivergedError` for a position off the history. */
  positionCheck?: (position: { lsn: number; term: number }) => void;
}

/** Serves the pulls of one primary. */
export class PullServer {
  #deps: PullServerDeps;
  /** Edge pulls held until the commit LSN passes their start (appended, not yet committed). */
  #committed = new Waiters({ max: APPEND_WAITERS_MAX, what: "held pulls" });
  /** Unsubscribes from the spool's group commits (subscribed while edge pulls are held). */
  #unwatchCommits: (() => void) | undefined;

  constructor(deps: PullServerDeps) {
    this.#deps = deps;
  }

  /** True in a cluster: edges get only committed records. */
  get gated(): boolean {
    return this.#deps.commitLsn !== undefined;
  }

  /** True when `replicaId` gets only committed records: an edge (or anonymous) in a cluster. */
  isGated(replicaId: string | undefined): boolean {
    if (this.#deps.commitLsn === undefined) return false;
    return replicaId === undefined || !(this.#deps.members?.has(replicaId) ?? false);
  }

  /** The commit LSN, never above the current LSN; the current LSN outside a cluster. */
  commitLsn(): number {
    const current = this.#deps.spool.currentLsn();
    const commit = this.#deps.commitLsn;
    return commit === undefined ? current : Math.min(current, commit());
  }

  /** The last LSN `replicaId` may be served now: the commit LSN for an edge, else the current. */
  servableLsn(replicaId: string | undefined): number {
    return this.isGated(replicaId) ? this.commitLsn() : this.#deps.spool.currentLsn();
  }

  /** The commit LSN may have risen: answers every held edge pull it now reaches. */
  commitAdvanced(): void {
    this.#committed.wake();
  }

  /** Shutdown or fencing: answers the held edge pulls now and holds no new one. */
  close(): void {
    this.#committed.close();
  }

  /** A JSON pull: the records decoded and CRC-checked. */
  async pull(request: PullRequest): Promise<PullResult> {
    const start = await this.#open(request);
    const count = this.#countAfter(start, request);
    const frames = count === 0
      ? []
      : await this.#deps.spool.readSince(start, count, request.maxBytes).catch(this.#readError);
    this.#noteSent(request.replicaId, frames[frames.length - 1]?.lsn ?? 0);
    return { frames, ...this.position(start) };
  }

  /**
   * A raw-frame pull: the same records as the bytes stored. No CRC is computed here, so a damaged
   * payload is found by the receiver's check; a damaged header still fails the pull here.
   */
  async pullRaw(request: PullRequest): Promise<RawPullResult> {
    const start = await this.#open(request);
    const count = this.#countAfter(start, request);
    const raw = count === 0
      ? emptyRawFrames(start)
      : await this.#deps.spool.readRawSince(start, count, request.maxBytes).catch(this.#readError);
    this.#noteSent(request.replicaId, raw.count > 0 ? raw.lastLsn : 0);
    return { raw, ...this.position(start) };
  }

  /**
   * The records after `sinceLsn` as stored, for a stream's catch-up: `pullRaw`'s read and errors,
   * with no planning and no hold (the stream was planned when it opened).
   */
  readRaw(sinceLsn: number, maxCount: number, maxBytes: number): Promise<RawFrames> {
    return this.#deps.spool.readRawSince(sinceLsn, maxCount, maxBytes).catch(this.#readError);
  }

  /** Term check, resume planning, and the long-poll hold of a pull; returns where it starts. */
  async #open(request: PullRequest): Promise<number> {
    const start = this.planStart(request);
    if (request.awaitTimeoutMs > 0 && this.servableLsn(request.replicaId) <= start) {
      await this.#hold(request.replicaId, start, request);
    }
    return start;
  }

  /**
   * Records a pull after `start` may take: its `maxCount`, capped at what its replica may be
   * served (LSNs follow each other without gaps, so a count caps the LSN); 0 when none.
   */
  #countAfter(start: number, request: PullRequest): number {
    return Math.max(0, Math.min(request.maxCount, this.servableLsn(request.replicaId) - start));
  }

  /**
   * Where a pull or a stream of `request` starts: the term check, then resume planning for an
   * identified replica (SPEC.md 7), else `since_lsn` when the spool still holds what follows it.
   */
  planStart(request: Pick<PullRequest, "replicaId" | "sinceLsn" | "term">): number {
    const term = this.#deps.term();
    if (request.term !== undefined) {
      // In a cluster a position is judged against the timeline history (SPEC.md 13.4).
      const check = this.#deps.positionCheck;
      if (check) check({ lsn: request.sinceLsn ?? 0, term: request.term });
      else if (request.term !== term) throw new TermMismatchError(request.term, term);
    }
    const { replicaId } = request;
    let start: number;
    if (replicaId !== undefined) start = this.#deps.planResume(replicaId, request.sinceLsn);
    else {
      start = request.sinceLsn ?? 0;
      this.#deps.resyncs.assertServable(start);
    }
    return start;
  }

  /** Rethrows a pull's read error; a record pruned under the read means a re-bootstrap. */
  #readError = (error: unknown): never => {
    if (!(error instanceof WalRemovedError)) throw error;
    throw this.#deps.resyncs.rebootstrap("wal-removed", error.message);
  };

  /** Where the primary stands, for a pull or stream that starts after `startLsn`. */
  position(startLsn: number): PullPosition {
    return {
      startLsn,
      currentLsn: this.#deps.spool.currentLsn(),
      oldestLsn: this.#deps.spool.oldestLsn(),
      term: this.#deps.term(),
      timeline: this.#deps.timeline(),
    };
  }

  /** Holds a pull until a record after `start` lands; the replica counts as seen meanwhile. */
  async #hold(replicaId: string | undefined, start: number, request: PullRequest): Promise<void> {
    const { registry } = this.#deps;
    const replica = replicaId === undefined ? undefined : registry.get(replicaId);
    if (replica) registry.pullOpened(replica);
    try {
      const wait = { timeoutMs: request.awaitTimeoutMs, signal: request.signal };
      if (this.isGated(replicaId)) await this.#holdCommitted(start, wait);
      else await this.#deps.spool.waitForAppend(start, wait);
    } finally {
      if (replica) registry.pullClosed(replica, this.#deps.clock());
    }
  }

  /**
   * Holds an edge's pull until a record after `start` is committed, within one timeout: first
   * until one is appended (the spool's wait, a held pull like any other), then until the commit
   * LSN reaches it (woken by `commitAdvanced` and by each group commit meanwhile).
   */
  async #holdCommitted(start: number, wait: WaitOptions): Promise<void> {
    const deadlineMs = performance.now() + wait.timeoutMs;
    if (!await this.#deps.spool.waitForAppend(start, wait)) return;
    this.#unwatchCommits ??= this.#deps.spool.onCommit(() => this.#committed.wake());
    try {
      const timeoutMs = deadlineMs - performance.now();
      await this.#committed.wait(undefined, () => this.commitLsn() > start, { ...wait, timeoutMs });
    } finally {
      if (this.#committed.size === 0) {
        this.#unwatchCommits?.();
        this.#unwatchCommits = undefined;
      }
    }
  }

  #noteSent(id: string | undefined, lastLsn: number): void {
    const replica = id === undefined ? undefined : this.#deps.registry.get(id);
    if (!replica) return;
    replica.lastSentLsn = Math.max(replica.lastSentLsn, lastLsn);
    // The slot was touched when the pull was planned; the registry keeps the exact last-seen time.
    this.#deps.registry.touch(replica, this.#deps.clock());
  }
}
