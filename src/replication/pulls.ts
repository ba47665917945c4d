/**
 * Serving pulls (SPEC.md 7 and 9.3) for `Primary.pull` and `Primary.pullRaw`: the term check,
 * resume planning for an identified replica, the optional long-poll hold, then the records, and
 * the registry's note of what was sent. JSON pulls get the records decoded and CRC-checked
 * (`Spool.readSince`); raw-frame pulls get them as the bytes stored (`Spool.readRawSince`, no CRC
 * computed here: the receiver checks them).
 *
 * @module
 */

import { TermMismatchError, WalRemovedError } from "../core/errors.ts";
import type { Spool } from "../wal/spool.ts";
import type { ReplicaRegistry } from "./registry.ts";
import type { ResyncCounters } from "./resume.ts";
import type { RawFrames } from "../wal/range_read.ts";
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
}

/** Serves the pulls of one primary. */
export class PullServer {
  #deps: PullServerDeps;

  constructor(deps: PullServerDeps) {
    this.#deps = deps;
  }

  /** A JSON pull: the records decoded and CRC-checked. */
  async pull(request: PullRequest): Promise<PullResult> {
    const start = await this.#open(request);
    const frames = await this.#deps.spool.readSince(start, request.maxCount, request.maxBytes)
      .catch(this.#readError);
    this.#noteSent(request.replicaId, frames[frames.length - 1]?.lsn ?? 0);
    return { frames, ...this.position(start) };
  }

  /**
   * A raw-frame pull: the same records as the bytes stored. No CRC is computed here, so a damaged
   * payload is found by the receiver's check; a damaged header still fails the pull here.
   */
  async pullRaw(request: PullRequest): Promise<RawPullResult> {
    const start = await this.#open(request);
    const raw = await this.#deps.spool.readRawSince(start, request.maxCount, request.maxBytes)
      .catch(this.#readError);
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
    if (request.awaitTimeoutMs > 0 && this.#deps.spool.currentLsn() <= start) {
      await this.#hold(request.replicaId, start, request);
    }
    return start;
  }

  /**
   * Where a pull or a stream of `request` starts: the term check, then resume planning for an
   * identified replica (SPEC.md 7), else `since_lsn` when the spool still holds what follows it.
   */
  planStart(request: Pick<PullRequest, "replicaId" | "sinceLsn" | "term">): number {
    const term = this.#deps.term();
    if (request.term !== undefined && request.term !== term) {
      throw new TermMismatchError(request.term, term);
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
      await this.#deps.spool.waitForAppend(start, {
        timeoutMs: request.awaitTimeoutMs,
        signal: request.signal,
      });
    } finally {
      if (replica) registry.pullClosed(replica, this.#deps.clock());
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
