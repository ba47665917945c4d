/**
 * Opt-in batching of the group commits a stream hub fans out (`--stream-batch-ms`). Each chunk
 * handed to a stream costs the primary a turn of the response's body pump and a socket write, about
 * 4 µs per stream on this 2-core machine, whatever its size: at 100 streams that is the largest
 * cost of a fan-out. With a batch interval, commits that become durable within it of the last
 * delivery are held and delivered together, as one contiguous commit (one chunk per stream) at
 * most once per interval; a commit after a quiet interval goes at once. 0 (the default) delivers
 * each group commit as soon as it is durable (SPEC.md 13.1).
 *
 * @module
 */

import assert from "../core/assert.ts";
import { concatBytes } from "../core/bytes.ts";
import type { GroupCommit } from "../wal/commit_feed.ts";

/** Where a batcher's time and timers come from (tests give a manual clock). */
export interface BatchTimer {
  /** Milliseconds (a wall clock may step back: no wait is ever longer than the interval). */
  now: () => number;
  /** Runs `run` after `ms`; returns the cancel. */
  schedule: (run: () => void, ms: number) => () => void;
}

/** Real time: `performance.now` and `setTimeout`. */
export const REAL_TIMER: BatchTimer = {
  now: () => performance.now(),
  schedule: (run, ms) => {
    const timer = setTimeout(run, ms);
    return () => clearTimeout(timer);
  },
};

/** Delivers group commits at most once per `batchMs`, contiguous commits merged. */
export class CommitBatcher {
  #batchMs: number;
  #deliver: (commit: GroupCommit) => void;
  #timer: BatchTimer;
  #held: GroupCommit[] = [];
  #lastDeliveryMs = -Infinity;
  #cancel: (() => void) | undefined;

  constructor(batchMs: number, deliver: (commit: GroupCommit) => void, timer = REAL_TIMER) {
    assert(Number.isFinite(batchMs) && batchMs >= 0, "a batch interval is a duration");
    this.#batchMs = batchMs;
    this.#deliver = deliver;
    this.#timer = timer;
  }

  /** Commits held for the next delivery. */
  get held(): number {
    return this.#held.length;
  }

  /** A group commit is durable: deliver it now, or with the next batch. */
  push(commit: GroupCommit): void {
    this.#held.push(commit);
    if (this.#cancel !== undefined) return;
    const sinceMs = this.#timer.now() - this.#lastDeliveryMs;
    if (!(sinceMs >= 0 && sinceMs < this.#batchMs)) return this.flush();
    const waitMs = this.#batchMs - sinceMs;
    this.#cancel = this.#timer.schedule(() => {
      this.#cancel = undefined;
      this.flush();
    }, waitMs);
  }

  /** Delivers what is held now, each run of contiguous commits as one commit. */
  flush(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    this.#lastDeliveryMs = this.#timer.now();
    if (held.length === 1) return this.#deliver(held[0]!); // the usual case; every one at 0
    for (const run of _contiguousRuns(held)) {
      this.#deliver(run.length === 1 ? run[0]! : _merged(run));
    }
  }

  /** Drops what is held and the pending delivery (no stream is left to get it). */
  clear(): void {
    this.#cancel?.();
    this.#cancel = undefined;
    this.#held = [];
  }
}

/**
 * `commits` cut where the LSNs do not follow on (a feed hands listeners only the commits made
 * while one listened: a stream that meets a gap reads it from the spool).
 */
function _contiguousRuns(commits: readonly GroupCommit[]): GroupCommit[][] {
  const runs: GroupCommit[][] = [];
  for (const commit of commits) {
    const run = runs[runs.length - 1];
    const last = run?.[run.length - 1];
    if (last !== undefined && commit.firstLsn === last.lastLsn + 1) run!.push(commit);
    else runs.push([commit]);
  }
  return runs;
}

/** Contiguous group commits as one: their frames back to back, as the spool stored them. */
function _merged(commits: readonly GroupCommit[]): GroupCommit {
  return {
    firstLsn: commits[0]!.firstLsn,
    lastLsn: commits[commits.length - 1]!.lastLsn,
    bytes: concatBytes(commits.map((commit) => commit.bytes)),
  };
}
