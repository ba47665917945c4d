/**
 * The segmented spool (SPEC.md section 3): ferry's durable logical WAL.
 *
 * Layout: `<wal dir>/<timeline, 8 hex digits>/<first LSN, 20 digits>.wal`. One appender; readers
 * and pruning never block it.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  DiskFullError,
  isDiskFullError,
  OverloadedError,
  UnavailableError,
  WalCorruptionError,
  WalRemovedError,
} from "../core/errors.ts";
import {
  denoFileSystem,
  type FileHandle,
  type FileSystem,
  joinPath,
  parentDir,
} from "../core/files.ts";
import {
  APPEND_QUEUE_BYTES_MAX,
  APPEND_WAITERS_MAX,
  GROUP_COMMIT_BYTES_MAX,
  GROUP_COMMIT_RECORDS_MAX,
  SEGMENT_BYTES_DEFAULT,
  TAIL_BYTES_DEFAULT,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import {
  type DecodedFrame,
  FRAME_V3,
  FRAME_V3_HEADER_BYTES,
  frameV3ByteLength,
  writeFrameV3,
} from "./frame.ts";
import {
  parseSegmentFileName,
  type ReadBudget,
  SeekIndex,
  Segment,
  segmentFileName,
  takeIntoBudget,
} from "./segment.ts";
import { FrameTail } from "./tail.ts";
import { Waiters, type WaitOptions } from "../core/waiter.ts";

/** Hooks for metrics; the spool imports no metrics library. */
export interface SpoolObserver {
  fsyncSeconds?(seconds: number): void;
  groupCommitRecords?(records: number): void;
  corruption?(error: WalCorruptionError): void;
}

/** Options of `Spool.open`. */
export interface SpoolOptions {
  /** The `<data>/wal` directory; the timeline directory is created inside it. */
  walDir: string;
  timeline: number;
  /** Term stamped into every frame this spool writes. */
  term: number;
  segmentBytesMax?: number;
  tailBytesMax?: number;
  fs?: FileSystem;
  logger?: Logger;
  observer?: SpoolObserver;
  /** Wall clock in ms (frame timestamps). */
  clock?: () => number;
}

/** The LSNs one append received. */
export interface AppendResult {
  firstLsn: number;
  lastLsn: number;
  timestampMs: number;
}

/** What opening the spool found and repaired. */
export interface RecoveryReport {
  segments: number;
  oldestLsn: number;
  currentLsn: number;
  truncatedBytes: number;
  repairReason: string | undefined;
  ignoredFiles: string[];
}

/** One segment as status and retention see it. */
export interface SegmentInfo {
  firstLsn: number;
  lastLsn: number;
  sizeBytes: number;
  sealed: boolean;
}

/** What a prune removed. */
export interface PruneResult {
  removedSegments: number;
  removedBytes: number;
  oldestLsn: number;
}

interface _PendingAppend {
  payloads: readonly Uint8Array[];
  frameBytes: number;
  resolve: (result: AppendResult) => void;
  reject: (error: Error) => void;
}

type _State = "open" | "closing" | "closed" | "failed";

/** Name of a timeline directory: 8 lowercase hex digits. */
export function timelineDirName(timeline: number): string {
  assert(Number.isSafeInteger(timeline) && timeline >= 1 && timeline <= 0xffff_ffff);
  return timeline.toString(16).padStart(8, "0");
}

/**
 * The durable, segmented, group-committed log.
 *
 * Durability contract (the only place it lives): `append()` resolves only after the frames it
 * carries were written with one `write` and made durable with one `fdatasync` of the segment
 * (shared with every other append of the same group commit). New segment files are followed by a
 * directory fsync before any frame is written into them, and deletions by one after them. Only
 * then do readers, the tail and long-poll waiters see the records, so nothing that could still
 * vanish in a crash is ever served or acknowledged.
 */
export class Spool {
  readonly dir: string;
  readonly timeline: number;
  readonly term: number;
  readonly segmentBytesMax: number;
  readonly recovery: RecoveryReport;
  #fs: FileSystem;
  #logger: Logger;
  #observer: SpoolObserver;
  #clock: () => number;
  #segments: Segment[];
  #activeFile: FileHandle;
  #tail: FrameTail;
  #currentLsn: number;
  #retainedBytes: number;
  #queue: _PendingAppend[] = [];
  #queuedBytes = 0;
  #draining = false;
  #idle: Array<() => void> = [];
  #state: _State = "open";
  #failure: Error | undefined;
  #waiters = new Waiters({ max: APPEND_WAITERS_MAX, what: "held pulls" });
  /** Waiters of ferry's own components (the state applier), not counted as held pulls. */
  #internalWaiters = new Waiters({ max: APPEND_WAITERS_MAX, what: "internal waiters" });
  /** The pending wake of long-poll waiters after a group commit. */
  #wakeTimer: ReturnType<typeof setTimeout> | undefined;
  #pruneChain: Promise<unknown> = Promise.resolve();

  private constructor(
    fields: {
      options: SpoolOptions;
      dir: string;
      segments: Segment[];
      activeFile: FileHandle;
      tail: FrameTail;
      recovery: RecoveryReport;
    },
  ) {
    const { options } = fields;
    this.dir = fields.dir;
    this.timeline = options.timeline;
    this.term = options.term;
    this.segmentBytesMax = options.segmentBytesMax ?? SEGMENT_BYTES_DEFAULT;
    this.recovery = fields.recovery;
    this.#fs = options.fs ?? denoFileSystem();
    this.#logger = options.logger ?? silentLogger;
    this.#observer = options.observer ?? {};
    this.#clock = options.clock ?? Date.now;
    this.#segments = fields.segments;
    this.#activeFile = fields.activeFile;
    this.#tail = fields.tail;
    this.#currentLsn = fields.recovery.currentLsn;
    this.#retainedBytes = fields.segments.reduce((sum, s) => sum + s.sizeBytes, 0);
  }

  /**
   * Opens (creating when missing) the spool. Sealed segments are listed and sized, never read; the
   * newest is scanned, its torn tail truncated and fsynced, and its frames loaded into the tail.
   * Needs read and write access to `walDir`.
   */
  static async open(options: SpoolOptions): Promise<Spool> {
    const fs = options.fs ?? denoFileSystem();
    const logger = options.logger ?? silentLogger;
    const dir = joinPath(options.walDir, timelineDirName(options.timeline));
    await fs.mkdirp(dir);
    const { firstLsns, ignoredFiles } = await _listSegments(fs, dir);
    if (firstLsns.length === 0) {
      (await _createSegmentFile(fs, dir, 1)).close();
      await fs.syncDir(parentDir(dir));
      firstLsns.push(1);
    }
    const sealed = await _sealedSegments(fs, dir, firstLsns);
    const newestFirstLsn = firstLsns[firstLsns.length - 1]!;
    const newestPath = joinPath(dir, segmentFileName(newestFirstLsn));
    const tail = new FrameTail(options.tailBytesMax ?? TAIL_BYTES_DEFAULT);
    const activeFile = await fs.open(newestPath, { write: true });
    let repaired;
    try {
      repaired = await Segment.repairNewest(
        activeFile,
        { path: newestPath, firstLsn: newestFirstLsn },
        (frame) => tail.push(frame),
      );
    } catch (error) {
      activeFile.close();
      throw error;
    }
    const segments = [...sealed, repaired.segment];
    const recovery: RecoveryReport = {
      segments: segments.length,
      oldestLsn: _oldestOf(segments, repaired.segment.lastLsn),
      currentLsn: repaired.segment.lastLsn,
      truncatedBytes: repaired.report.truncatedBytes,
      repairReason: repaired.report.reason,
      ignoredFiles,
    };
    _logRecovery(logger, dir, recovery);
    return new Spool({ options, dir, segments, activeFile, tail, recovery });
  }

  /** LSN of the newest durable record (0 when none was ever written). O(1). */
  currentLsn(): number {
    return this.#currentLsn;
  }

  /** LSN of the oldest retained record, or `currentLsn() + 1` when none is retained. O(1). */
  oldestLsn(): number {
    return _oldestOf(this.#segments, this.#currentLsn);
  }

  /** Sum of the segment files' durable bytes. */
  retainedBytes(): number {
    return this.#retainedBytes;
  }

  /** Bytes of the segments that hold records after `lsn` (what a slot at `lsn` keeps on disk). */
  retainedBytesAfter(lsn: number): number {
    let bytes = 0;
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const segment = this.#segments[i]!;
      if (segment.lastLsn <= lsn && i < this.#segments.length - 1) break;
      bytes += segment.sizeBytes;
    }
    return bytes;
  }

  /** The segments, oldest first. */
  segments(): SegmentInfo[] {
    const last = this.#segments.length - 1;
    return this.#segments.map((s, i) => ({
      firstLsn: s.firstLsn,
      lastLsn: s.lastLsn,
      sizeBytes: s.sizeBytes,
      sealed: i < last,
    }));
  }

  /**
   * The seek-index checkpoints `[lsn, offset]` of the segment starting at `firstLsn` (built on
   * demand for a sealed segment), or undefined when no such segment is retained.
   */
  async seekIndexOf(firstLsn: number): Promise<Array<[number, number]> | undefined> {
    const segment = this.#segments.find((s) => s.firstLsn === firstLsn);
    return segment ? (await segment.ensureIndex(this.#fs)).entries() : undefined;
  }

  /** Memory and queue figures for status and metrics. */
  stats(): { tailRecords: number; tailBytes: number; queuedBytes: number; waiters: number } {
    return {
      tailRecords: this.#tail.count,
      tailBytes: this.#tail.byteLength,
      queuedBytes: this.#queuedBytes,
      waiters: this.#waiters.size,
    };
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
    if (this.#state !== "open") return Promise.reject(this.#unavailable());
    assert(payloads.length >= 1, "append needs at least one payload");
    let frameBytes = 0;
    for (const payload of payloads) frameBytes += frameV3ByteLength(payload.byteLength);
    if (this.#queuedBytes + frameBytes > APPEND_QUEUE_BYTES_MAX) {
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

  #unavailable(): Error {
    return this.#failure ?? new UnavailableError("the spool is closed");
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
        await this.#commitBatch(this.#takeBatch());
      }
    } finally {
      this.#draining = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  #takeBatch(): _PendingAppend[] {
    let bytes = 0;
    let records = 0;
    let count = 0;
    for (const pending of this.#queue) {
      const nextBytes = bytes + pending.frameBytes;
      const nextRecords = records + pending.payloads.length;
      const fits = nextBytes <= GROUP_COMMIT_BYTES_MAX && nextRecords <= GROUP_COMMIT_RECORDS_MAX;
      if (count > 0 && !fits) break;
      bytes = nextBytes;
      records = nextRecords;
      count += 1;
    }
    const batch = this.#queue.splice(0, count);
    this.#queuedBytes -= bytes;
    return batch;
  }

  async #commitBatch(batch: _PendingAppend[]): Promise<void> {
    if (this.#state === "failed") {
      for (const pending of batch) pending.reject(this.#unavailable());
      return;
    }
    try {
      await this.#rollIfFull();
    } catch (error) {
      for (const pending of batch) pending.reject(this.#mapIoError(error, "roll"));
      return;
    }
    const timestampMs = this.#clock();
    const { buffer, frames } = this.#encodeBatch(batch, timestampMs);
    const active = this.#segments[this.#segments.length - 1]!;
    const offset = active.sizeBytes;
    try {
      await this.#activeFile.writeAt(buffer, offset);
    } catch (error) {
      await this.#undoPartialWrite(offset);
      for (const pending of batch) pending.reject(this.#mapIoError(error, "write"));
      return;
    }
    const syncStarted = performance.now();
    try {
      await this.#activeFile.syncData();
    } catch (error) {
      this.#fail(error, "fdatasync");
      for (const pending of batch) pending.reject(this.#unavailable());
      return;
    }
    this.#observer.fsyncSeconds?.((performance.now() - syncStarted) / 1000);
    this.#publish(active, frames, offset, buffer.byteLength);
    this.#resolveBatch(batch, frames[0]!.lsn, timestampMs);
    // Writers first, then long-polls: the wake waits for the next turn of the event loop, so the
    // writers' handlers answer before the (possibly hundreds of) pulls this batch wakes.
    this.#wakeTimer ??= setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#wakeWaiters();
    }, 0);
  }

  #encodeBatch(
    batch: _PendingAppend[],
    timestampMs: number,
  ): { buffer: Uint8Array; frames: DecodedFrame[] } {
    let total = 0;
    for (const pending of batch) total += pending.frameBytes;
    const buffer = new Uint8Array(total);
    const frames: DecodedFrame[] = [];
    let lsn = this.#currentLsn;
    let offset = 0;
    for (const pending of batch) {
      for (const payload of pending.payloads) {
        lsn += 1;
        const fields = { term: this.term, ownershipEpoch: 0, lsn, timestampMs, payload };
        const length = writeFrameV3(buffer, offset, fields);
        const bytes = buffer.subarray(offset, offset + length);
        frames.push({
          ...fields,
          version: FRAME_V3,
          payload: bytes.subarray(
            FRAME_V3_HEADER_BYTES,
            FRAME_V3_HEADER_BYTES + payload.byteLength,
          ),
          byteLength: length,
          bytes,
        });
        offset += length;
      }
    }
    return { buffer, frames };
  }

  /** Makes a durable batch visible: index, sizes, tail, current LSN. */
  #publish(active: Segment, frames: DecodedFrame[], offset: number, bytes: number): void {
    let frameOffset = offset;
    for (const frame of frames) {
      active.noteAppended(frame, frameOffset);
      this.#tail.push(frame);
      frameOffset += frame.byteLength;
    }
    active.sizeBytes = offset + bytes;
    this.#retainedBytes += bytes;
    this.#currentLsn = frames[frames.length - 1]!.lsn;
    this.#observer.groupCommitRecords?.(frames.length);
  }

  #resolveBatch(batch: _PendingAppend[], firstLsn: number, timestampMs: number): void {
    let next = firstLsn;
    for (const pending of batch) {
      const lastLsn = next + pending.payloads.length - 1;
      pending.resolve({ firstLsn: next, lastLsn, timestampMs });
      next = lastLsn + 1;
    }
  }

  async #undoPartialWrite(offset: number): Promise<void> {
    try {
      await this.#activeFile.truncate(offset);
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

  /**
   * Stops the spool for good. After a failed fdatasync the kernel may have dropped the dirty pages,
   * so nothing written since the last good sync can be trusted: only a restart, which re-reads
   * what is really on disk, may continue.
   */
  #fail(error: unknown, during: string): void {
    if (this.#state === "failed") return;
    this.#state = "failed";
    this.#failure = new UnavailableError(
      `the spool stopped after a failed ${during}; restart ferry to recover`,
    );
    this.#logger.error("spool.failed", { during, error });
    for (const pending of this.#queue.splice(0)) pending.reject(this.#failure);
    this.#queuedBytes = 0;
    this.#releaseWaiters();
  }

  async #rollIfFull(): Promise<void> {
    const active = this.#segments[this.#segments.length - 1]!;
    if (active.sizeBytes < this.segmentBytesMax) return;
    const firstLsn = this.#currentLsn + 1;
    const file = await _createSegmentFile(this.#fs, this.dir, firstLsn);
    const path = joinPath(this.dir, segmentFileName(firstLsn));
    this.#activeFile.close();
    this.#activeFile = file;
    this.#segments.push(
      new Segment({
        path,
        firstLsn,
        lastLsn: firstLsn - 1,
        sizeBytes: 0,
        index: new SeekIndex(),
        recordCount: 0,
      }),
    );
  }

  /**
   * Records with LSN > `sinceLsn`, in order, at most `maxCount` and about `maxBytes` (at least one
   * record when any is available). Served from the in-memory tail when it holds `sinceLsn + 1`,
   * else from the segments through the seek index, stopping as soon as the budget is spent.
   * Throws `WalRemovedError` when `sinceLsn + 1` was pruned, `WalCorruptionError` when a segment
   * fails verification. Needs read access to the spool directory.
   */
  async readSince(sinceLsn: number, maxCount: number, maxBytes: number): Promise<DecodedFrame[]> {
    assert(Number.isSafeInteger(sinceLsn) && sinceLsn >= 0);
    assert(Number.isSafeInteger(maxCount) && maxCount >= 0 && maxBytes >= 0);
    if (this.#state === "closed") throw this.#unavailable();
    if (sinceLsn >= this.#currentLsn || maxCount === 0) return [];
    const oldest = this.oldestLsn();
    if (sinceLsn + 1 < oldest) throw new WalRemovedError(sinceLsn, oldest);
    if (this.#tail.has(sinceLsn + 1)) return this.#tail.readSince(sinceLsn, maxCount, maxBytes);
    const budget: ReadBudget = { maxCount, maxBytes, usedBytes: 0, out: [] };
    await this.#readFromSegments(sinceLsn, budget);
    const first = budget.out[0];
    if (first !== undefined && first.lsn !== sinceLsn + 1) {
      throw this.#reportCorruption(
        new WalCorruptionError(`expected LSN ${sinceLsn + 1} first, read ${first.lsn}`),
      );
    }
    return budget.out;
  }

  async #readFromSegments(sinceLsn: number, budget: ReadBudget): Promise<void> {
    const segments = this.#segments.slice();
    let since = sinceLsn;
    for (const segment of segments) {
      if (segment.lastLsn <= since) continue;
      if (this.#tail.has(since + 1)) {
        const room = budget.maxCount - budget.out.length;
        for (const frame of this.#tail.readSince(since, room, Infinity)) {
          if (!takeIntoBudget(budget, frame)) break;
        }
        return;
      }
      let full: boolean;
      try {
        full = await segment.readInto(this.#fs, since, budget);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new WalRemovedError(sinceLsn, this.oldestLsn());
        }
        if (error instanceof WalCorruptionError) throw this.#reportCorruption(error);
        throw error;
      }
      if (full) return;
      since = budget.out.length > 0 ? budget.out[budget.out.length - 1]!.lsn : segment.lastLsn;
    }
  }

  #reportCorruption(error: WalCorruptionError): WalCorruptionError {
    this.#logger.error("spool.corruption", { message: error.message, ...error.details });
    this.#observer.corruption?.(error);
    return error;
  }

  /** The durable frame with `lsn`, or undefined when it is pruned or not yet written. */
  async frameAt(lsn: number): Promise<DecodedFrame | undefined> {
    if (lsn < this.oldestLsn() || lsn > this.#currentLsn) return undefined;
    const tailed = this.#tail.get(lsn);
    if (tailed) return tailed;
    try {
      return (await this.readSince(lsn - 1, 1, 0))[0];
    } catch (error) {
      if (error instanceof WalRemovedError) return undefined;
      throw error;
    }
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
    const waiters = options.internal ? this.#internalWaiters : this.#waiters;
    return await waiters.wait(undefined, () => this.#currentLsn > afterLsn, options);
  }

  #wakeWaiters(): void {
    this.#waiters.wake();
    this.#internalWaiters.wake();
  }

  #releaseWaiters(): void {
    this.#waiters.releaseAll();
    this.#internalWaiters.releaseAll();
  }

  /**
   * Deletes whole sealed segments whose last LSN is ≤ `lsn`, oldest first, keeping at least
   * `retainBytesMin` bytes; then fsyncs the directory. Never touches the active segment, so
   * concurrent appends are unaffected. Prunes run one at a time. Needs write access.
   */
  pruneThrough(lsn: number, options: { retainBytesMin?: number } = {}): Promise<PruneResult> {
    const run = this.#pruneChain.then(() => this.#prune(lsn, options.retainBytesMin ?? 0));
    this.#pruneChain = run.catch(() => undefined);
    return run;
  }

  async #prune(lsn: number, retainBytesMin: number): Promise<PruneResult> {
    const removable: Segment[] = [];
    let retained = this.#retainedBytes;
    for (const segment of this.#segments.slice(0, -1)) {
      if (segment.lastLsn > lsn || retained - segment.sizeBytes < retainBytesMin) break;
      removable.push(segment);
      retained -= segment.sizeBytes;
    }
    if (removable.length === 0) {
      return { removedSegments: 0, removedBytes: 0, oldestLsn: this.oldestLsn() };
    }
    // Forget the segments first, so no new read starts on a file about to go.
    this.#segments.splice(0, removable.length);
    const removedBytes = this.#retainedBytes - retained;
    this.#retainedBytes = retained;
    this.#tail.dropThrough(removable[removable.length - 1]!.lastLsn);
    for (const segment of removable) {
      try {
        await this.#fs.remove(segment.path);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    await this.#fs.syncDir(this.dir);
    const result = { removedSegments: removable.length, removedBytes, oldestLsn: this.oldestLsn() };
    this.#logger.info("spool.pruned", { through_lsn: lsn, ...result });
    return result;
  }

  /**
   * Stops accepting appends, lets queued appends finish, and answers held long-poll waiters (with
   * "nothing new"). Reads keep working until `close()`. The first step of a graceful shutdown.
   */
  async quiesce(): Promise<void> {
    if (this.#state === "open") this.#state = "closing";
    if (this.#draining) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (this.#wakeTimer !== undefined) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#releaseWaiters();
  }

  /** Quiesces, waits for a running prune, and closes the segment file. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    await this.quiesce();
    await this.#pruneChain;
    this.#activeFile.close();
    this.#state = "closed";
  }
}

function _oldestOf(segments: readonly Segment[], currentLsn: number): number {
  for (const segment of segments) {
    if (segment.lastLsn >= segment.firstLsn) return segment.firstLsn;
  }
  return currentLsn + 1;
}

async function _listSegments(
  fs: FileSystem,
  dir: string,
): Promise<{ firstLsns: number[]; ignoredFiles: string[] }> {
  const firstLsns: number[] = [];
  const ignoredFiles: string[] = [];
  for (const name of await fs.readDir(dir)) {
    const lsn = parseSegmentFileName(name);
    if (lsn === undefined) ignoredFiles.push(name);
    else firstLsns.push(lsn);
  }
  firstLsns.sort((a, b) => a - b);
  return { firstLsns, ignoredFiles };
}

async function _sealedSegments(
  fs: FileSystem,
  dir: string,
  firstLsns: readonly number[],
): Promise<Segment[]> {
  // Sizes come from metadata only: listed and sized, never read.
  const sealedLsns = firstLsns.slice(0, -1);
  const sizes: number[] = [];
  for (const lsn of sealedLsns) sizes.push(await fs.sizeOf(joinPath(dir, segmentFileName(lsn))));
  return sealedLsns.map((firstLsn, i) =>
    new Segment({
      path: joinPath(dir, segmentFileName(firstLsn)),
      firstLsn,
      lastLsn: firstLsns[i + 1]! - 1,
      sizeBytes: sizes[i]!,
    })
  );
}

/** Creates an empty segment file and makes its directory entry durable before it is used. */
async function _createSegmentFile(
  fs: FileSystem,
  dir: string,
  firstLsn: number,
): Promise<FileHandle> {
  const path = joinPath(dir, segmentFileName(firstLsn));
  const file = await fs.open(path, { write: true, create: true });
  try {
    if (await file.size() !== 0) {
      throw new WalCorruptionError(`new segment ${path} already holds bytes`, { path });
    }
    await fs.syncDir(dir);
  } catch (error) {
    file.close();
    throw error;
  }
  return file;
}

function _logRecovery(logger: Logger, dir: string, recovery: RecoveryReport): void {
  if (recovery.truncatedBytes > 0) {
    logger.warn("spool.repaired", {
      dir,
      truncated_bytes: recovery.truncatedBytes,
      reason: recovery.repairReason,
    });
  }
  if (recovery.ignoredFiles.length > 0) {
    logger.warn("spool.ignored_files", { dir, files: recovery.ignoredFiles });
  }
}
