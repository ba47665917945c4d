/**
 * Who may use the spool's files when (`spool.ts`): prunes and truncations run one at a time, in
 * the order they were asked for; while a truncation is asked for or running, new appends and reads
 * are refused, and it starts only once the reads under way have ended. Reads never wait on a
 * prune, and appends never wait on either.
 *
 * @module
 */

import { UnavailableError } from "../core/errors.ts";

/** The spool's maintenance queue and its count of reads under way. */
export class SpoolGate {
  /** Prunes and truncations, one at a time. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Truncations asked for and not ended. */
  #truncations = 0;
  #reading = 0;
  #readsEnded: Array<() => void> = [];

  /** True while a truncation is asked for or running: appends and reads are refused. */
  get truncating(): boolean {
    return this.#truncations > 0;
  }

  /** The error an append or a read gets while `truncating`. */
  truncatingError(): UnavailableError {
    return new UnavailableError("the log is being truncated; retry");
  }

  /** Runs `task` once every maintenance task asked for before it has ended. */
  serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs `truncation` like `serial`, refusing appends and reads from now until it ends; it starts
   * once the reads under way (and the maintenance before it) have ended.
   */
  truncation<T>(truncation: () => Promise<T>): Promise<T> {
    this.#truncations += 1;
    return this.serial(async () => {
      if (this.#reading > 0) await new Promise<void>((resolve) => this.#readsEnded.push(resolve));
      return await truncation();
    }).finally(() => {
      this.#truncations -= 1;
    });
  }

  /** Runs a read, counted while under way; refused while `truncating`. */
  async read<T>(read: () => Promise<T>): Promise<T> {
    if (this.truncating) throw this.truncatingError();
    this.#reading += 1;
    try {
      return await read();
    } finally {
      this.#reading -= 1;
      if (this.#reading === 0) { for (const resolve of this.#readsEnded.splice(0)) resolve(); }
    }
  }

  /** Resolves once the maintenance asked for so far has ended (its outcome is its caller's). */
  settled(): Promise<void> {
    return this.#chain.then(() => undefined);
  }
}
