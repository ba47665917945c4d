/**
 * The primary's materialised state (SPEC.md section 8): (collection, key) → value and LSN in Deno
 * KV, applied from the spool in order, in batches, only after each record is durable. Its applied
 * LSN pins the WAL (retention never prunes what it has not applied yet) and serves `min_lsn` reads.
 *
 * Given the KV file's path, the apply work runs in a worker with its own handle on the file
 * (`state_writer.ts`), off the thread that serves writes; without one, or where the worker cannot
 * run, in this thread.
 *
 * In a cluster (SPEC.md 13.4) it applies only records at or below a cap (`applyUpTo`: the commit
 * LSN), so neither reads nor snapshots ever show a record that a failover could lose. Records
 * appended above the cap wait until `capRaised()` says it rose (and the cap is read again at
 * least every `STATE_IDLE_WAIT_MS` in case nobody said so).
 *
 * @module
 */

import assert from "../core/assert.ts";
import { KvState, type StateEntry } from "./kv_state.ts";
import {
  STATE_APPLY_BATCH_BYTES,
  STATE_APPLY_BATCH_RECORDS,
  STATE_APPLY_LINGER_BELOW_RECORDS,
  STATE_APPLY_LINGER_MS,
  STATE_APPLY_NICE_STEPS,
  STATE_APPLY_REST_MS_MAX,
  STATE_APPLY_REST_RATIO,
  STATE_APPLY_YIELD_LAG_MS,
  STATE_IDLE_WAIT_MS,
  STATE_RETRY_MS,
  STATE_STOP_WAIT_MS,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { LsnSignal } from "./lsn_signal.ts";
import type { StateApplyStatus, StateReader } from "./reader.ts";
import {
  ApplyWorkerGoneError,
  InProcessWriter,
  type StateWriter,
  workerRefusal,
  WorkerWriter,
} from "./state_writer.ts";
import type { Spool } from "../wal/spool.ts";
import { sleep, Waiters } from "../core/waiter.ts";
import { type ApplyPriority, RawFramesRejectedError } from "./apply_batch.ts";
import { APPLY_PRIORITY_FLAG } from "../core/permissions.ts";

/** Options of `StateApplier.open`. */
export interface StateApplierOptions {
  spool: Spool;
  kv: Deno.Kv;
  /** The file `kv` was opened from: the apply worker opens its own handle on it. */
  kvPath?: string;
  /** The apply worker's module, when not the usual one (tests give one that fails). */
  workerModule?: URL;
  logger?: Logger;
  /**
   * In a cluster: the highest LSN it may apply (the commit LSN, never lowered). Absent: every
   * durable record. Call `capRaised()` when it rises.
   */
  applyUpTo?: () => number;
  /** How long a small backlog lingers (`STATE_APPLY_LINGER_MS` unless a test says otherwise). */
  lingerMs?: number;
  /** The time, for how far behind the state is (`Date.now` unless a test says otherwise). */
  clock?: () => number;
  /** How long the apply rests when the writes outrun it (`STATE_APPLY_REST_*` unless a test says). */
  rest?: ApplyRest;
}

/** The apply rests `ratio` times as long as its last batch took, `maxMs` at most. */
export interface ApplyRest {
  ratio: number;
  maxMs: number;
}

/** Applies the spool into the KV state in the background. */
export class StateApplier implements StateReader {
  readonly state: KvState;
  readonly applied: LsnSignal;
  #spool: Spool;
  #logger: Logger;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #skipped = 0;
  #applyUpTo: (() => number) | undefined;
  #kv: Deno.Kv;
  #kvPath: string | undefined;
  #workerModule: URL | undefined;
  #lingerMs: number;
  #clock: () => number;
  #rest: ApplyRest;
  /** When the rest under way began: between two batches, giving way to the writes. */
  #restStarted: number | undefined;
  /** Time rested between batches since the start (`ferry_state_apply_rest_seconds_total`). */
  #restedMs = 0;
  /** Nice steps a background apply worker takes (0 once the process was refused them). */
  #niceSteps = STATE_APPLY_NICE_STEPS;
  /** Made at the first batch (a worker is started only for an applier that has work). */
  #writer: StateWriter | undefined;
  /** The loop, while records wait above the cap (one waiter at most). */
  #capWait = new Waiters({ max: 1, what: "state apply waits" });
  /** The loop, while a small backlog lingers: a `min_lsn` read ends it. */
  #lingerWait = new Waiters({ max: 1, what: "state apply lingers" });

  private constructor(options: StateApplierOptions, state: KvState, appliedLsn: number) {
    this.#spool = options.spool;
    this.state = state;
    this.applied = new LsnSignal(appliedLsn);
    this.#logger = options.logger ?? silentLogger;
    this.#applyUpTo = options.applyUpTo;
    this.#kv = options.kv;
    this.#kvPath = options.kvPath;
    this.#workerModule = options.workerModule;
    this.#lingerMs = options.lingerMs ?? STATE_APPLY_LINGER_MS;
    this.#clock = options.clock ?? Date.now;
    this.#rest = options.rest ?? { ratio: STATE_APPLY_REST_RATIO, maxMs: STATE_APPLY_REST_MS_MAX };
  }

  /** Reads the applied LSN from `kv`. Needs the KV's file permissions (through `kv`). */
  static async open(options: StateApplierOptions): Promise<StateApplier> {
    const state = new KvState(options.kv);
    const meta = await state.meta();
    return new StateApplier(options, state, meta.applied_lsn);
  }

  /** The cap (`applyUpTo`) may have risen: apply what it now covers. */
  capRaised(): void {
    this.#capWait.wake();
  }

  appliedLsn(): number {
    return this.applied.value;
  }

  /** Records whose payload was not a change record (legacy frames): logged and passed over. */
  get skippedRecords(): number {
    return this.#skipped;
  }

  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    const reached = this.applied.waitFor(lsn, options);
    this.#lingerWait.wake(); // a read waits now: a lingering backlog is applied at once
    return reached;
  }

  get(collection: string, key: string): Promise<StateEntry | undefined> {
    return this.state.get(collection, key);
  }

  /**
   * Starts the background loop. The worker starts with the first batch, not here: loading it right
   * at start-up slowed the first pulls of a freshly started primary (15 ms instead of 7).
   */
  start(): void {
    this.#loop ??= this.#run();
  }

  applyStatus(): StateApplyStatus {
    const writer = this.#writer;
    return {
      mode: writer?.mode ?? null,
      priority: writer === undefined ? null : this.#inBackground(writer) ? "background" : "process",
      lag_ms: Math.round(this.#lagMs()),
      resting: this.#restStarted !== undefined,
    };
  }

  /** The last LSN the state may apply now: the current LSN, or a cluster's commit LSN below it. */
  applicableLsn(): number {
    return this.#targetLsn();
  }

  /** Milliseconds rested between batches since the start, the rest under way included. */
  get restedMs(): number {
    const now = this.#restStarted === undefined ? 0 : performance.now() - this.#restStarted;
    return this.#restedMs + now;
  }

  /** Where the apply work runs: "worker", "in_process", or undefined before the first batch. */
  get mode(): StateWriter["mode"] | undefined {
    return this.#writer?.mode;
  }

  /**
   * Stops the loop after its current batch, then the worker. A worker that has not finished within
   * `STATE_STOP_WAIT_MS` is ended: below the write path's priority on a busy machine it may get no
   * CPU, and a stop must not wait for it (what it committed is in KV; applying again converges).
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    const cut = setTimeout(() => this.#cutWorker(), STATE_STOP_WAIT_MS);
    try {
      await this.#loop;
      await this.#writer?.close();
    } finally {
      clearTimeout(cut);
    }
    this.applied.releaseAll();
  }

  #cutWorker(): void {
    const writer = this.#writer;
    if (!(writer instanceof WorkerWriter)) return;
    this.#logger.info("state.apply_worker_ended", {
      applied_lsn: this.applied.value,
      message: `the apply worker had not stopped within ${STATE_STOP_WAIT_MS} ms`,
    });
    writer.terminate();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        if (this.#targetLsn() <= this.applied.value) {
          await this.#backToBackground();
          await this.#idle(signal);
          continue;
        }
        await this.#linger(signal);
        const before = this.#backlog();
        const started = performance.now();
        await this.#applyNext();
        await this.#restAfter(performance.now() - started, before, signal);
      } catch (error) {
        this.#logger.error("state.apply_failed", { error, applied_lsn: this.applied.value });
        await sleep(STATE_RETRY_MS, signal);
      }
    }
  }

  /** The last LSN to apply now: the current LSN, or the cap when it is lower. */
  #targetLsn(): number {
    const current = this.#spool.currentLsn();
    return this.#applyUpTo === undefined ? current : Math.min(current, this.#applyUpTo());
  }

  /** Waits for something to apply: the next append, or the cap's rise when records wait above it. */
  async #idle(signal: AbortSignal): Promise<void> {
    const applied = this.applied.value;
    const wait = { timeoutMs: STATE_IDLE_WAIT_MS, signal };
    if (this.#spool.currentLsn() > applied) {
      await this.#capWait.wait(undefined, () => this.#targetLsn() > applied, wait);
      return;
    }
    const appended = await this.#spool.waitForAppend(applied, { ...wait, internal: true });
    // A closing spool answers at once: sleep for real, or this loop would starve the event loop.
    if (!appended && !this.#spool.isWritable()) await sleep(STATE_RETRY_MS, signal);
  }

  /**
   * Waits a little before applying a small backlog, so one KV commit (an fsync of its own) covers
   * many group commits instead of competing with each spool fdatasync; not when a commit's worth
   * is there, and only until a `min_lsn` read waits.
   */
  async #linger(signal: AbortSignal): Promise<void> {
    if (this.#backlog() >= STATE_APPLY_LINGER_BELOW_RECORDS) return;
    const readWaits = () => this.applied.waiters > 0;
    await this.#lingerWait.wait(undefined, readWaits, { timeoutMs: this.#lingerMs, signal });
  }

  /**
   * When the writes outran a batch applied at full speed (the backlog did not shrink: the state
   * falls behind whatever it does) and the apply yields to them, it rests `ratio` times as long as
   * the batch took, so that its CPU goes to the writes; a `min_lsn` read ends the rest. An apply
   * that gains on the writes never rests, so a state that can keep up does.
   */
  async #restAfter(tookMs: number, before: number, signal: AbortSignal): Promise<void> {
    if (this.#backlog() < before || !this.#yields()) return;
    const timeoutMs = Math.min(this.#rest.maxMs, tookMs * this.#rest.ratio);
    const readWaits = () => this.applied.waiters > 0;
    const started = this.#restStarted = performance.now();
    try {
      await this.#lingerWait.wait(undefined, readWaits, { timeoutMs, signal });
    } finally {
      this.#restStarted = undefined;
      this.#restedMs += performance.now() - started;
    }
  }

  /** How many records the state may apply but has not. */
  #backlog(): number {
    return this.#targetLsn() - this.applied.value;
  }

  /** Whether the apply gives way to the writes: within the yield bound, and not keeping up. */
  #yields(): boolean {
    return !this.#keepingUp(this.#writer) && this.#lagMs() <= STATE_APPLY_YIELD_LAG_MS;
  }

  /** A worker raised to the write path's priority to catch up (background ones exist). */
  #keepingUp(writer: StateWriter | undefined): writer is WorkerWriter {
    return writer instanceof WorkerWriter && writer.niceSteps === 0 && this.#niceSteps > 0;
  }

  async #applyNext(): Promise<void> {
    const target = this.#targetLsn();
    // LSNs follow each other without gaps: a count caps the batch at the target.
    const count = Math.min(STATE_APPLY_BATCH_RECORDS, target - this.applied.value);
    if (count <= 0) return;
    const writer = this.#writerForNext();
    let skipped;
    try {
      skipped = await this.#applyBatch(writer, count, target);
    } catch (error) {
      if (!(error instanceof ApplyWorkerGoneError)) throw error;
      if (this.#stop.signal.aborted) return; // ended by stop()
      // What it committed is in KV and applying again converges: this thread goes on from here.
      this.#logger.warn("state.apply_worker_failed", { error, applied_lsn: this.applied.value });
      this.#writer = this.#inProcess("the apply worker stopped");
      return;
    }
    for (const { lsn, reason } of skipped) {
      this.#skipped += 1;
      this.#logger.error("state.record_skipped", { lsn, reason });
    }
  }

  /**
   * Has `writer` apply up to `count` records after the applied LSN. A worker gets them as stored
   * (its thread decodes and checks them); if it refuses them, they are read again decoded, which
   * checks every CRC here and reports a damaged segment as any read does.
   */
  async #applyBatch(writer: StateWriter, count: number, target: number) {
    const onCommitted = (lsn: number) => this.applied.advance(lsn);
    const afterLsn = this.applied.value;
    if (writer.applyRaw !== undefined) {
      const raw = await this.#spool.readRawSince(afterLsn, count, STATE_APPLY_BATCH_BYTES);
      if (raw.count === 0) return [];
      assert(raw.lastLsn <= target, "the state never applies past its cap");
      try {
        return await writer.applyRaw(raw, afterLsn, onCommitted);
      } catch (error) {
        if (!(error instanceof RawFramesRejectedError)) throw error;
        this.#logger.warn("state.raw_frames_rejected", { error, applied_lsn: this.applied.value });
      }
    }
    const frames = await this.#spool.readSince(this.applied.value, count, STATE_APPLY_BATCH_BYTES);
    if (frames.length === 0) return [];
    assert(frames[frames.length - 1]!.lsn <= target, "the state never applies past its cap");
    return await writer.apply(frames, onCommitted);
  }

  /**
   * The writer of the next batch. A worker runs below the write path's priority while the state is
   * within `STATE_APPLY_YIELD_LAG_MS` of the head; past that it gives way to one at the process's
   * priority, which keeps up until the state reaches the head (a thread may not raise its own
   * priority again without privileges, but a new worker starts at the primary thread's). A new
   * worker reads back the keys the old one remembered writing: the bound keeps that rare.
   */
  #writerForNext(): StateWriter {
    const writer = this.#writer;
    const lagMs = this.#lagMs();
    const behind = lagMs > STATE_APPLY_YIELD_LAG_MS;
    if (writer === undefined) return this.#writer = this.#newWriter(behind ? 0 : this.#niceSteps);
    if (!behind || !this.#inBackground(writer)) return writer;
    this.#logger.warn("state.apply_keeps_up", {
      lag_ms: Math.round(lagMs),
      applied_lsn: this.applied.value,
      message: `the state is over ${STATE_APPLY_YIELD_LAG_MS} ms behind: it applies at the ` +
        "write path's priority until it reaches the head",
    });
    this.#writer = undefined;
    // Ended, not asked to close: at its priority it may get no CPU to answer (it is between batches).
    writer.terminate();
    return this.#writer = this.#newWriter(0);
  }

  /** A worker that took its nice steps (the process was not refused them). */
  #inBackground(writer: StateWriter): writer is WorkerWriter {
    return writer instanceof WorkerWriter && writer.niceSteps > 0 && this.#niceSteps > 0;
  }

  /** At the head: a worker that kept up at the write path's priority gives way to a background one. */
  async #backToBackground(): Promise<void> {
    const writer = this.#writer;
    if (!this.#keepingUp(writer)) return;
    this.#logger.info("state.apply_caught_up", { applied_lsn: this.applied.value });
    this.#writer = undefined;
    await writer.close();
  }

  /**
   * How long ago the oldest record the state may apply but has not was appended (0: none). Records
   * above the cap wait for the cluster, not for the apply.
   */
  #lagMs(): number {
    const next = this.applied.value + 1;
    if (next > this.#targetLsn()) return 0;
    return Math.max(0, this.#clock() - this.#spool.appendedAtMs(next));
  }

  #newWriter(niceSteps: number): StateWriter {
    const refusal = this.#kvPath === undefined ? "no KV file path" : workerRefusal();
    if (refusal !== undefined) return this.#inProcess(refusal);
    this.#logger.info("state.apply_mode", { mode: "worker" });
    const onPriority = (priority: ApplyPriority) => this.#logPriority(priority, niceSteps);
    return new WorkerWriter(this.#kvPath!, this.#workerModule, { niceSteps, onPriority });
  }

  #logPriority(priority: ApplyPriority, niceSteps: number): void {
    if ("nice" in priority) {
      this.#logger.info("state.apply_priority", { nice: priority.nice, steps_below: niceSteps });
      return;
    }
    this.#niceSteps = 0;
    this.#logger.warn("state.apply_priority", {
      nice: "unchanged",
      reason: priority.refused,
      effect: "the apply competes with the write path for the CPU",
      grant: APPLY_PRIORITY_FLAG,
    });
  }

  #inProcess(reason: string): StateWriter {
    this.#logger.info("state.apply_mode", { mode: "in_process", reason });
    return new InProcessWriter(this.#kv);
  }
}
