/**
 * The primary's materialised state (SPEC.md section 8): (collection, key) → value and LSN in Deno
 * KV, applied from the spool in order, in batches, only after each record is durable. Its applied
 * LSN pins the WAL (retention never prunes what it has not applied yet) and serves `min_lsn` reads.
 *
 * @module
 */

import { CorruptFrameError } from "../core/errors.ts";
import { KvState, type StateEntry } from "./kv_state.ts";
import {
  STATE_APPLY_BATCH_BYTES,
  STATE_APPLY_BATCH_RECORDS,
  STATE_APPLY_LINGER_BELOW_RECORDS,
  STATE_APPLY_LINGER_MS,
  STATE_IDLE_WAIT_MS,
  STATE_RETRY_MS,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { LsnSignal } from "./lsn_signal.ts";
import { type ChangeRecord, decodeChangeRecord } from "../model/records.ts";
import type { StateReader } from "./reader.ts";
import type { Spool } from "../wal/spool.ts";
import { sleep } from "../core/waiter.ts";

/** Applies the spool into the KV state in the background. */
export class StateApplier implements StateReader {
  readonly state: KvState;
  readonly applied: LsnSignal;
  #spool: Spool;
  #logger: Logger;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #skipped = 0;

  private constructor(spool: Spool, state: KvState, appliedLsn: number, logger: Logger) {
    this.#spool = spool;
    this.state = state;
    this.applied = new LsnSignal(appliedLsn);
    this.#logger = logger;
  }

  /** Reads the applied LSN from `kv`. Needs the KV's file permissions (through `kv`). */
  static async open(
    options: { spool: Spool; kv: Deno.Kv; logger?: Logger },
  ): Promise<StateApplier> {
    const state = new KvState(options.kv);
    const meta = await state.meta();
    return new StateApplier(options.spool, state, meta.applied_lsn, options.logger ?? silentLogger);
  }

  appliedLsn(): number {
    return this.applied.value;
  }

  /** Records whose payload was not a change record (legacy frames): logged and passed over. */
  get skippedRecords(): number {
    return this.#skipped;
  }

  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    return this.applied.waitFor(lsn, options);
  }

  get(collection: string, key: string): Promise<StateEntry | undefined> {
    return this.state.get(collection, key);
  }

  /** Starts the background loop. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the loop after its current batch. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.applied.releaseAll();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        if (this.#spool.currentLsn() <= this.applied.value) {
          const appended = await this.#spool.waitForAppend(this.applied.value, {
            timeoutMs: STATE_IDLE_WAIT_MS,
            signal,
            internal: true,
          });
          // A closing spool answers at once: sleep for real, or this loop would starve the event loop.
          if (!appended && !this.#spool.isWritable()) await sleep(STATE_RETRY_MS, signal);
          continue;
        }
        await this.#linger(signal);
        await this.#applyNext();
      } catch (error) {
        this.#logger.error("state.apply_failed", { error, applied_lsn: this.applied.value });
        await sleep(STATE_RETRY_MS, signal);
      }
    }
  }

  /**
   * Waits a little before applying a small backlog, so one KV commit (an fsync of its own) covers
   * many group commits instead of competing with each spool fdatasync; not when a `min_lsn` read
   * is already waiting, nor when a commit's worth is there.
   */
  async #linger(signal: AbortSignal): Promise<void> {
    const backlog = this.#spool.currentLsn() - this.applied.value;
    if (this.applied.waiters > 0 || backlog >= STATE_APPLY_LINGER_BELOW_RECORDS) return;
    await sleep(STATE_APPLY_LINGER_MS, signal);
  }

  async #applyNext(): Promise<void> {
    const frames = await this.#spool.readSince(
      this.applied.value,
      STATE_APPLY_BATCH_RECORDS,
      STATE_APPLY_BATCH_BYTES,
    );
    if (frames.length === 0) return;
    const records: Array<{ lsn: number; record: ChangeRecord }> = [];
    for (const frame of frames) {
      try {
        records.push({
          lsn: frame.lsn,
          record: decodeChangeRecord(frame.payload, { trusted: true }),
        });
      } catch (error) {
        if (!(error instanceof CorruptFrameError)) throw error;
        this.#skipped += 1;
        this.#logger.error("state.record_skipped", { lsn: frame.lsn, reason: error.message });
      }
    }
    const last = frames[frames.length - 1]!;
    // Frames come in LSN order without gaps: the term of `lsn` is at its offset from the first.
    const termOf = (lsn: number) => frames[lsn - frames[0]!.lsn]?.term ?? last.term;
    const meta = (lsn: number) => ({ applied_lsn: lsn, last_term: termOf(lsn), last_hash: null });
    // Each commit is visible when it lands: readers and retention need not wait for the batch.
    await this.state.apply(records, meta, { onCommitted: (lsn) => this.applied.advance(lsn) });
    // Skipped records at the end of the batch still count as applied.
    if (records[records.length - 1]?.lsn !== last.lsn) await this.state.setMeta(meta(last.lsn));
    this.applied.advance(last.lsn);
  }
}
