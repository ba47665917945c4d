/**
 * Where a group commit's `fdatasync` runs: on a thread of Deno's blocking pool (the async op, the
 * usual way), or inline on the event loop's own thread.
 *
 * The async op costs two thread hand-offs per commit (to the pool thread and back): about 30 µs of
 * a single writer's 300 µs round trip on a disk that flushes in 0.2 ms, and at 1 000 writes/s
 * from one or two writers about a sixth of the primary's CPU. Inline, the thread that waits is the
 * one that answers. But nothing else in the process runs while it waits, and appends that arrive
 * meanwhile cannot join the next group commit until it returns: with many concurrent writers that
 * would serialize what group commit overlaps (four closed-loop writers ran at half the rate). So it
 * runs inline only while writers are few: after `WAL_INLINE_SYNC_AFTER_COMMITS` group commits in a
 * row of at most `WAL_INLINE_SYNC_WRITERS_MAX` appends each, during whose async fdatasync fewer
 * than that many appends arrived, and which flushed within `WAL_INLINE_SYNC_SLOW_MS`. One commit in
 * `WAL_INLINE_SYNC_PROBE_EVERY` runs async again to look for more writers; a larger group, more
 * appends arriving during an async flush, or a slow flush (either way: a slow disk must not stall
 * the event loop) ends the inline run. The durability contract is the same either way: the frames
 * are on disk before anyone is answered.
 *
 * @module
 */

import {
  WAL_INLINE_SYNC_AFTER_COMMITS,
  WAL_INLINE_SYNC_PROBE_EVERY,
  WAL_INLINE_SYNC_SLOW_MS,
  WAL_INLINE_SYNC_WRITERS_MAX,
} from "../core/limits.ts";

/** Chooses, commit by commit, whether the spool's fdatasync runs inline. */
export class InlineSyncPolicy {
  /** Consecutive async commits that found writers few. */
  #fewCommits = 0;
  /** Inline fdatasyncs since the last async probe. */
  #sinceProbe = 0;
  #slowMs: number;

  /** `slowMs`: an fdatasync slower than this ends inline syncing. */
  constructor(slowMs: number = WAL_INLINE_SYNC_SLOW_MS) {
    this.#slowMs = slowMs;
  }

  /** True while writers count as few (the next small commit may sync inline). */
  get few(): boolean {
    return this.#fewCommits >= WAL_INLINE_SYNC_AFTER_COMMITS;
  }

  /** Whether the fdatasync of a group commit of `appends` appends runs inline. */
  inline(appends: number): boolean {
    if (appends > WAL_INLINE_SYNC_WRITERS_MAX) {
      this.#fewCommits = 0;
      return false;
    }
    if (!this.few) return false;
    if (this.#sinceProbe + 1 >= WAL_INLINE_SYNC_PROBE_EVERY) {
      this.#sinceProbe = 0;
      return false;
    }
    this.#sinceProbe += 1;
    return true;
  }

  /**
   * After the fdatasync of a commit of `appends` appends: whether it ran inline, how long it took,
   * and how many appends were queued when it returned (they arrived while it ran).
   */
  synced(fsync: { appends: number; inline: boolean; ms: number; queued: number }): void {
    if (fsync.ms > this.#slowMs) {
      this.#fewCommits = 0;
      return;
    }
    if (fsync.inline) return;
    const few = fsync.appends <= WAL_INLINE_SYNC_WRITERS_MAX &&
      fsync.queued < WAL_INLINE_SYNC_WRITERS_MAX;
    this.#fewCommits = few ? this.#fewCommits + 1 : 0;
  }
}
