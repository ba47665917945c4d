/**
 * What a store remembers of the main entries it wrote: for each key, whether it exists now and,
 * when its value is chunked, which chunks it has. A write must know that of the entry it replaces
 * (the meta's entry count; the chunks it leaves stale), and reading it back from Deno KV took
 * three quarters of the apply's CPU when writes update keys written before (the `rewrites` row of
 * `deno task bench state`). What a store wrote stays true while it is the only writer of its Deno
 * KV file, which `KvState` requires; it forgets everything after a write that failed (what landed
 * is unknown).
 *
 * Memory is bounded by two generations, each at most half of `maxBytes`: writes go to the young
 * one; when it is full it becomes the old one and the old one is dropped. So a key written again
 * within the last half of the budget is always remembered, and nothing is ever scanned to evict
 * (dropping the oldest entry of one big Map one at a time is quadratic in V8: its deleted slots
 * stay at the front until the table is rebuilt).
 *
 * @module
 */

import { KNOWN_MAIN_OVERHEAD_BYTES } from "../core/limits.ts";
import type { MainOutline } from "./kv_layout.ts";

/** A remembered key: its outline, or null when it has no main entry (deleted). */
export type KnownMain = MainOutline | null;

/** Outlines of main entries by key id (`keyId`), in two generations. */
export class KnownMains {
  readonly #generationBytes: number;
  #young = new Map<string, KnownMain>();
  #youngBytes = 0;
  #old = new Map<string, KnownMain>();

  constructor(maxBytes: number) {
    this.#generationBytes = maxBytes / 2;
  }

  /** How many keys are remembered (a key in both generations counts twice). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /** What is remembered of `id`; undefined when nothing is (then it must be read). */
  get(id: string): KnownMain | undefined {
    const young = this.#young.get(id);
    return young !== undefined ? young : this.#old.get(id);
  }

  /** `id` was written (committed): remember it in the young generation. */
  set(id: string, known: KnownMain): void {
    if (!this.#young.has(id)) {
      const bytes = KNOWN_MAIN_OVERHEAD_BYTES + 2 * id.length;
      if (this.#youngBytes + bytes > this.#generationBytes) {
        this.#old = this.#young;
        this.#young = new Map();
        this.#youngBytes = 0;
      }
      this.#youngBytes += bytes;
    }
    this.#young.set(id, known);
  }

  /** A write failed: nothing remembered can be trusted. */
  clear(): void {
    this.#young = new Map();
    this.#old = new Map();
    this.#youngBytes = 0;
  }
}
