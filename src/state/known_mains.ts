/**
 * What a store remembers of the main entries it wrote: for each key, whether it exists now and,
 * when its value is chunked, which chunks it has. A write must know that of the entry it replaces
 * (the meta's entry count; the chunks it leaves stale), and reading it back from Deno KV took
 * three quarters of the apply's CPU when writes update keys written before (the `rewrites` row of
 * `deno task bench state`). What a store wrote stays true while it is the only writer of its Deno KV
 * file, which `KvState` requires; it forgets everything after a write that failed (what landed is
 * unknown) and, past `maxBytes`, the keys written longest ago (they are read again when written).
 *
 * @module
 */

import { KNOWN_MAIN_OVERHEAD_BYTES } from "../core/limits.ts";
import type { MainOutline } from "./kv_layout.ts";

/** A remembered key: its outline, or null when it has no main entry (deleted). */
export type KnownMain = MainOutline | null;

/** Outlines of main entries by key id (`keyId`), most recently written last. */
export class KnownMains {
  readonly #maxBytes: number;
  #byId = new Map<string, KnownMain>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#byId.size;
  }

  /** What is remembered of `id`; undefined when nothing is (then it must be read). */
  get(id: string): KnownMain | undefined {
    return this.#byId.get(id);
  }

  /** `id` was written (committed): remember it as the most recent, forgetting the oldest past the cap. */
  set(id: string, known: KnownMain): void {
    if (this.#byId.delete(id)) this.#bytes -= _cost(id);
    this.#byId.set(id, known);
    this.#bytes += _cost(id);
    while (this.#bytes > this.#maxBytes && this.#byId.size > 0) {
      const oldest = this.#byId.keys().next().value!;
      this.#byId.delete(oldest);
      this.#bytes -= _cost(oldest);
    }
  }

  /** A write failed or the file changed under the store: nothing remembered can be trusted. */
  clear(): void {
    this.#byId.clear();
    this.#bytes = 0;
  }
}

function _cost(id: string): number {
  return KNOWN_MAIN_OVERHEAD_BYTES + 2 * id.length;
}
