/**
 * A position that only rises, and long-poll waits on it: "resolve once the applied LSN reaches N".
 * Used by the primary's materialised state and by replicas for `min_lsn` bookmark reads.
 *
 * @module
 */

import assert from "node:assert/strict";
import { OverloadedError } from "../core/errors.ts";
import { APPEND_WAITERS_MAX } from "../core/limits.ts";

interface _Waiter {
  target: number;
  settle: (reached: boolean) => void;
}

/** An LSN with waiters. */
export class LsnSignal {
  #value: number;
  #waiters = new Set<_Waiter>();

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
    this.#wake();
  }

  /** Sets the value, also downwards (a replica swapping in a re-bootstrapped store). */
  reset(lsn: number): void {
    this.#value = lsn;
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters) {
      if (this.#value >= waiter.target) waiter.settle(true);
    }
  }

  /**
   * Resolves true once the value is ≥ `target`, false when `timeoutMs` passes or `signal` aborts.
   * The waiter is removed at once whichever way it ends.
   */
  waitFor(target: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    if (this.#value >= target) return Promise.resolve(true);
    if (options.timeoutMs <= 0 || options.signal?.aborted) return Promise.resolve(false);
    if (this.#waiters.size >= APPEND_WAITERS_MAX) {
      return Promise.reject(new OverloadedError("too many held reads; retry shortly"));
    }
    return new Promise<boolean>((resolve) => {
      const onAbort = () => waiter.settle(false);
      const timer = setTimeout(onAbort, options.timeoutMs);
      const waiter: _Waiter = {
        target,
        settle: (reached) => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          this.#waiters.delete(waiter);
          resolve(reached);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Answers every held wait with whether it is reached now (shutdown). */
  releaseAll(): void {
    for (const waiter of this.#waiters) waiter.settle(this.#value >= waiter.target);
  }
}
