/**
 * The segment files of one timeline directory (SPEC.md section 3), oldest first: opening them
 * (sealed ones listed and sized, never read; the newest repaired), the active file writes go to,
 * rolling to a new segment, range reads across segments, and deleting whole sealed segments.
 * What is durable when is the spool's business (`spool.ts`); this module only does the file work.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { WalCorruptionError, WalRemovedError } from "../core/errors.ts";
import { type FileHandle, type FileSystem, joinPath, parentDir } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import type { DecodedFrame } from "./frame.ts";
import {
  parseSegmentFileName,
  type ReadBudget,
  SeekIndex,
  Segment,
  segmentFileName,
} from "./segment.ts";
import { sidecarPath } from "./seek_sidecar.ts";
import { readManifestSizes, writeManifest } from "./segment_manifest.ts";
import { planTruncation, truncateFiles, type TruncationPlan } from "./truncate.ts";

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

/** The segments of one timeline directory and the open file of the newest (active) one. */
export class SegmentSet {
  readonly dir: string;
  #fs: FileSystem;
  #segments: Segment[];
  #activeFile: FileHandle;
  #retainedBytes: number;
  #logger: Logger;
  /** Manifest writes, one at a time (a roll and a prune may both write it). */
  #manifestWrites: Promise<void> = Promise.resolve();
  /** The bytes of the last `writeAtEnd`, hashed into the active segment once they are durable. */
  #written: Uint8Array | undefined;

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
   * when it disagrees with the listing), never read; the newest is scanned once, its torn tail
   * truncated and fsynced, and each of its records' LSN and time handed to `onRecord`. Needs read
   * and write access to `dir`, and read access to the directory it is created in.
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
    const listed = await _listSegments(fs, dir);
    if (listed === undefined) await _createDirs(fs, dir);
    const { firstLsns, ignoredFiles } = listed ?? { firstLsns: [], ignoredFiles: [] };
    if (firstLsns.length === 0) {
      (await _createSegmentFile(fs, dir, 1)).close();
      // A freshly created `dir` had its entry synced above; an existing empty one may not have.
      if (listed !== undefined) await fs.syncDir(parentDir(dir));
      firstLsns.push(1);
    }
    const { sealed, fromManifest } = await _sealedSegments(fs, dir, firstLsns);
    const newestFirstLsn = firstLsns[firstLsns.length - 1]!;
    const newestPath = joinPath(dir, segmentFileName(newestFirstLsn));
    const activeFile = await fs.open(newestPath, { write: true });
    let repaired;
    try {
      const newest = { path: newestPath, firstLsn: newestFirstLsn };
      repaired = await Segment.repairNewest(activeFile, newest, options.onRecord);
    } catch (error) {
      activeFile.close();
      throw error;
    }
    const segments = [...sealed, repaired.segment];
    const set = new SegmentSet(fs, { dir, segments, activeFile, logger: options.logger });
    if (!fromManifest && sealed.length > 0) await set.#writeManifest({ syncDir: true });
    const recovery: RecoveryReport = {
      segments: sealed.length + 1,
      oldestLsn: set.oldestLsn(),
      currentLsn: repaired.segment.lastLsn,
      truncatedBytes: repaired.report.truncatedBytes,
      repairReason: repaired.report.reason,
      ignoredFiles,
    };
    _logRecovery(options.logger, dir, recovery);
    return { set, recovery };
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
    // Sealed: every byte was fdatasynced by its last group commit, and it never changes. Its
    // sidecar (with its digest) and the manifest share the new segment's directory fsync.
    this.active.seal();
    await this.#writeSidecar(this.active);
    await this.#writeManifest({ syncDir: false, sealing: true });
    const file = await _createSegmentFile(this.#fs, this.dir, nextLsn);
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
        running: createHash("sha256"),
      }),
    );
  }

  /** Writes `bytes` after the active segment's durable end; returns where they start. */
  async writeAtEnd(bytes: Uint8Array): Promise<number> {
    const offset = this.active.sizeBytes;
    this.#written = bytes;
    await this.#activeFile.writeAt(bytes, offset);
    return offset;
  }

  /** fdatasync of the active segment. */
  syncActive(): Promise<void> {
    return this.#activeFile.syncData();
  }

  /** Cuts the active file back to its durable end (after a failed write). */
  truncateActive(): Promise<void> {
    return this.#activeFile.truncate(this.active.sizeBytes);
  }

  /** Makes synced frames readable: the active segment's index, size and the retained bytes. */
  noteDurable(frames: readonly DecodedFrame[], offset: number, bytes: number): void {
    const active = this.active;
    const written = this.#written;
    assert(written !== undefined && written.byteLength === bytes, "the bytes written last");
    active.noteWritten(written);
    this.#written = undefined;
    let frameOffset = offset;
    for (const frame of frames) {
      active.noteAppended(frame, frameOffset);
      frameOffset += frame.byteLength;
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

  /**
   * The segments holding records after `lsn`, oldest first (a copy: a prune may remove one
   * meanwhile), and the file system to read them through: for raw range reads.
   */
  readersAfter(lsn: number): { fs: FileSystem; segments: Segment[] } {
    return { fs: this.#fs, segments: this.#segments.filter((segment) => segment.lastLsn > lsn) };
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
    await this.#manifestWrites;
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

  /** Closes the active file. */
  close(): Promise<void> {
    this.#activeFile.close();
    return Promise.resolve();
  }
}

/** Segment first LSNs (sorted) and other names in `dir`, or undefined when `dir` is missing. */
async function _listSegments(
  fs: FileSystem,
  dir: string,
): Promise<{ firstLsns: number[]; ignoredFiles: string[] } | undefined> {
  const names = await _readDirIfExists(fs, dir);
  if (names === undefined) return undefined;
  const firstLsns: number[] = [];
  const ignoredFiles: string[] = [];
  for (const name of names) {
    const lsn = parseSegmentFileName(name);
    if (lsn !== undefined) firstLsns.push(lsn);
    else if (!_METADATA_FILE_PATTERN.test(name)) ignoredFiles.push(name);
  }
  firstLsns.sort((a, b) => a - b);
  return { firstLsns, ignoredFiles };
}

async function _readDirIfExists(fs: FileSystem, dir: string): Promise<string[] | undefined> {
  try {
    return await fs.readDir(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Creates the missing `dir` and its missing parents, then fsyncs the parent of each directory it
 * created (the data dir for `wal/`, `wal/` for the timeline), so their entries survive a power cut
 * before any segment is written below them.
 */
async function _createDirs(fs: FileSystem, dir: string): Promise<void> {
  const created = [dir];
  let parent = parentDir(dir);
  // parentDir("/") is "/": the walk ends at the root at the latest.
  while (parent !== created[created.length - 1] && !(await _readDirIfExists(fs, parent))) {
    created.push(parent);
    parent = parentDir(parent);
  }
  await fs.mkdirp(dir);
  for (const path of created.reverse()) await fs.syncDir(parentDir(path));
}

/**
 * Sidecars, the manifest (`SEGMENT_MANIFEST_FILE_NAME`) and their temp files (a crash may leave
 * one): ferry's own files, not foreign ones.
 */
const _METADATA_FILE_PATTERN = /^(\d{20}\.idx|segments\.manifest)(\.tmp)?$/;

/**
 * The sealed segments, sized by the manifest when it lists exactly the listing's sealed segments,
 * else by file metadata (one stat each). Never read.
 */
async function _sealedSegments(
  fs: FileSystem,
  dir: string,
  firstLsns: readonly number[],
): Promise<{ sealed: Segment[]; fromManifest: boolean }> {
  const sealedLsns = firstLsns.slice(0, -1);
  let sizes = sealedLsns.length === 0 ? [] : await readManifestSizes(fs, dir, sealedLsns);
  const fromManifest = sizes !== undefined;
  if (sizes === undefined) {
    sizes = [];
    for (const lsn of sealedLsns) sizes.push(await fs.sizeOf(joinPath(dir, segmentFileName(lsn))));
  }
  const sealed = sealedLsns.map((firstLsn, i) =>
    new Segment({
      path: joinPath(dir, segmentFileName(firstLsn)),
      firstLsn,
      lastLsn: firstLsns[i + 1]! - 1,
      sizeBytes: sizes[i]!,
    })
  );
  return { sealed, fromManifest };
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
