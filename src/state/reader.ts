/**
 * What a reader of a materialised state needs (the record read route): the applied LSN, a wait for
 * a later one, and one key's current value. The primary's `StateApplier` and a replica's runtime
 * both provide it.
 *
 * @module
 */

import type { WaitOptions } from "../core/waiter.ts";
import type { StateEntry } from "./kv_state.ts";

/** A materialised state as the read route sees it. */
export interface StateReader {
  appliedLsn(): number;
  waitApplied(lsn: number, options: WaitOptions): Promise<boolean>;
  get(collection: string, key: string): Promise<StateEntry | undefined>;
}
