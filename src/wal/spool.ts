/**
 * The segmented spool (SPEC.md section 3): ferry's durable logical WAL.
 *
 * Layout: `<wal dir>/<timeline, 8 hex digits>/<first LSN, 20 digits>.wal`. One appender; readers
 * and pruning never block it (a truncation back to a fork point refuses appends while it runs).
 *
 * @module
 */

import assert from "../core/assert.ts";
import {
  DiskFullError,
  isDiskFullError,
  LsnGapError,
  OverloadedError,
  UnavailableError,
  WalCorruptionError,
} from "../core/errors.ts";
import { denoFileSystem, joinPath } from "../core/files.ts";
import {
  APPEND_QUEUE_BYTES_MAX,
  SEGMENT_BYTES_DEFAULT,
  TAIL_BYTES_DEFAULT,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { type DecodedFrame, frameV3ByteLength } from "./frame.ts";
import { type RawFrames, SpoolReads } from "./spool_reads.ts";
import { FrameTail } from "./tail.ts";
import type { WaitOptions } from "../core/waiter.ts";
import { CommitFeed, type CommitListener } from "./commit_feed.ts";
import { type RecoveryReport, type SegmentInfo, SegmentSet } from "./segment_set.ts";
import {
  type EncodedGroupCommit,
  encodeGroupCommit,
  type PendingAppend,
  resolveGroupCommit,
  takeGroupCommit,
} from "./group_commit.ts";
import { CommitTimes } from "./commit_times.ts";
import { SealedSegments } from "./sealed_segments.ts";
import { timelineDirName } from "./timelines.ts";
import { SpoolGate } from "./spool_gate.ts";
import { InlineSyncPolicy } from "./inline_sync.ts";
import type {
  AppendResult,
  PruneResult,
  SpoolObserver,
  SpoolOptions,
  SpoolStats,
} from "./spool_options.ts";
import { type TruncateResult, truncationLogFields } from "./truncate.ts";

export type { AppendResult, PruneResult, SpoolObserver, SpoolOptions, SpoolStats, TruncateResult };

type _State = "open" | "closing" | "closed" | "failed";

/**
 * The durable, segmented, group-committed log.
 *
 * Durability contract (the only place it lives): `append()` resolves only after the frames it
 * carries were written with one `write` and made durable with one `fdatasync` of the segment
 * (shared with every other append of the same group commit). New segment files are followed by a
 * directory fsync before any frame is written into them, and deletions by one after them. Only
 * then do readers, the tail and long-poll waiters see the records, so nothing that could still
 * vanish in a crash is ever served or acknowledged. A clean `close()` leaves a record of the newest
 * segment (`clean_shutdown.ts`); it is removed, and the directory fsynced, before the next write.
 */
export class Spool {
  readonly dir: string;
  readonly timeline: number;
  readonly term: number;
  readonly segmentBytesMax: number;
  readonly recovery: RecoveryReport;
  /** The sealed segments as immutable objects (SPEC.md 13.2): their listing and reads. */
  readonly sealed: SealedSegments;
  #logger: Logger;
  #observer: SpoolObserver;
  #clock: () => number;
  #files: SegmentSet;
  #tail: FrameTail;
  #commitTimes: CommitTimes;
  #currentLsn: number;
  #queueBytesMax: number;
  #reads: SpoolReads;
  #queue: PendingAppend<AppendResult>[] = [];
  #queuedBytes = 0;
  #draining = false;
  #idle: Array<() => void> = [];
  #state: _State = "open";
  #failure: Error | undefined;
  /** Long-poll waiters and streams, woken after each group commit. */
  #feed = new CommitFeed();
  /** Prunes and truncations one at a time; appends and reads refused during a truncation. */
  #gate = new SpoolGate();
  #inlineSync: InlineSyncPolicy;

  private constructor(fields: {
    options: SpoolOptions;
    files: SegmentSet;
    tail: FrameTail;
    commitTimes: CommitTimes;
    recovery: RecoveryReport;
  }) {
    const { options } = fields;
    this.dir = fields.files.dir;
    this.timeline = options.timeline;
    this.term = options.term;
    this.segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_DEFAULT;
    this.recovery = fields.recovery;
    this.#logger = options.logger ?? silentLogger;
    this.#observer = options.observer ?? {};
    this.#clock = options.clock ?? Date.now;
    this.#files = fields.files;
    this.#tail = fields.tail;
    this.#commitTimes = fields.commitTimes;
    this.#currentLsn = fields.recovery.currentLsn;
    this.#queueBytesMax = options.queueBytesMax ?? APPEND_QUEUE_BYTES_MAX;
    this.#inlineSync = new InlineSyncPolicy(options.inlineSyncSlowMs);
    this.#reads = new SpoolReads(this.#files, this.#tail, {
      currentLsn: () => this.#currentLsn,
      closed: () => this.#state === "closed",
      unavailable: () => this.#unavailable(),
      logger: this.#logger,
      observer: this.#observer,
    });
    this.sealed = new SealedSegments(this.#files, (error) => this.#reads.reportCorruption(error));
  }

  /**
   * Opens (creating when missing) the spool: sealed segments listed and sized, never read; the
   * newest taken as a clean shutdown record describes it, else scanned once, its torn tail cut and
   * fsynced (`newest_segment.ts`). Needs read and write access to `walDir`, read to its parent.
   */
  static async open(options: SpoolOptions): Promise<Spool> {
    const tail = new FrameTail(options.tailBytesMax ?? TAIL_BYTES_DEFAULT);
    const commitTimes = new CommitTimes((options.clock ?? Date.now)());
    const { set, recovery } = await SegmentSet.open(options.fs ?? denoFileSystem(), {
      dir: joinPath(options.walDir, timelineDirName(options.timeline)),
      logger: options.logger ?? silentLogger,
      // The tail starts empty (fills with new appends): older records are read from the files.
      onRecord: (lsn, timestampMs) => commitTimes.note(lsn, timestampMs),
    });
    return new Spool({ options, files: set, tail, commitTimes, recovery });
  }

  /** LSN of the newest durable record (0 when none was ever written). O(1). */
  currentLsn(): number {
    return this.#currentLsn;
  }

  /** LSN of the oldest retained record, or `currentLsn() + 1` when none is retained. O(1). */
  oldestLsn(): number {
    return this.#files.oldestLsn();
  }

  /** Sum of the segment files' durable bytes. */
  retainedBytes(): number {
    return this.#files.retainedBytes();
  }

  /** Bytes of the segments that hold records after `lsn` (what a slot at `lsn` keeps on disk). */
  retainedBytesAfter(lsn: number): number {
    return this.#files.retainedBytesAfter(lsn);
  }

  /** The segments, oldest first. */
  segments(): SegmentInfo[] {
    return this.#files.infos();
  }

  /** Memory and queue figures for status and metrics. */
  stats(): SpoolStats {
    return {
      tailRecords: this.#tail.count,
      tailBytes: this.#tail.byteLength,
      queuedBytes: this.#queuedBytes,
      waiters: this.#feed.waiters,
      commitListeners: this.#feed.listeners,
      readAheadBytes: this.#files.readAheadBytes(),
    };
  }

  /** True when `bytes` more may wait in the append queue (a write route refuses early if not). */
  queueHasRoom(bytes: number): boolean {
    return this.#queuedBytes + bytes <= this.#queueBytesMax;
  }

  /** When the record `lsn` was appended, from memory (see `CommitTimes.timeOf`); no disk read. */
  appendedAtMs(lsn: number): number {
    return this.#commitTimes.timeOf(lsn);
  }

  /** True until the spool is closed or stopped by a fatal I/O error. */
  isWritable(): boolean {
    return this.#state === "open";
  }

  /**
   * Appends one request's payloads as consecutive records and resolves once they are durable (see
   * the class comment). Rejects with `DiskFullError` (nothing written), `OverloadedError` (queue
   * full), or `UnavailableError` (closed or failed). Payload bytes are copied at commit time.
   */
  append(payloads: readonly Uint8Array[]): Promise<AppendResult> {
    const refused = this.#refusal();
    if (refused) return Promise.reject(refused);
    assert(payloads.length >= 1, "append needs at least one payload");
    let frameBytes = 0;
    for (const payload of payloads) frameBytes += frameV3ByteLength(payload.byteLength);
    if (!this.queueHasRoom(frameBytes)) {
      return Promise.reject(
        new OverloadedError("the append queue is full; retry shortly", {
          queued_bytes: this.#queuedBytes,
        }),
      );
    }
    return new Promise<AppendResult>((resolve, reject) => {
      this.#queue.push({ payloads, frameBytes, resolve, reject });
      this.#queuedBytes += frameBytes;
      this.#scheduleDrain();
    });
  }

  /**
   * Appends frames another node wrote (a relay's or standby's copy of its upstream, SPEC.md 13.3):
   * same LSNs, bytes, terms and timestamps, under `append`'s contract and errors. Each must follow
   * the one before (the first `currentLsn()`), else `LsnGapError`. One caller: the follower.
   */
  appendFrames(frames: readonly DecodedFrame[]): Promise<AppendResult> {
    const refused = this.#refusal();
    if (refused) return Promise.reject(refused);
    assert(frames.length >= 1, "appendFrames needs at least one frame");
    if (!this.#draining && frames[0]!.lsn !== this.#currentLsn + 1) {
      return Promise.reject(new LsnGapError(this.#currentLsn + 1, frames[0]!.lsn));
    }
    let frameBytes = 0;
    for (const frame of frames) frameBytes += frame.byteLength;
    const payloads = frames.map((frame) => frame.payload);
    return new Promise<AppendResult>((resolve, reject) => {
      this.#queue.push({ payloads, frames, frameBytes, resolve, reject });
      this.#queuedBytes += frameBytes;
      this.#scheduleDrain();
    });
  }

  #unavailable(): Error {
    return this.#failure ?? new UnavailableError("the spool is closed");
  }

  /** Why an append or a read may not start now, if it may not. */
  #refusal(): Error | undefined {
    if (this.#state !== "open") return this.#unavailable();
    if (this.#gate.truncating) return this.#gate.truncatingError();
    return undefined;
  }

  #scheduleDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    // A microtask lets every append issued in the same tick join the first group commit.
    queueMicrotask(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const { batch, frameBytes } = takeGroupCommit(this.#queue);
        this.#queuedBytes -= frameBytes;
        await this.#commitBatch(batch);
      }
    } finally {
      this.#draining = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  async #commitBatch(batch: PendingAppend<AppendResult>[]): Promise<void> {
    if (this.#state === "failed") {
      for (const pending of batch) pending.reject(this.#unavailable());
      return;
    }
    try {
      await this.#files.rollIfFull(this.segmentBytesMax, this.#currentLsn + 1);
    } catch (error) {
      for (const pending of batch) pending.reject(this.#mapIoError(error, "roll"));
      return;
    }
    const timestampMs = this.#clock();
    let encoded: EncodedGroupCommit;
    try {
      encoded = encodeGroupCommit(batch, {
        term: this.term,
        previousLsn: this.#currentLsn,
        timestampMs,
      });
    } catch (error) {
      // Mirrored frames out of order: nothing of this group commit is written.
      for (const pending of batch) pending.reject(error as Error);
      return;
    }
    let offset: number;
    try {
      offset = await this.#files.writeAtEnd(encoded.buffer);
    } catch (error) {
      await this.#undoPartialWrite();
      for (const pending of batch) pending.reject(this.#mapIoError(error, "write"));
      return;
    }
    const syncStarted = performance.now();
    let inline: boolean;
    try {
      const syncing = this.#files.syncActive(this.#inlineSync.inline(batch.length));
      this.#files.hashNoted(); // earlier group commits' bytes, while the disk flushes these
      inline = await syncing;
    } catch (error) {
      this.#fail(error, "fdatasync");
      for (const pending of batch) pending.reject(this.#unavailable());
      return;
    }
    const ms = performance.now() - syncStarted;
    this.#inlineSync.synced({ appends: batch.length, inline, ms, queued: this.#queue.length });
    this.#observer.fsyncSeconds?.(ms / 1000, inline);
    const { buffer, firstLsn } = encoded;
    this.#publish(encoded, offset);
    resolveGroupCommit(batch, firstLsn, timestampMs);
    // Writers first: the feed wakes long-polls and streams on the next turn of the event loop.
    this.#feed.published({ firstLsn, lastLsn: this.#currentLsn, bytes: buffer });
  }

  /** Makes a durable batch visible: index, sizes, tail, current LSN. */
  #publish(commit: EncodedGroupCommit, offset: number): void {
    const { firstLsn, ends } = commit;
    this.#files.noteDurable(commit, offset);
    this.#commitTimes.note(firstLsn, commit.firstTimestampMs);
    this.#tail.pushRun(commit.buffer, firstLsn, ends);
    this.#currentLsn = firstLsn + ends.length - 1;
    this.#observer.groupCommitRecords?.(ends.length);
  }

  async #undoPartialWrite(): Promise<void> {
    try {
      await this.#files.truncateActive();
    } catch (error) {
      this.#fail(error, "truncate after a failed write");
    }
  }

  #mapIoError(error: unknown, during: string): Error {
    if (isDiskFullError(error)) {
      this.#logger.warn("spool.disk_full", { during, error });
      return new DiskFullError();
    }
    if (this.#state === "failed") return this.#unavailable();
    this.#logger.error("spool.io_error", { during, error });
    return new UnavailableError(`spool ${during} failed: ${(error as Error).message}`);
  }

  /** Stops the spool for good (a failed fdatasync may have lost dirty pages: only a restart). */
  #fail(error: unknown, during: string): void {
    if (this.#state === "failed") return;
    this.#state = "failed";
    this.#failure = new UnavailableError(
      `the spool stopped after a failed ${during}; restart ferry to recover`,
    );
    this.#logger.error("spool.failed", { during, error });
    for (const pending of this.#queue.splice(0)) pending.reject(this.#failure);
    this.#queuedBytes = 0;
    this.#feed.releaseAll();
  }

  /**
   * Records with LSN > `sinceLsn`, in order, at most `maxCount` and about `maxBytes` (at least one
   * when any is available): `SpoolReads.readSince`. Needs read access.
   */
  readSince(sinceLsn: number, maxCount: number, maxBytes: number): Promise<DecodedFrame[]> {
    return this.#gate.read(() => this.#reads.readSince(sinceLsn, maxCount, maxBytes));
  }

  /** The records `readSince` returns, as the bytes stored (`SpoolReads.readRawSince`). */
  readRawSince(sinceLsn: number, maxCount: number, maxBytes: number): Promise<RawFrames> {
    return this.#gate.read(() => this.#reads.readRawSince(sinceLsn, maxCount, maxBytes));
  }

  /**
   * Resolves true as soon as a record after `afterLsn` is durable, false when `timeoutMs` passes,
   * `signal` aborts, or the spool closes. A waiter that ends for any reason is removed at once.
   * `internal` waiters (ferry's own components) are not counted in `stats().waiters`.
   */
  async waitForAppend(
    afterLsn: number,
    options: WaitOptions & { internal?: boolean },
  ): Promise<boolean> {
    if (this.#currentLsn > afterLsn) return true;
    if (this.#state !== "open") return false;
    return await this.#feed.wait(() => this.#currentLsn > afterLsn, options);
  }

  /**
   * Calls `listener` with each group commit made durable from now on (its frames as the one buffer
   * written, on the turn after the writers were answered), in LSN order, until the returned
   * function unsubscribes it. A streaming pull's feed.
   */
  onCommit(listener: CommitListener): () => void {
    return this.#feed.subscribe(listener);
  }

  /**
   * Deletes whole sealed segments whose last LSN is ≤ `through`, oldest first, keeping at least
   * `retainBytesMin` bytes; then fsyncs the directory. Never touches the active segment (appends go
   * on). Prunes run one at a time, so one may start well after the call: pass `through` as a
   * function to read it (a retention floor) right before its segments are chosen. Needs write.
   */
  pruneThrough(
    through: number | (() => number),
    options: { retainBytesMin?: number } = {},
  ): Promise<PruneResult> {
    return this.#gate.serial(() => {
      const lsn = typeof through === "function" ? through() : through;
      assert(Number.isSafeInteger(lsn), "a prune goes through an LSN");
      return this.#prune(lsn, options.retainBytesMin ?? 0);
    });
  }

  async #prune(lsn: number, retainBytesMin: number): Promise<PruneResult> {
    // The segments are chosen before the first await: nothing can move the target meanwhile.
    const removed = await this.#files.prune(lsn, retainBytesMin);
    // The files are forgotten first (no new read starts on them), then the tail lets go.
    if (removed.removedSegments > 0) this.#tail.dropThrough(removed.throughLsn);
    const { removedSegments, removedBytes } = removed;
    const result = { removedSegments, removedBytes, oldestLsn: this.oldestLsn() };
    if (removedSegments > 0) this.#logger.info("spool.pruned", { through_lsn: lsn, ...result });
    return result;
  }

  /**
   * Drops every record with LSN > `lsn` (a fork point, SPEC.md 13.4), durably: later segments go
   * newest first, then the one holding `lsn + 1` is cut after `lsn` and becomes the active one; a
   * crash at any step reopens a gap-free prefix (`truncate.ts`). Tail, commit times and
   * `currentLsn()` follow. For a quiet spool (a node rejoining): appends and reads are refused
   * (`UnavailableError`) until it ends; it starts once queued appends are durable and reads and
   * prunes have ended; waiters are not woken. `lsn ≥ currentLsn()` changes nothing; `lsn <
   * oldestLsn() - 1` throws `WalTruncateError` (rebuild from a snapshot); an I/O error stops the
   * spool (restart, then truncate again). Needs read and write access.
   */
  truncateAfter(lsn: number): Promise<TruncateResult> {
    assert(Number.isSafeInteger(lsn) && lsn >= 0, "a truncation goes after an LSN");
    if (this.#state !== "open") return Promise.reject(this.#unavailable());
    return this.#gate.truncation(() => this.#truncate(lsn));
  }

  async #truncate(lsn: number): Promise<TruncateResult> {
    if (this.#draining) await new Promise<void>((resolve) => this.#idle.push(resolve));
    // A turn of the event loop: the feed's pending wake (an immediate) reaches its listeners first.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.#state !== "open") throw this.#unavailable();
    assert.equal(this.#queue.length, 0, "no append is queued while a truncation runs");
    const currentLsn = this.#currentLsn;
    if (lsn >= currentLsn) return { droppedRecords: 0, droppedBytes: 0, currentLsn };
    const plan = await this.#files.planTruncation(lsn).catch((error) => {
      throw error instanceof WalCorruptionError ? this.#reads.reportCorruption(error) : error;
    });
    try {
      await this.#files.truncate(plan);
    } catch (error) {
      this.#fail(error, "truncation");
      throw this.#unavailable();
    }
    this.#tail.dropAfter(lsn);
    this.#commitTimes.forgetAfter(lsn);
    this.#currentLsn = lsn;
    this.#logger.info("spool.truncated", truncationLogFields(plan));
    const { droppedRecords, droppedBytes } = plan;
    return { droppedRecords, droppedBytes, currentLsn: lsn };
  }

  /**
   * Stops accepting appends, lets queued appends finish, and answers held long-poll waiters (with
   * "nothing new"). Reads keep working until `close()`. The first step of a graceful shutdown.
   */
  async quiesce(): Promise<void> {
    if (this.#state === "open") this.#state = "closing";
    if (this.#draining) await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#feed.releaseAll();
  }

  /**
   * Quiesces, waits for a running prune or truncation, and closes the segment file. Unless the
   * spool failed, every append is durable now and none can follow: it leaves a clean shutdown
   * record (`SegmentSet.close`), so the next open need not scan the newest segment.
   */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    await this.quiesce();
    await this.#gate.settled();
    const samples = this.#commitTimes.samplesFrom(this.#files.active.firstLsn);
    await this.#files.close(this.#state === "failed" ? undefined : { samples });
    this.#state = "closed";
  }
}
