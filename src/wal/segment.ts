/**
 * One spool segment file (SPEC.md section 3): a plain sequence of frames whose first LSN is the
 * file name. Scanning with repair (newest segment only), the sparse seek index, and bounded range
 * reads that stop as soon as their budget is spent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash, type Hash } from "node:crypto";
import { WalCorruptionError } from "../core/errors.ts";
import {
  type FileHandle,
  type FileSystem,
  readFileIfExists,
  writeFileAtomic,
} from "../core/files.ts";
import {
  READ_CHUNK_BYTES,
  SEEK_INDEX_INTERVAL_RECORDS,
  SEEK_SIDECAR_BYTES_MAX,
} from "../core/limits.ts";
import { type DecodedFrame, decodeFrame } from "./frame.ts";
import { decodeSidecar, encodeSidecar, sidecarPath } from "./seek_sidecar.ts";
import { SeekIndex } from "./seek_index.ts";

export { SeekIndex };

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

/** Why a scan stopped. */
type _ScanEnd =
  | { kind: "end"; offset: number }
  | { kind: "stopped"; offset: number }
  | { kind: "torn"; offset: number; reason: string }
  | { kind: "corrupt"; offset: number; reason: string };

/** Visits each frame; returns false to stop the scan. */
type _Visit = (frame: DecodedFrame, offset: number) => boolean;

/**
 * Decodes frames from `start` to `end` of `file`, reading `READ_CHUNK_BYTES` at a time (more when
 * a single frame is larger). Frames handed to `visit` are views into the chunk buffers; with
 * `reuse`, one buffer serves every read (a scan that keeps no frame: repair, index builds), which
 * spares allocating and zeroing a chunk per read. `onBytes` is handed the bytes of every frame
 * the scan went past, in order (a digest of exactly the frames kept).
 */
async function _scanFrames(
  file: FileHandle,
  range: { start: number; end: number; reuse?: boolean; onBytes?: (bytes: Uint8Array) => void },
  visit: _Visit,
): Promise<_ScanEnd> {
  const passed = (bytes: Uint8Array, upTo: number) => range.onBytes?.(bytes.subarray(0, upTo));
  let position = range.start;
  let chunkBytes = READ_CHUNK_BYTES;
  let buffer = new Uint8Array(0);
  while (position < range.end) {
    const wanted = Math.min(chunkBytes, range.end - position);
    if (!range.reuse || buffer.byteLength < wanted) buffer = new Uint8Array(wanted);
    const chunk = buffer.subarray(0, wanted);
    const got = await file.readAt(chunk, position);
    const bytes = chunk.subarray(0, got);
    const atEnd = position + got >= range.end || got < wanted;
    let offset = 0;
    while (offset < bytes.byteLength) {
      const result = decodeFrame(bytes, offset);
      if (result.status === "corrupt") {
        passed(bytes, offset);
        return { kind: "corrupt", offset: position + offset, reason: result.reason };
      }
      if (result.status === "incomplete") {
        if (atEnd) {
          passed(bytes, offset);
          return { kind: "torn", offset: position + offset, reason: "incomplete frame" };
        }
        if (offset === 0) chunkBytes = got + result.bytesNeeded;
        break;
      }
      if (!visit(result.frame, position + offset)) {
        passed(bytes, offset);
        return { kind: "stopped", offset: position + offset };
      }
      offset += result.frame.byteLength;
    }
    passed(bytes, offset);
    if (got === 0) return { kind: "torn", offset: position, reason: "file shorter than expected" };
    position += offset;
    if (offset > 0) chunkBytes = READ_CHUNK_BYTES;
  }
  return { kind: "end", offset: position };
}

/** Budget and output of a range read that may span segments. */
export interface ReadBudget {
  maxCount: number;
  maxBytes: number;
  usedBytes: number;
  out: DecodedFrame[];
}

/**
 * Adds `frame` to the budget's output unless the budget is spent; returns false when it is. The
 * first frame is always taken, so a frame larger than `maxBytes` cannot stall a reader.
 */
export function takeIntoBudget(budget: ReadBudget, frame: DecodedFrame): boolean {
  if (budget.out.length >= budget.maxCount) return false;
  if (budget.out.length > 0 && budget.usedBytes + frame.byteLength > budget.maxBytes) return false;
  budget.out.push(frame);
  budget.usedBytes += frame.byteLength;
  return true;
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
  /**
   * SHA-256 (hex) of the sealed segment's bytes: computed as they were written and set when it is
   * sealed, else read from its sidecar or computed by the verifying scan that rebuilds one.
   */
  sha256: string | undefined;
  /** The active segment's running SHA-256 over its durable bytes. */
  #running: Hash | undefined;
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
      /** The running digest of an active segment (its durable bytes hashed so far). */
      running?: Hash;
    },
  ) {
    assert(fields.lastLsn >= fields.firstLsn - 1);
    this.path = fields.path;
    this.firstLsn = fields.firstLsn;
    this.lastLsn = fields.lastLsn;
    this.sizeBytes = fields.sizeBytes;
    this.#index = fields.index;
    this.recordCount = fields.recordCount;
    this.#running = fields.running;
  }

  /** Adds bytes that were just made durable at the end of the active segment to its digest. */
  noteWritten(bytes: Uint8Array): void {
    assert(this.#running !== undefined, "only the active segment takes writes");
    this.#running.update(bytes);
  }

  /** Seals the active segment: its digest is final from now on (it never changes again). */
  seal(): void {
    assert(this.#running !== undefined, "only the active segment is sealed");
    this.sha256 = this.#running.digest("hex");
    this.#running = undefined;
  }

  /** The seek index if it was built (always for the active segment). */
  get index(): SeekIndex | undefined {
    return this.#index;
  }

  /** Records that a frame was appended at `offset` (the appender's bookkeeping). */
  noteAppended(frame: DecodedFrame, offset: number): void {
    assert(this.#index !== undefined && this.recordCount !== undefined);
    assert.equal(frame.lsn, this.lastLsn + 1, "frames are appended in LSN order");
    this.#index.note(this.recordCount, frame.lsn, offset);
    this.recordCount += 1;
    this.lastLsn = frame.lsn;
  }

  /**
   * Scans the newest segment through `file` (opened for writing), checking every frame's CRC, and
   * truncates it, then fsyncs, at the first frame that is torn or corrupt (a crash mid-write
   * leaves exactly that). A valid frame with the wrong LSN is not a torn tail and throws. Each
   * valid frame's LSN and time go to `onRecord` (no frame is kept: one buffer serves the scan).
   * Needs read and write access to the segment.
   */
  static async repairNewest(
    file: FileHandle,
    fields: { path: string; firstLsn: number },
    onRecord: (lsn: number, timestampMs: number) => void,
  ): Promise<{ segment: Segment; report: RepairReport }> {
    const size = await file.size();
    const index = new SeekIndex();
    let count = 0;
    let lsnError: string | undefined;
    const running = createHash("sha256");
    const range = {
      start: 0,
      end: size,
      reuse: true,
      onBytes: (b: Uint8Array) => running.update(b),
    };
    const end = await _scanFrames(file, range, (frame, offset) => {
      const expected = fields.firstLsn + count;
      if (frame.lsn !== expected) {
        lsnError = `expected LSN ${expected} at offset ${offset}, found ${frame.lsn}`;
        return false;
      }
      index.note(count, frame.lsn, offset);
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
      running,
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
    const bytes = await readFileIfExists(fs, sidecarPath(this.path), SEEK_SIDECAR_BYTES_MAX);
    if (bytes === undefined) return undefined;
    const decoded = decodeSidecar(bytes, this);
    if ("reason" in decoded) return undefined;
    this.sha256 = decoded.sha256;
    const index = new SeekIndex();
    decoded.offsets.forEach((offset, i) => {
      index.note(
        i * SEEK_INDEX_INTERVAL_RECORDS,
        this.firstLsn + i * SEEK_INDEX_INTERVAL_RECORDS,
        offset,
      );
    });
    return index;
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
      const end = await _scanFrames(file, range, (frame, offset) => {
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
      const end = await _scanFrames(file, range, (frame, offset) => {
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

  #throwIfDamaged(end: _ScanEnd, lsnError: string | undefined): void {
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
      const end = await _scanFrames(file, { start, end: size }, (frame, offset) => {
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
