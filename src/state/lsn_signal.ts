/**
 * A position that only rises, and long-poll waits on it: "resolve once the applied LSN reaches N".
 * Used by the primary's materialised state and by replicas for `min_lsn` bookmark reads.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { APPEND_WAITERS_MAX } from "../core/limits.ts";
import { Waiters, type WaitOptions } from "../core/waiter.ts";

/** An LSN with waiters. */
export class LsnSignal {
  #value: number;
  #waiters = new Waiters({ max: APPEND_WAITERS_MAX, what: "held reads" });

  constructor(initial = 0) {
    assert(Number.isSafeInteger(initial) && initial >= 0);
    this.#value = initial;
  }

  get value(): number {
    return this.#value;
  }

  /** Held waits (for a gauge). */
  get waiters(): number {
    return this.#waiters.size;
  }

  /** Raises the value (never lowers it) and wakes every waiter it satisfies. */
  advance(lsn: number): void {
    if (lsn <= this.#value) return;
    this.#value = lsn;
    this.#waiters.wake();
  }

  /** Sets the value, also downwards (a replica swapping in a re-bootstrapped store). */
  reset(lsn: number): void {
    this.#value = lsn;
    this.#waiters.wake();
  }

  /** Resolves true once the value is ≥ `target`, false when the wait ends first. */
  waitFor(target: number, options: WaitOptions): Promise<boolean> {
    return this.#waiters.wait(undefined, () => this.#value >= target, options);
  }

  /** Answers every held wait with whether it is reached now (shutdown). */
  releaseAll(): void {
    this.#waiters.releaseAll();
  }
  /** Shutdown: answers every held wait now and holds no new one (each answers at once). */
  close(): void {
    this.#waiters.close();
  }
}
