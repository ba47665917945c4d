/**
 * The one way ferry holds a caller until something happens: a set of waiters, each with a condition,
 * a deadline and an abort signal. The spool's long-polls, `min_lsn` reads, topology waits and commit
 * waits are all `Waiters`; `sleep` is the same idea with no condition.
 *
 * @module
 */

import assert from "./assert.ts";
import { OverloadedError } from "./errors.ts";

/** How long a wait may last, and what ends it early. */
export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

interface _Waiter<K> {
  key: K;
  isReached: () => boolean;
  settle: (reached: boolean) => void;
}

/**
 * Waiters on conditions that only the owner knows how to re-check. The owner calls `wake()` after
 * a change; every waiter whose condition now holds resolves `true`. A waiter ends `false` at its
 * deadline or when its signal aborts, and is removed at once whichever way it ends.
 *
 * @example
 * ```ts
 * let lsn = 0;
 * const waiters = new Waiters<number>({ max: 100, what: "held reads" });
 * const held = waiters.wait(5, () => lsn >= 5, { timeoutMs: 1000 });
 * lsn = 5;
 * waiters.wake();
 * await held; // true
 * ```
 */
export class Waiters<K = undefined> {
  readonly #max: number;
  readonly #what: string;
  #waiting = new Set<_Waiter<K>>();
  #closed = false;

  /** `max` waiters at once; beyond it `wait` rejects with `OverloadedError` naming `what`. */
  constructor(options: { max: number; what: string }) {
    assert(Number.isSafeInteger(options.max) && options.max >= 0);
    this.#max = options.max;
    this.#what = options.what;
  }

  /** Waiters held right now. */
  get size(): number {
    return this.#waiting.size;
  }

  /**
   * Resolves true at once when `isReached()` holds, else holds until a `wake()` finds it true;
   * false when `timeoutMs` passes or `signal` aborts (at once when `timeoutMs` ≤ 0 or the signal
   * is already aborted, and once `close()` was called). `key` lets `wake()` skip waiters a change
   * cannot concern.
   */
  wait(key: K, isReached: () => boolean, options: WaitOptions): Promise<boolean> {
    if (isReached()) return Promise.resolve(true);
    const { timeoutMs, signal } = options;
    if (timeoutMs <= 0 || signal?.aborted || this.#closed) return Promise.resolve(false);
    if (this.#waiting.size >= this.#max) {
      return Promise.reject(
        new OverloadedError(`too many ${this.#what}; retry shortly`, { held: this.#waiting.size }),
      );
    }
    return new Promise<boolean>((resolve) => {
      const onEnd = () => waiter.settle(false);
      const timer = setTimeout(onEnd, timeoutMs);
      const waiter: _Waiter<K> = {
        key,
        isReached,
        settle: (reached) => {
          // Only the first of wake, deadline and abort ends the wait.
          if (!this.#waiting.delete(waiter)) return;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onEnd);
          resolve(reached);
        },
      };
      signal?.addEventListener("abort", onEnd, { once: true });
      this.#waiting.add(waiter);
    });
  }

  /** Resolves (true) every waiter that `affected` selects (all by default) and that is reached. */
  wake(affected?: (key: K) => boolean): void {
    for (const waiter of this.#waiting) {
      if ((affected === undefined || affected(waiter.key)) && waiter.isReached()) {
        waiter.settle(true);
      }
    }
  }

  /** Ends every waiter now, each with whether its condition holds. */
  releaseAll(): void {
    for (const waiter of this.#waiting) waiter.settle(waiter.isReached());
  }

  /** Shutdown: ends every waiter as `releaseAll` does, and holds no new one from now on. */
  close(): void {
    this.#closed = true;
    this.releaseAll();
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
