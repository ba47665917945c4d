/**
 * One spool segment file (SPEC.md section 3): a plain sequence of frames whose first LSN is the
 * file name. Scanning with repair (newest segment only), the sparse seek index, and bounded range
 * reads that stop as soon as their budget is spent.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { createHash } from "node:crypto";
import { WalCorruptionError } from "../core/errors.ts";
import { type FileHandle, type FileSystem, writeFileAtomic } from "../core/files.ts";
import {
  type ReadBudget,
  type ScanEnd,
  scanFrameHeads,
  scanFrames,
  takeIntoBudget,
} from "./frame_scan.ts";
import { encodeSidecar, readSidecar, sidecarPath } from "./seek_sidecar.ts";
import { SeekIndex } from "./seek_index.ts";
import { RunningDigest } from "./segment_digest.ts";

export { type ReadBudget, SeekIndex, takeIntoBudget };

/** Digits of the first LSN in a segment file name. */
const _SEGMENT_NAME_DIGITS = 20;
const _SEGMENT_NAME_PATTERN = /^(\d{20})\.wal$/;

/** File name of the segment whose first record is `firstLsn`: 20 decimal digits + ".wal". */
export function segmentFileName(firstLsn: number): string {
  assert(Number.isSafeInteger(firstLsn) && firstLsn >= 1);
  return `${String(firstLsn).padStart(_SEGMENT_NAME_DIGITS, "0")}.wal`;
}

/** The first LSN a segment file name carries, or undefined for any other name. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = _SEGMENT_NAME_PATTERN.exec(name);
  if (!match) return undefined;
  const lsn = Number(match[1]);
  return Number.isSafeInteger(lsn) && lsn >= 1 ? lsn : undefined;
}

/** What repairing the newest segment found. */
export interface RepairReport {
  truncatedBytes: number;
  reason: string | undefined;
}

/**
 * One segment file. `sizeBytes` counts only durable bytes: readers never read past it, so the
 * appender may be writing beyond it while they read.
 */
export class Segment {
  readonly path: string;
  readonly firstLsn: number;
  /** LSN of the last record; `firstLsn - 1` while empty. */
  lastLsn: number;
  sizeBytes: number;
  /** Records in the segment, when known (always for the active segment). */
  recordCount: number | undefined;
  /** Where the last record's frame starts, when known (the active segment's; 0 while empty). */
  lastFrameOffset: number | undefined;
  /**
   * SHA-256 (hex) of the sealed segment's bytes: computed as they were written and set when it is
   * sealed, else read from its sidecar or computed by the verifying scan that rebuilds one.
   */
  sha256: string | undefined;
  /** The active segment's running SHA-256 over its durable bytes (`segment_digest.ts`). */
  #digest: RunningDigest | undefined;
  #index: SeekIndex | undefined;
  #indexBuilding: Promise<SeekIndex> | undefined;
  /** True when the index came from the sidecar: no scan has verified the whole file yet. */
  #fromSidecar = false;
  /**
   * Damage a read found in a segment whose index came from its sidecar: as if the verifying scan
   * that built the index had failed, every later use of the segment (a raw read too) fails.
   */
  #damage: WalCorruptionError | undefined;
  /** Set once a truncation cuts or removes the segment (`retire`): this object is done. */
  #retired = false;

  constructor(
    fields: {
      path: string;
      firstLsn: number;
      lastLsn: number;
      sizeBytes: number;
      index?: SeekIndex;
      recordCount?: number;
      lastFrameOffset?: number;
      /** The running digest of an active segment (its durable bytes hashed so far). */
      digest?: RunningDigest;
    },
  ) {
    assert(fields.lastLsn >= fields.firstLsn - 1);
    this.path = fields.path;
    this.firstLsn = fields.firstLsn;
    this.lastLsn = fields.lastLsn;
    this.sizeBytes = fields.sizeBytes;
    this.#index = fields.index;
    this.recordCount = fields.recordCount;
    this.lastFrameOffset = fields.lastFrameOffset;
    this.#digest = fields.digest;
  }

  /** Adds bytes that were just made durable at the end of the active segment to its digest. */
  noteWritten(bytes: Uint8Array, offset: number): void {
    assert(this.#digest !== undefined, "only the active segment takes writes");
    this.#digest.noteWritten(bytes, offset);
  }

  /** Hashes the durable bytes noted since the last call (`RunningDigest.hashNoted`). */
  hashNoted(): void {
    this.#digest?.hashNoted();
  }

  /**
   * Reads the durable bytes the digest has not seen yet (a reopened segment: opening hashes
   * nothing), so that sealing need not. Needs read access to the segment.
   */
  catchUpDigest(fs: FileSystem): Promise<void> {
    if (this.#retired || this.#digest === undefined) return Promise.resolve();
    return this.#digest.catchUp(fs, this.path, () => this.sizeBytes);
  }

  /** Ends a digest catch-up under way (the spool is closing). */
  async stopDigest(): Promise<void> {
    await this.#digest?.stop();
  }

  /**
   * Seals the active segment: its digest is final from now on (it never changes again). A digest
   * still behind reads the rest first. Sealing again (after a failed roll) changes nothing.
   */
  async seal(fs: FileSystem): Promise<void> {
    if (this.sha256 !== undefined && this.#digest === undefined) return;
    assert(this.#digest !== undefined, "only the active segment is sealed");
    await this.catchUpDigest(fs);
    this.sha256 = this.#digest.digest(this.sizeBytes);
    this.#digest = undefined;
  }

  /**
   * The newest segment as a clean shutdown record describes it (`clean_shutdown.ts`; the caller
   * checked the record against the file): its index from the record's checkpoints, no scan. Like a
   * sidecar's, that index is not taken on trust: reads check each frame they read, and damage they
   * find marks the segment damaged. Its digest catches up from the file later.
   */
  static fromCleanShutdown(
    fields: {
      path: string;
      firstLsn: number;
      lastLsn: number;
      sizeBytes: number;
      lastFrameOffset: number;
    },
    offsets: number[],
  ): Segment {
    const index = new SeekIndex({ firstLsn: fields.firstLsn, offsets });
    const recordCount = fields.lastLsn - fields.firstLsn + 1;
    const segment = new Segment({ ...fields, index, recordCount, digest: new RunningDigest() });
    segment.#fromSidecar = true;
    return segment;
  }

  /** The seek index if it was built (always for the active segment). */
  get index(): SeekIndex | undefined {
    return this.#index;
  }

  /** Records that the frame `lsn` was appended at `offset` (the appender's bookkeeping). */
  noteAppended(lsn: number, offset: number): void {
    assert(this.#index !== undefined && this.recordCount !== undefined);
    assert(lsn === this.lastLsn + 1, "frames are appended in LSN order");
    this.#index.note(this.recordCount, lsn, offset);
    this.recordCount += 1;
    this.lastLsn = lsn;
    this.lastFrameOffset = offset;
  }

  /**
   * Scans the newest segment through `file` (opened for writing), checking every frame's CRC, and
   * truncates it, then fsyncs, at the first frame that is torn or corrupt (a crash mid-write
   * leaves exactly that). A valid frame with the wrong LSN is not a torn tail and throws. Each
   * valid frame's LSN and time go to `onRecord` (no frame is built: `scanFrameHeads`). Its
   * SHA-256 is left to catch up later. Needs read and write access to the segment.
   */
  static async repairNewest(
    file: FileHandle,
    fields: { path: string; firstLsn: number },
    onRecord: (lsn: number, timestampMs: number) => void,
  ): Promise<{ segment: Segment; report: RepairReport }> {
    const size = await file.size();
    const index = new SeekIndex();
    let count = 0;
    let lastFrameOffset = 0;
    let lsnError: string | undefined;
    // No SHA-256 here: the digest catches up later (`segment_digest.ts`), off the start-up path.
    const range = { start: 0, end: size, reuse: true };
    const end = await scanFrameHeads(file, range, (frame, offset) => {
      const expected = fields.firstLsn + count;
      if (frame.lsn !== expected) {
        lsnError = `expected LSN ${expected} at offset ${offset}, found ${frame.lsn}`;
        return false;
      }
      index.note(count, frame.lsn, offset);
      lastFrameOffset = offset;
      count += 1;
      onRecord(frame.lsn, frame.timestampMs);
      return true;
    });
    if (lsnError !== undefined) {
      throw new WalCorruptionError(`segment ${fields.path}: ${lsnError}`, { path: fields.path });
    }
    let report: RepairReport = { truncatedBytes: 0, reason: undefined };
    if (end.kind === "torn" || end.kind === "corrupt") {
      await file.truncate(end.offset);
      await file.syncData();
      report = { truncatedBytes: size - end.offset, reason: end.reason };
    }
    const segment = new Segment({
      path: fields.path,
      firstLsn: fields.firstLsn,
      lastLsn: fields.firstLsn + count - 1,
      sizeBytes: end.offset,
      index,
      recordCount: count,
      lastFrameOffset,
      digest: new RunningDigest(),
    });
    return { segment, report };
  }

  /**
   * The seek index of a sealed segment, loaded on first use from its sidecar (`seek_sidecar.ts`)
   * when that checks out against this segment, else built by one verifying scan (every CRC, LSN
   * continuity from the file name, and the last LSN the next segment implies) and then written to
   * a new sidecar. Frames read through a loaded index are checked as they are read (CRC, and the
   * LSN each checkpoint promises). Needs read access, and write access for the sidecar.
   */
  ensureIndex(fs: FileSystem): Promise<SeekIndex> {
    if (this.#retired) return Promise.reject(this.#retiredError());
    if (this.#damage) return Promise.reject(this.#damage);
    if (this.#index) return Promise.resolve(this.#index);
    this.#indexBuilding ??= this.#loadOrBuildIndex(fs).finally(() => {
      this.#indexBuilding = undefined;
    });
    return this.#indexBuilding;
  }

  /**
   * The SHA-256 (hex) of a sealed segment: known since it was sealed, else loaded with its index
   * (`ensureIndex`: from the sidecar, or by the verifying scan that rebuilds it), never computed
   * again once known. Needs read access, and write access for the sidecar.
   */
  async ensureDigest(fs: FileSystem): Promise<string> {
    if (this.#retired) throw this.#retiredError();
    if (this.sha256 !== undefined && this.#damage === undefined) return this.sha256;
    await this.ensureIndex(fs);
    assert(this.sha256 !== undefined, "a sealed segment's digest comes with its index");
    return this.sha256;
  }

  async #loadOrBuildIndex(fs: FileSystem): Promise<SeekIndex> {
    const loaded = await this.#loadSidecar(fs);
    if (loaded) {
      this.recordCount = this.lastLsn - this.firstLsn + 1;
      this.#fromSidecar = true;
      this.#index = loaded;
      return loaded;
    }
    const built = await this.#buildIndex(fs);
    // Best effort: a sidecar that is not written is rebuilt by the next start's first read.
    await this.writeSidecar(fs).catch(() => undefined);
    return built;
  }

  /** The index from the sidecar, or undefined when it is missing or does not check out. */
  async #loadSidecar(fs: FileSystem): Promise<SeekIndex | undefined> {
    const decoded = await readSidecar(fs, this);
    if (decoded === undefined) return undefined;
    this.sha256 = decoded.sha256;
    return new SeekIndex({ firstLsn: this.firstLsn, offsets: decoded.offsets });
  }

  /**
   * Writes this segment's index to its sidecar (`writeFileAtomic`; `syncDir: false` when the
   * caller fsyncs the directory right after). Only for a sealed segment whose index is complete.
   * Needs read and write access to its directory.
   */
  async writeSidecar(fs: FileSystem, options: { syncDir?: boolean } = {}): Promise<void> {
    if (this.#retired) throw this.#retiredError();
    const index = this.#index;
    assert(index !== undefined && this.recordCount === this.lastLsn - this.firstLsn + 1);
    assert(this.sha256 !== undefined, "a sealed segment's digest is known with its index");
    const bytes = encodeSidecar({
      firstLsn: this.firstLsn,
      lastLsn: this.lastLsn,
      sizeBytes: this.sizeBytes,
      sha256: this.sha256,
      offsets: index.offsets,
    });
    await writeFileAtomic(fs, sidecarPath(this.path), bytes, options);
  }

  async #buildIndex(fs: FileSystem): Promise<SeekIndex> {
    const file = await fs.open(this.path);
    try {
      const index = new SeekIndex();
      let count = 0;
      let lsnError: string | undefined;
      const digest = createHash("sha256");
      const onBytes = (bytes: Uint8Array) => digest.update(bytes);
      const range = { start: 0, end: this.sizeBytes, reuse: true, onBytes };
      const end = await scanFrameHeads(file, range, (frame, offset) => {
        if (frame.lsn !== this.firstLsn + count) {
          lsnError = `expected LSN ${
            this.firstLsn + count
          } at offset ${offset}, found ${frame.lsn}`;
          return false;
        }
        index.note(count, frame.lsn, offset);
        count += 1;
        return true;
      });
      this.#throwIfDamaged(end, lsnError);
      if (this.firstLsn + count - 1 !== this.lastLsn) {
        throw this.#corruption(
          `ends at LSN ${this.firstLsn + count - 1}, expected ${this.lastLsn}`,
        );
      }
      this.recordCount = count;
      this.sha256 = digest.digest("hex");
      this.#index = index;
      return index;
    } finally {
      file.close();
    }
  }

  /**
   * Marks the segment as cut or removed by a truncation (`truncate.ts`): from now on this object
   * builds no index, writes no sidecar and names no digest (each fails with `NotFound`, as for a
   * pruned segment), so a listing racing the truncation skips it rather than describing bytes that
   * are about to change. Resolves once an index build already under way (and the sidecar it
   * writes) has ended, so no sidecar of it is written after the caller deletes them.
   */
  async retire(): Promise<void> {
    this.#retired = true;
    await this.#digest?.stop();
    await this.#indexBuilding?.catch(() => undefined);
  }

  #retiredError(): Deno.errors.NotFound {
    return new Deno.errors.NotFound(`segment ${this.path} was truncated`);
  }

  /**
   * The byte offset at which the record `lsn` starts (`sizeBytes` for `lastLsn + 1`), found from
   * the seek-index checkpoint at or before it, every frame on the way checked (CRC and LSN), so a
   * cut there keeps whole, valid frames only. Needs read access (and write access for a sidecar).
   */
  async offsetOf(fs: FileSystem, lsn: number): Promise<number> {
    assert(lsn >= this.firstLsn && lsn <= this.lastLsn + 1, "the record is in this segment");
    if (lsn === this.lastLsn + 1) return this.sizeBytes;
    const index = await this.ensureIndex(fs);
    let expected = index.floorLsn(lsn) ?? this.firstLsn;
    let found: number | undefined;
    let lsnError: string | undefined;
    const file = await fs.open(this.path);
    try {
      const range = { start: index.floorOffset(lsn), end: this.sizeBytes, reuse: true };
      const end = await scanFrameHeads(file, range, (frame, offset) => {
        if (frame.lsn !== expected) {
          lsnError = `expected LSN ${expected} at offset ${offset}, found ${frame.lsn}`;
          return false;
        }
        if (frame.lsn === lsn) found = offset;
        expected += 1;
        return found === undefined;
      });
      if (found !== undefined) return found;
      this.#throwIfDamaged(end, lsnError);
    } finally {
      file.close();
    }
    throw this.#corruption(`ends before LSN ${lsn}`);
  }

  #corruption(message: string, offset?: number): WalCorruptionError {
    const error = new WalCorruptionError(`segment ${this.path}: ${message}`, {
      path: this.path,
      offset,
    });
    if (this.#fromSidecar) this.#damage = error;
    return error;
  }

  /**
   * False while the index came from the sidecar and no scan has checked every frame: a reader
   * that leaves CRCs to its receiver (raw range reads) checks the frames it serves itself then.
   */
  get verified(): boolean {
    return !this.#fromSidecar;
  }

  /** True once a read found damage in a segment whose index was not built by a scan. */
  get damaged(): boolean {
    return this.#damage !== undefined;
  }

  #throwIfDamaged(end: ScanEnd, lsnError: string | undefined): void {
    if (lsnError !== undefined) throw this.#corruption(lsnError);
    if (end.kind === "torn" || end.kind === "corrupt") {
      throw this.#corruption(`${end.reason} at offset ${end.offset}`, end.offset);
    }
  }

  /**
   * Appends to `budget.out` the frames with LSN > `sinceLsn`, starting at the seek-index checkpoint
   * at or before `sinceLsn + 1`, until the budget is spent or the segment's durable bytes end.
   * Returns true when the budget is spent. Needs read access to the segment.
   */
  async readInto(fs: FileSystem, sinceLsn: number, budget: ReadBudget): Promise<boolean> {
    const index = await this.ensureIndex(fs);
    const start = index.floorOffset(sinceLsn + 1);
    const size = this.sizeBytes;
    if (start >= size) return false;
    const file = await fs.open(this.path);
    let full = false;
    // The frame at a checkpoint must carry the checkpoint's LSN (a sidecar is not taken on trust).
    let expected = index.floorLsn(sinceLsn + 1) ?? this.firstLsn;
    let lsnError: string | undefined;
    try {
      const end = await scanFrames(file, { start, end: size }, (frame, offset) => {
        if (frame.lsn !== expected) {
          lsnError = `expected LSN ${expected} at offset ${offset}, found ${frame.lsn}`;
          return false;
        }
        expected = frame.lsn + 1;
        if (frame.lsn <= sinceLsn) return true;
        full = !takeIntoBudget(budget, frame);
        return !full;
      });
      this.#throwIfDamaged(end, lsnError);
    } finally {
      file.close();
    }
    return full || budget.out.length >= budget.maxCount;
  }
}
