/**
 * What a reader of a materialised state needs (the record read route): the applied LSN, a wait for
 * a later one, and one key's current value. The primary's `StateApplier` and a replica's runtime
 * both provide it.
 *
 * @module
 */

import type { WaitOptions } from "../core/waiter.ts";
import type { StateEntry } from "./kv_state.ts";

/**
 * How a primary's state applies now (`/v1/status` `state_apply`): where (null: no writer yet, or
 * none since it caught up), whether below the write path's priority, how long ago the oldest
 * record it may apply but has not was appended, and whether it rests between two batches to give
 * the CPU to the writes.
 */
export interface StateApplyStatus {
  mode: "worker" | "in_process" | null;
  priority: "background" | "process" | null;
  lag_ms: number;
  resting: boolean;
}

/** A materialised state as the read route sees it. */
export interface StateReader {
  appliedLsn(): number;
  /** The primary's applier only. */
  applyStatus?(): StateApplyStatus;
  waitApplied(lsn: number, options: WaitOptions): Promise<boolean>;
  get(collection: string, key: string): Promise<StateEntry | undefined>;
}
