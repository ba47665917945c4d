/**
 * The segment files of one timeline directory (SPEC.md section 3), oldest first: opening them
 * (sealed ones listed and sized, never read; the newest taken from the clean shutdown record or
 * repaired, `newest_segment.ts`), the active file writes go to, rolling to a new segment, range
 * reads across segments, and deleting whole sealed segments. What is durable when is the spool's
 * business (`spool.ts`); this module only does the file work.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { WalRemovedError } from "../core/errors.ts";
import { type FileHandle, type FileSystem, joinPath, parentDir } from "../core/files.ts";
import { DIGEST_CATCH_UP_DELAY_MS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import { type ReadBudget, SeekIndex, Segment, segmentFileName } from "./segment.ts";
import { sidecarPath } from "./seek_sidecar.ts";
import { writeManifest } from "./segment_manifest.ts";
import { type CleanShutdown, removeCleanShutdown, writeCleanShutdown } from "./clean_shutdown.ts";
import { createDirs, createSegmentFile, listSegments, sealedSegments } from "./segment_dir.ts";
import { openNewestSegment } from "./newest_segment.ts";
import { ReadAhead } from "./read_ahead.ts";
import type { EncodedGroupCommit } from "./group_commit.ts";
import { RunningDigest } from "./segment_digest.ts";
import { planTruncation, truncateFiles, type TruncationPlan } from "./truncate.ts";

/** What opening the spool found and repaired. */
export interface RecoveryReport {
  segments: number;
  oldestLsn: number;
  currentLsn: number;
  truncatedBytes: number;
  repairReason: string | undefined;
  /** True when a clean shutdown record described the newest segment: it was not scanned. */
  trustedCleanShutdown: boolean;
  ignoredFiles: string[];
}

/** One segment as status and retention see it. */
export interface SegmentInfo {
  firstLsn: number;
  lastLsn: number;
  sizeBytes: number;
  sealed: boolean;
}

/** The segments of one timeline directory and the open file of the newest (active) one. */
export class SegmentSet {
  readonly dir: string;
  #fs: FileSystem;
  /** Catching-up readers' next ranges, read while they check the last (`read_ahead.ts`). */
  #readAhead = new ReadAhead();
  #segments: Segment[];
  #activeFile: FileHandle;
  #retainedBytes: number;
  #logger: Logger;
  /** Manifest writes, one at a time (a roll and a prune may both write it). */
  #manifestWrites: Promise<void> = Promise.resolve();
  /** The bytes of the last `writeAtEnd`, hashed into the active segment once they are durable. */
  #written: Uint8Array | undefined;
  /** True while a clean shutdown record this open trusted is on disk. */
  #cleanShutdownOnDisk = false;
  #digestTimer: ReturnType<typeof setTimeout> | undefined;
  #digestCatchUp: Promise<void> | undefined;

  private constructor(
    fs: FileSystem,
    fields: { dir: string; segments: Segment[]; activeFile: FileHandle; logger: Logger },
  ) {
    this.#fs = fs;
    this.dir = fields.dir;
    this.#segments = fields.segments;
    this.#activeFile = fields.activeFile;
    this.#logger = fields.logger;
    this.#retainedBytes = fields.segments.reduce((sum, s) => sum + s.sizeBytes, 0);
  }

  /**
   * Opens the segments of `dir` (created when missing, the new directory entries fsynced, with a
   * first empty segment). Sealed segments are listed and sized from the manifest (or from metadata
   * when it disagrees with the listing), never read; the newest is taken as the clean shutdown
   * record describes it, or else scanned once, its torn tail truncated and fsynced; the append
   * times of its records go to `onRecord` (`openNewestSegment`). Needs read and write access to
   * `dir`, and read access to the directory it is created in.
   */
  static async open(
    fs: FileSystem,
    options: {
      dir: string;
      logger: Logger;
      onRecord: (lsn: number, timestampMs: number) => void;
    },
  ): Promise<{ set: SegmentSet; recovery: RecoveryReport }> {
    const { dir } = options;
    const listed = await listSegments(fs, dir);
    if (listed === undefined) await createDirs(fs, dir);
    const { firstLsns, ignoredFiles } = listed ?? { firstLsns: [], ignoredFiles: [] };
    if (firstLsns.length === 0) {
      (await createSegmentFile(fs, dir, 1)).close();
      // A freshly created `dir` had its entry synced above; an existing empty one may not have.
      if (listed !== undefined) await fs.syncDir(parentDir(dir));
      firstLsns.push(1);
    }
    const { sealed, fromManifest } = await sealedSegments(fs, dir, firstLsns);
    const newest = await openNewestSegment(fs, { ...options, firstLsn: firstLsns.at(-1)! });
    const segments = [...sealed, newest.segment];
    const activeFile = newest.file;
    const set = new SegmentSet(fs, { dir, segments, activeFile, logger: options.logger });
    if (!fromManifest && sealed.length > 0) await set.#writeManifest({ syncDir: true });
    set.#cleanShutdownOnDisk = newest.trustedCleanShutdown;
    set.#scheduleDigestCatchUp();
    const recovery: RecoveryReport = {
      segments: sealed.length + 1,
      oldestLsn: set.oldestLsn(),
      currentLsn: newest.segment.lastLsn,
      truncatedBytes: newest.report.truncatedBytes,
      repairReason: newest.report.reason,
      trustedCleanShutdown: newest.trustedCleanShutdown,
      ignoredFiles,
    };
    _logRecovery(options.logger, dir, recovery);
    return { set, recovery };
  }

  /**
   * The open hashed none of the newest segment's bytes: its digest catches up on them a little
   * after start-up (at the latest when the segment is sealed).
   */
  #scheduleDigestCatchUp(): void {
    this.#digestTimer = setTimeout(() => {
      this.#digestTimer = undefined;
      this.#digestCatchUp = this.active.catchUpDigest(this.#fs).catch((error) => {
        this.#logger.warn("spool.digest_catch_up_failed", { path: this.active.path, error });
      });
    }, DIGEST_CATCH_UP_DELAY_MS);
  }

  /**
   * Removes the clean shutdown record, durably, before the first change to any segment file, so
   * that a crash after it never finds a record describing bytes that changed.
   */
  async #beforeChange(): Promise<void> {
    if (!this.#cleanShutdownOnDisk) return;
    await removeCleanShutdown(this.#fs, this.dir);
    this.#cleanShutdownOnDisk = false;
  }

  /** The segment appends go to. */
  get active(): Segment {
    return this.#segments[this.#segments.length - 1]!;
  }

  /** LSN of the oldest retained record, or the active segment's next LSN when none is. O(1). */
  oldestLsn(): number {
    for (const segment of this.#segments) {
      if (segment.lastLsn >= segment.firstLsn) return segment.firstLsn;
    }
    return this.active.lastLsn + 1;
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

  /** The sealed segments, oldest first (a copy), and the file system to read them through. */
  sealed(): { fs: FileSystem; segments: Segment[]; active: Segment } {
    return { fs: this.#fs, segments: this.#segments.slice(0, -1), active: this.active };
  }

  /** The segments, oldest first. */
  infos(): SegmentInfo[] {
    const last = this.#segments.length - 1;
    return this.#segments.map((s, i) => ({
      firstLsn: s.firstLsn,
      lastLsn: s.lastLsn,
      sizeBytes: s.sizeBytes,
      sealed: i < last,
    }));
  }

  /**
   * Starts a new segment at `nextLsn` when the active one has reached `segmentBytesMax`; the new
   * file's directory entry is durable before it is used.
   */
  async rollIfFull(segmentBytesMax: number, nextLsn: number): Promise<void> {
    if (this.active.sizeBytes < segmentBytesMax) return;
    await this.#beforeChange();
    // Sealed: every byte was fdatasynced by its last group commit, and it never changes. Its
    // sidecar (with its digest) and the manifest share the new segment's directory fsync.
    await this.active.seal(this.#fs);
    await this.#writeSidecar(this.active);
    await this.#writeManifest({ syncDir: false, sealing: true });
    const file = await createSegmentFile(this.#fs, this.dir, nextLsn);
    this.#activeFile.close();
    this.#activeFile = file;
    this.#segments.push(
      new Segment({
        path: joinPath(this.dir, segmentFileName(nextLsn)),
        firstLsn: nextLsn,
        lastLsn: nextLsn - 1,
        sizeBytes: 0,
        index: new SeekIndex(),
        recordCount: 0,
        lastFrameOffset: 0,
        digest: new RunningDigest(),
      }),
    );
  }

  /** Writes `bytes` after the active segment's durable end; returns where they start. */
  async writeAtEnd(bytes: Uint8Array): Promise<number> {
    await this.#beforeChange();
    const offset = this.active.sizeBytes;
    this.#written = bytes;
    await this.#activeFile.writeAt(bytes, offset);
    return offset;
  }

  /**
   * fdatasync of the active segment; with `inline`, on this thread where the file layer can
   * (`wal/inline_sync.ts`). Returns whether it ran inline.
   */
  async syncActive(inline = false): Promise<boolean> {
    const file = this.#activeFile;
    if (!inline || file.syncDataNow === undefined) {
      await file.syncData();
      return false;
    }
    file.syncDataNow();
    return true;
  }

  /** Hashes the active segment's durable bytes noted since the last call. */
  hashNoted(): void {
    this.active.hashNoted();
  }

  /** Cuts the active file back to its durable end (after a failed write). */
  truncateActive(): Promise<void> {
    return this.#activeFile.truncate(this.active.sizeBytes);
  }

  /** Makes synced frames readable: the active segment's index, size and the retained bytes. */
  noteDurable(commit: EncodedGroupCommit, offset: number): void {
    const active = this.active;
    const written = this.#written;
    const bytes = commit.buffer.byteLength;
    assert(written !== undefined && written === commit.buffer, "the bytes written last");
    active.noteWritten(written, offset);
    this.#written = undefined;
    let frameOffset = offset;
    for (let i = 0; i < commit.ends.length; i++) {
      active.noteAppended(commit.firstLsn + i, frameOffset);
      frameOffset = offset + commit.ends[i]!;
    }
    active.sizeBytes = offset + bytes;
    this.#retainedBytes += bytes;
  }

  /**
   * Reads records after `sinceLsn` into `budget`, segment by segment, until the budget is full or
   * `stopAt(lsn)` says the rest is served elsewhere (the in-memory tail). Throws `WalRemovedError`
   * when a segment was pruned under the read, `WalCorruptionError` when one fails verification.
   */
  async readInto(
    sinceLsn: number,
    budget: ReadBudget,
    stopAt: (nextLsn: number) => boolean,
  ): Promise<number> {
    let since = sinceLsn;
    for (const segment of this.#segments.slice()) {
      if (segment.lastLsn <= since) continue;
      if (stopAt(since + 1)) return since;
      let full: boolean;
      try {
        full = await segment.readInto(this.#fs, since, budget);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new WalRemovedError(sinceLsn, this.oldestLsn());
        }
        throw error;
      }
      if (full) return since;
      since = budget.out.length > 0 ? budget.out[budget.out.length - 1]!.lsn : segment.lastLsn;
    }
    return since;
  }

  /** Bytes read ahead for catching-up readers (`read_ahead.ts`). */
  readAheadBytes(): number {
    return this.#readAhead.stats.bytes;
  }

  /**
   * The segments holding records after `lsn`, oldest first (a copy: a prune may remove one
   * meanwhile), the file system to read them through, and the read-ahead: for raw range reads.
   */
  readersAfter(lsn: number): { fs: FileSystem; segments: Segment[]; ahead: ReadAhead } {
    const segments = this.#segments.filter((segment) => segment.lastLsn > lsn);
    return { fs: this.#fs, segments, ahead: this.#readAhead };
  }

  /**
   * Deletes whole sealed segments whose last LSN is ≤ `lsn`, oldest first, keeping at least
   * `retainBytesMin` bytes, then fsyncs the directory. Segments are forgotten before their files
   * go, so no new read starts on one. Returns the last LSN removed (0 when none) and the bytes.
   */
  async prune(
    lsn: number,
    retainBytesMin: number,
  ): Promise<{ removedSegments: number; removedBytes: number; throughLsn: number }> {
    const removable: Segment[] = [];
    let retained = this.#retainedBytes;
    for (const segment of this.#segments.slice(0, -1)) {
      if (segment.lastLsn > lsn || retained - segment.sizeBytes < retainBytesMin) break;
      removable.push(segment);
      retained -= segment.sizeBytes;
    }
    if (removable.length === 0) return { removedSegments: 0, removedBytes: 0, throughLsn: 0 };
    this.#segments.splice(0, removable.length);
    this.#readAhead.drop(removable);
    const removedBytes = this.#retainedBytes - retained;
    this.#retainedBytes = retained;
    // The manifest first: until the directory fsync below, it may list fewer segments than exist
    // (an open then sizes them from metadata), never more.
    await this.#writeManifest({ syncDir: false });
    for (const segment of removable) {
      for (const path of [segment.path, sidecarPath(segment.path)]) {
        try {
          await this.#fs.remove(path);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
    }
    await this.#fs.syncDir(this.dir);
    const throughLsn = removable[removable.length - 1]!.lastLsn;
    return { removedSegments: removable.length, removedBytes, throughLsn };
  }

  /**
   * Where a truncation after `lsn` cuts (`planTruncation`); changes nothing. `lsn` must be below
   * the last record; below the oldest retained LSN minus one is `WalTruncateError`. Needs read
   * access.
   */
  planTruncation(lsn: number): Promise<TruncationPlan> {
    return planTruncation(this.#fs, this.#segments, { lsn, oldestLsn: this.oldestLsn() });
  }

  /**
   * Carries out `plan` on the files (`truncateFiles`, in its crash-safe order) and makes the cut
   * segment the active one, appends going after the fork LSN. Nothing else may use the set
   * meanwhile (no append, read or prune). Needs read and write access to the directory.
   */
  async truncate(plan: TruncationPlan): Promise<void> {
    this.#readAhead.clear();
    await this.#manifestWrites;
    await this.#beforeChange();
    const before = this.#segments.slice(0, plan.keptIndex);
    const { segment, file } = await truncateFiles(this.#fs, this.dir, plan, before);
    this.#activeFile.close();
    this.#activeFile = file;
    this.#segments = [...before, segment];
    this.#retainedBytes = this.#segments.reduce((sum, s) => sum + s.sizeBytes, 0);
    this.#written = undefined;
  }

  /** Writes a sealed segment's sidecar; a failure is logged (the first read rebuilds it). */
  async #writeSidecar(sealed: Segment): Promise<void> {
    try {
      await sealed.writeSidecar(this.#fs, { syncDir: false });
    } catch (error) {
      this.#logger.warn("spool.sidecar_write_failed", { path: sealed.path, error });
    }
  }

  /**
   * Writes the manifest of the sealed segments (with `sealing`, the active one too: it is being
   * sealed). A failure is logged: an open then sizes the segments from metadata.
   */
  #writeManifest(options: { syncDir: boolean; sealing?: boolean }): Promise<void> {
    this.#manifestWrites = this.#manifestWrites.then(async () => {
      const sealed = options.sealing ? this.#segments : this.#segments.slice(0, -1);
      const entries = sealed.map((s) => ({ firstLsn: s.firstLsn, sizeBytes: s.sizeBytes }));
      try {
        await writeManifest(this.#fs, this.dir, entries, { syncDir: options.syncDir });
      } catch (error) {
        this.#logger.warn("spool.manifest_write_failed", { dir: this.dir, error });
      }
    });
    return this.#manifestWrites;
  }

  /** Writes the active segment's clean shutdown record, or removes a record a read proved wrong. */
  async #leaveCleanShutdown(
    clean: { samples: CleanShutdown["samples"] } | undefined,
  ): Promise<void> {
    const active = this.active;
    // Known damage: no record may skip the repair scan at the next open (SPEC.md section 3).
    if (active.damaged) return await this.#beforeChange();
    if (clean === undefined) return;
    await writeCleanShutdown(this.#fs, this.dir, {
      firstLsn: active.firstLsn,
      lastLsn: active.lastLsn,
      sizeBytes: active.sizeBytes,
      lastFrameOffset: active.lastFrameOffset ?? 0,
      offsets: active.index?.offsets ?? [],
      samples: clean.samples,
    });
  }

  /**
   * Ends a digest catch-up and closes the active file. With `clean` (every append durable and
   * none to follow), first writes the clean shutdown record of the active segment, unless a read
   * found it damaged (the next open then scans and repairs it); a failure is logged: the next
   * open scans. Needs write access for the record.
   */
  async close(clean?: { samples: CleanShutdown["samples"] }): Promise<void> {
    this.#readAhead.clear();
    clearTimeout(this.#digestTimer);
    await this.active.stopDigest();
    await this.#digestCatchUp;
    await this.#manifestWrites;
    await this.#leaveCleanShutdown(clean).catch((error) => {
      this.#logger.warn("spool.clean_shutdown_write_failed", { dir: this.dir, error });
    });
    this.#activeFile.close();
  }
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
