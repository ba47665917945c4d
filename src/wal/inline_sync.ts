/**
 * Where a group commit's `fdatasync` runs: on a thread of Deno's blocking pool (the async op, the
 * usual way), or inline on the event loop's own thread.
 *
 * The async op costs two thread hand-offs per commit (to the pool thread and back), about 30 µs of
 * a single writer's 300 µs round trip on a disk that flushes in 0.2 ms. Inline, the thread that
 * waits is the one that answers. But nothing else in the process runs while it waits, and appends
 * that arrive meanwhile cannot join the next group commit until it returns: with concurrent writers
 * that would serialize what group commit overlaps. So it runs inline only while one writer is
 * alone: after `WAL_INLINE_SYNC_AFTER_COMMITS` group commits of one append each, during whose async
 * fdatasync no other append arrived and which flushed within `WAL_INLINE_SYNC_SLOW_MS`. One commit
 * in `WAL_INLINE_SYNC_PROBE_EVERY` runs async again to look for other writers; a group of more
 * than one append, an append arriving during an async flush, or a slow flush (either way: a slow
 * disk must not stall the event loop) ends the inline run. The durability contract is the same
 * either way: the frames are on disk before anyone is answered.
 *
 * @module
 */

import {
  WAL_INLINE_SYNC_AFTER_COMMITS,
  WAL_INLINE_SYNC_PROBE_EVERY,
  WAL_INLINE_SYNC_SLOW_MS,
} from "../core/limits.ts";

/** Chooses, commit by commit, whether the spool's fdatasync runs inline. */
export class InlineSyncPolicy {
  /** Consecutive async commits that found the writer alone. */
  #aloneCommits = 0;
  /** Inline fdatasyncs since the last async probe. */
  #sinceProbe = 0;
  #slowMs: number;

  /** `slowMs`: an fdatasync slower than this ends inline syncing. */
  constructor(slowMs: number = WAL_INLINE_SYNC_SLOW_MS) {
    this.#slowMs = slowMs;
  }

  /** True while a writer counts as alone (the next single-append commit may sync inline). */
  get alone(): boolean {
    return this.#aloneCommits >= WAL_INLINE_SYNC_AFTER_COMMITS;
  }

  /** Whether the fdatasync of a group commit of `appends` appends runs inline. */
  inline(appends: number): boolean {
    if (appends !== 1) {
      this.#aloneCommits = 0;
      return false;
    }
    if (!this.alone) return false;
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
      this.#aloneCommits = 0;
      return;
    }
    if (fsync.inline) return;
    if (fsync.appends === 1 && fsync.queued === 0) this.#aloneCommits += 1;
    else this.#aloneCommits = 0;
  }
}
