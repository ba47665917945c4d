/**
 * Holds writes while the materialised state pins more WAL than its bound. The state's applied LSN
 * is a retention floor (it cannot be invalidated like a replica's slot: snapshots and reads come
 * from it), so when writes outrun its apply for long, without a bound the spool would grow until
 * the disk is full. Past the bound a write waits, before its body is read, until the state has
 * applied enough for the WAL it has not applied to fit again; a write that waited
 * `STATE_BACKLOG_HOLD_MS` is refused (503 `overloaded`, Retry-After) and changes nothing. So a
 * burst runs at the write path's speed until the bound, and sustained writes go at the pace the
 * state applies them.
 *
 * The bound counts the WAL after the applied LSN: whole segments, and within the oldest of them
 * the share of its records not applied (its bytes taken as evenly spread), so writes are let
 * through record by record as the apply advances, not a segment at a time. Retention frees whole
 * segments: the disk may hold up to one segment more than the bound for the state.
 *
 * @module
 */

import { OverloadedError } from "../core/errors.ts";
import { STATE_BACKLOG_HOLD_MS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import type { SegmentInfo } from "../wal/segment_set.ts";

/** What the gate reads of the state. */
export interface GatedState {
  appliedLsn(): number;
  /** The last LSN the state may apply now (records above a cluster's commit LSN wait for it). */
  applicableLsn(): number;
  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean>;
}

/** The gate's settings; `bytesMax` 0 turns it off. */
export interface BacklogGateOptions {
  /** The spool's segments, and all their bytes (read first: while they fit, nothing is counted). */
  segments: () => readonly SegmentInfo[];
  retainedBytes: () => number;
  state: GatedState;
  bytesMax: number;
  logger: Logger;
  /** How long a write waits before it is refused (`STATE_BACKLOG_HOLD_MS` unless a test says). */
  holdMs?: number;
}

/**
 * The lowest LSN the state must have applied for the WAL after it to fit in `bytesMax` (0 when
 * all of it fits): newest segment first; in the first one that does not fit, as many of its
 * records as hold the bytes too many.
 */
export function lsnToPass(segments: readonly SegmentInfo[], bytesMax: number): number {
  let bytes = 0;
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i]!;
    bytes += segment.sizeBytes;
    if (bytes <= bytesMax) continue;
    const records = segment.lastLsn - segment.firstLsn + 1;
    const tooMany = bytes - bytesMax;
    return segment.firstLsn - 1 + Math.ceil(records * tooMany / segment.sizeBytes);
  }
  return 0;
}

/** Lets writes through while the state's unapplied WAL fits in its bound; holds them otherwise. */
export class BacklogGate {
  #options: BacklogGateOptions;
  #holdMs: number;
  /** When the first write of the current hold began waiting; undefined while writes pass freely. */
  #heldSince: number | undefined;
  /** Writes that waited (`ferry_state_writes_held_total`). */
  held = 0;

  constructor(options: BacklogGateOptions) {
    this.#options = options;
    this.#holdMs = options.holdMs ?? STATE_BACKLOG_HOLD_MS;
  }

  /**
   * Undefined when a write may go on now, else a wait that resolves when it may, or throws
   * `OverloadedError` when it waited `holdMs` in vain or the request's signal (read only when it
   * waits: making one costs a write) aborted. No promise or closure on the way through: this runs
   * on every write.
   */
  pass(request?: { readonly signal: AbortSignal }): Promise<void> | undefined {
    const { bytesMax, state } = this.#options;
    if (bytesMax === 0 || this.#options.retainedBytes() <= bytesMax) return this.#released();
    const needed = Math.min(lsnToPass(this.#options.segments(), bytesMax), state.applicableLsn());
    if (state.appliedLsn() >= needed) return this.#released();
    return this.#hold(needed, request?.signal);
  }

  async #hold(needed: number, signal: AbortSignal | undefined): Promise<void> {
    const { bytesMax, state } = this.#options;
    this.held += 1;
    this.#holding(needed);
    // A write that waited does not end the hold: the next that need not wait does (one log pair
    // per episode, however many writes wait in it).
    if (await state.waitApplied(needed, { timeoutMs: this.#holdMs, signal })) return;
    throw new OverloadedError(
      `the materialised state has not applied more than ${bytesMax} bytes of WAL; retry shortly`,
      { applied_lsn: state.appliedLsn(), needed_lsn: needed },
    );
  }

  #holding(needed: number): void {
    if (this.#heldSince !== undefined) return;
    this.#heldSince = Date.now();
    this.#options.logger.warn("state.writes_held", {
      applied_lsn: this.#options.state.appliedLsn(),
      needed_lsn: needed,
      bytes_max: this.#options.bytesMax,
      message: "the state's unapplied WAL passed its bound: writes wait for the apply",
    });
  }

  #released(): undefined {
    if (this.#heldSince === undefined) return;
    const heldMs = Date.now() - this.#heldSince;
    this.#heldSince = undefined;
    this.#options.logger.info("state.writes_released", {
      applied_lsn: this.#options.state.appliedLsn(),
      held_ms: heldMs,
      writes_held: this.held,
    });
  }
}
