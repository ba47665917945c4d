/**
 * Raw range reads (SPEC.md 9.3, ARCHITECTURE.md "A pull, end to end"): the records after an LSN as
 * the bytes stored in a segment file, found through the seek index and read with one read of the
 * byte range that covers them. Only frame headers are walked (LSN and length, to find the first
 * and last frame within the budget); payloads are not decoded and CRCs are not computed here: the
 * receiver checks every CRC (`decodeFrameRun`). Headers are still checked (magic, version, length,
 * LSN continuity), so a damaged header is reported as corruption like any other read.
 *
 * @module
 */

import { WalCorruptionError } from "../core/errors.ts";
import type { FileHandle, FileSystem } from "../core/files.ts";
import { RANGE_READ_BYTES_MAX, RANGE_READ_BYTES_MIN, READ_CHUNK_BYTES } from "../core/limits.ts";
import { frameHeaderAt, frameV3LengthAt, frameV3LsnAt } from "./frame.ts";
import type { ReadAhead } from "./read_ahead.ts";
import type { Segment } from "./segment.ts";

/** Records as stored: a pull's raw-frame body, in LSN order, in as few views as possible. */
export interface RawFrames {
  /** The frames byte for byte as stored; adjacent frames of one buffer share one view. */
  chunks: Uint8Array[];
  /** Number of frames in `chunks`. */
  count: number;
  /** Bytes in `chunks`. */
  byteLength: number;
  /** LSN of the last frame; the read's `sinceLsn` while `count` is 0. */
  lastLsn: number;
}

/** Most records and about most bytes a raw read takes (the first record is always taken). */
export interface RawBudget {
  maxCount: number;
  maxBytes: number;
}

/** An empty result that starts after `sinceLsn`. */
export function emptyRawFrames(sinceLsn: number): RawFrames {
  return { chunks: [], count: 0, byteLength: 0, lastLsn: sinceLsn };
}

/** Appends one run of stored bytes holding `count` frames that end at `lastLsn`. */
export function appendRawRun(
  raw: RawFrames,
  bytes: Uint8Array,
  count: number,
  lastLsn: number,
): void {
  if (count === 0) return;
  const last = raw.chunks[raw.chunks.length - 1];
  if (
    last && last.buffer === bytes.buffer && last.byteOffset + last.byteLength === bytes.byteOffset
  ) {
    raw.chunks[raw.chunks.length - 1] = new Uint8Array(
      last.buffer,
      last.byteOffset,
      last.byteLength + bytes.byteLength,
    );
  } else {
    raw.chunks.push(bytes);
  }
  raw.count += count;
  raw.byteLength += bytes.byteLength;
  raw.lastLsn = lastLsn;
}

/** Where a header walk over one buffer stopped. */
interface _Walk {
  /** Offset in the buffer of the next frame not yet walked. */
  offset: number;
  /** Offset in the buffer of the first frame taken, or -1. */
  takenFrom: number;
  taken: number;
  lastLsn: number;
  /** LSN the next frame must carry, or -1 before the first frame. */
  expectedLsn: number;
  outcome: "more" | "full" | "end";
  /** Bytes the next read must bring at least (a frame that did not fit). */
  bytesNeeded: number;
}

/**
 * Appends to `raw` the frames of `segment` with LSN > `raw.lastLsn`, read as stored, until the
 * budget is spent or the segment's durable bytes end; returns true when the budget is spent.
 * Starts from the bytes `ahead` read for this LSN when it has them, else at the seek-index
 * checkpoint at or before the next LSN, reading in one read the bytes the budget is expected to
 * need (from the segment's mean frame size); a second read happens only when the frames are larger
 * than that. A read that fills the budget has `ahead` read what would come next. Throws
 * `WalCorruptionError` for a damaged header, a gap in the LSNs, or a first frame that is not the
 * next LSN. Needs read access to the segment.
 */
export async function readSegmentRange(
  fs: FileSystem,
  segment: Segment,
  raw: RawFrames,
  budget: RawBudget,
  ahead?: ReadAhead,
): Promise<boolean> {
  const sinceLsn = raw.lastLsn;
  const index = await segment.ensureIndex(fs);
  // The durable end now: the appender may write past it meanwhile, never before it.
  const end = segment.sizeBytes;
  const early = ahead?.take(segment, sinceLsn + 1);
  let prefetched = early && await early.bytes;
  let position = prefetched ? early!.offset : index.floorOffset(sinceLsn + 1);
  if (position >= end) return false;
  const leadInFrames = sinceLsn + 1 - (index.floorLsn(sinceLsn + 1) ?? segment.firstLsn);
  let want = prefetched?.byteLength ??
    _firstReadBytes(segment, leadInFrames, budget, end - position);
  let file: FileHandle | undefined;
  try {
    let expectedLsn = prefetched ? sinceLsn + 1 : -1;
    for (;;) {
      const requested = Math.min(want, end - position);
      let bytes = prefetched?.subarray(0, requested);
      prefetched = undefined;
      if (bytes === undefined) {
        file ??= await fs.open(segment.path);
        const buffer = new Uint8Array(requested);
        bytes = buffer.subarray(0, await file.readAt(buffer, position));
      }
      const got = bytes.byteLength;
      const walk = _walkHeaders(bytes, { sinceLsn: raw.lastLsn, expectedLsn, raw, budget });
      if (walk.takenFrom >= 0) {
        _checkFirst(segment, walk, raw.lastLsn, position);
        appendRawRun(raw, bytes.subarray(walk.takenFrom, walk.offset), walk.taken, walk.lastLsn);
      }
      if (walk.outcome === "full") {
        const next = { offset: position + walk.offset, lsn: walk.lastLsn + 1, size: requested };
        ahead?.schedule(fs, segment, { ...next, size: Math.min(requested, end - next.offset) });
        return true;
      }
      const unfinished = walk.outcome === "more" || got < requested;
      if (unfinished && (got < requested || position + got >= end)) {
        const reason = got < requested ? "file shorter than expected" : "incomplete frame";
        throw _corruption(segment, reason, position + walk.offset);
      }
      position += walk.offset;
      if (position >= end) return false;
      expectedLsn = walk.expectedLsn;
      want = Math.max(READ_CHUNK_BYTES, walk.bytesNeeded);
    }
  } catch (error) {
    if (error instanceof _HeaderError) throw _corruption(segment, error.message, error.offset);
    throw error;
  } finally {
    file?.close();
  }
}

/**
 * Bytes of the first read: the frames from the checkpoint to the first wanted one, then the
 * budget, at the segment's mean frame size, with a little room for frames larger than the mean.
 */
function _firstReadBytes(
  segment: Segment,
  leadInFrames: number,
  budget: RawBudget,
  available: number,
): number {
  const records = Math.max(1, segment.lastLsn - segment.firstLsn + 1);
  const meanFrameBytes = Math.ceil(segment.sizeBytes / records);
  const takeBytes = Math.min(budget.maxBytes, budget.maxCount * meanFrameBytes);
  const roomBytes = Math.ceil(takeBytes / _ROOM_DIVISOR) + 2 * meanFrameBytes;
  const estimate = leadInFrames * meanFrameBytes + takeBytes + roomBytes;
  return Math.min(available, RANGE_READ_BYTES_MAX, Math.max(RANGE_READ_BYTES_MIN, estimate));
}

/** The first read takes 1/32 more than the mean predicts (a larger frame costs a second read). */
const _ROOM_DIVISOR = 32;

/** A damaged header at a buffer offset (turned into a `WalCorruptionError` by the caller). */
class _HeaderError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
  }
}

/**
 * Walks the frame headers of `bytes` (read from a segment at a frame boundary): skips frames with
 * LSN ≤ `sinceLsn`, takes the next ones while the budget allows, and says whether the budget is
 * full, the bytes ended, or more must be read (a frame runs past them).
 */
function _walkHeaders(
  bytes: Uint8Array,
  state: { sinceLsn: number; expectedLsn: number; raw: RawFrames; budget: RawBudget },
): _Walk {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const walk: _Walk = {
    offset: 0,
    takenFrom: -1,
    taken: 0,
    lastLsn: state.sinceLsn,
    expectedLsn: state.expectedLsn,
    outcome: "end",
    bytesNeeded: 0,
  };
  let takenBytes = 0;
  while (walk.offset < bytes.byteLength) {
    // v3 frames without an object each; anything else through `frameHeaderAt` (its reasons).
    let frameBytes = frameV3LengthAt(bytes, view, walk.offset);
    let lsn = frameBytes > 0 ? frameV3LsnAt(view, walk.offset) : -1;
    if (frameBytes === 0) {
      const header = frameHeaderAt(bytes, view, walk.offset);
      if (header.status === "corrupt") throw new _HeaderError(header.reason, walk.offset);
      frameBytes = header.status === "ok" ? header.byteLength : 0;
      lsn = header.status === "ok" ? header.lsn : -1;
    }
    if (lsn < 0 || walk.offset + frameBytes > bytes.byteLength) {
      walk.outcome = "more";
      walk.bytesNeeded = Math.max(frameBytes, bytes.byteLength - walk.offset + 1);
      return walk;
    }
    if (walk.expectedLsn >= 0 && lsn !== walk.expectedLsn) {
      throw new _HeaderError(`expected LSN ${walk.expectedLsn}, found ${lsn}`, walk.offset);
    }
    walk.expectedLsn = lsn + 1;
    if (lsn > state.sinceLsn) {
      const raw = state.raw;
      const spent = raw.count + walk.taken >= state.budget.maxCount ||
        (raw.count + walk.taken > 0 &&
          raw.byteLength + takenBytes + frameBytes > state.budget.maxBytes);
      if (spent) {
        walk.outcome = "full";
        return walk;
      }
      if (walk.takenFrom < 0) walk.takenFrom = walk.offset;
      walk.taken += 1;
      takenBytes += frameBytes;
      walk.lastLsn = lsn;
    }
    walk.offset += frameBytes;
  }
  return walk;
}

/** The first frame taken from a segment must be the next LSN (a gap is corruption, not a skip). */
function _checkFirst(segment: Segment, walk: _Walk, sinceLsn: number, position: number): void {
  const firstLsn = walk.lastLsn - walk.taken + 1;
  if (firstLsn !== sinceLsn + 1) {
    throw _corruption(
      segment,
      `expected LSN ${sinceLsn + 1} first, read ${firstLsn}`,
      position + walk.takenFrom,
    );
  }
}

function _corruption(segment: Segment, message: string, offset: number): WalCorruptionError {
  return new WalCorruptionError(`segment ${segment.path}: ${message} at offset ${offset}`, {
    path: segment.path,
    offset,
  });
}
