/**
 * The wait between retries after errors: it doubles from a minimum to a maximum, each sleep
 * jittered between half and all of it (replicas that failed together do not retry together), and
 * starts over at the minimum after a success. One for the replica runtime, the relay's log
 * follower and a state rebuild's snapshot retries, so each waits and resets the same way.
 *
 * @module
 */

import { sleep } from "./waiter.ts";

/** A retry wait that doubles after each failure and starts over after a success. */
export class Backoff {
  readonly minMs: number;
  readonly maxMs: number;
  #nextMs: number;

  constructor(minMs: number, maxMs: number) {
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.#nextMs = minMs;
  }

  /** The wait the next `wait()` is based on. */
  get nextMs(): number {
    return this.#nextMs;
  }

  /** No failure since the last success: the next wait is the minimum. */
  get atMinimum(): boolean {
    return this.#nextMs === this.minMs;
  }

  /** A success: the next wait is the minimum again. */
  reset(): void {
    this.#nextMs = this.minMs;
  }

  /** The next wait is at most `ms` (ask again soon, whatever failed before). */
  capNext(ms: number): void {
    this.#nextMs = Math.min(this.#nextMs, ms);
  }

  /**
   * Sleeps the next wait, jittered, and at least `atLeastMs` (a server's Retry-After), ending early
   * on `signal`; then doubles the next wait, up to the maximum.
   */
  async wait(signal?: AbortSignal, atLeastMs = 0): Promise<void> {
    const jittered = this.#nextMs / 2 + Math.random() * (this.#nextMs / 2);
    await sleep(Math.max(atLeastMs, jittered), signal);
    this.#nextMs = Math.min(this.maxMs, this.#nextMs * 2);
  }
}
