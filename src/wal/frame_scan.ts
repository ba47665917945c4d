/**
 * Frame scans over a segment file (SPEC.md section 3): decode frames chunk by chunk, say why the
 * scan stopped (end, stopped by the visitor, torn, corrupt), and the budget of a decoded read.
 *
 * @module
 */

import type { FileHandle } from "../core/files.ts";
import { READ_CHUNK_BYTES } from "../core/limits.ts";
import {
  type DecodedFrame,
  decodeFrame,
  type FrameDecodeResult,
  type FrameHead,
  frameV3CheckedAt,
} from "./frame.ts";

/** Why a scan stopped. */
export type ScanEnd =
  | { kind: "end"; offset: number }
  | { kind: "stopped"; offset: number }
  | { kind: "torn"; offset: number; reason: string }
  | { kind: "corrupt"; offset: number; reason: string };

/** Visits each frame; returns false to stop the scan. */
export type ScanVisit = (frame: DecodedFrame, offset: number) => boolean;

/** Where a scan reads, and what it does with the bytes. */
export interface ScanRange {
  start: number;
  end: number;
  /** One buffer for every read (a scan that keeps no frame): no chunk allocated per read. */
  reuse?: boolean;
  /** Handed the bytes of every frame the scan went past, in order. */
  onBytes?: (bytes: Uint8Array) => void;
}

/** One frame's check: the frame, or why there is none at `offset`. */
type _Decode<F> = (
  bytes: Uint8Array,
  view: DataView,
  offset: number,
) => { status: "ok"; frame: F } | Exclude<FrameDecodeResult, { status: "ok" }>;

/**
 * Decodes frames from `start` to `end` of `file`, reading `READ_CHUNK_BYTES` at a time (more when
 * a single frame is larger). Frames handed to `visit` are views into the chunk buffers.
 */
export function scanFrames(file: FileHandle, range: ScanRange, visit: ScanVisit): Promise<ScanEnd> {
  return _scan(file, range, (bytes, _view, offset) => decodeFrame(bytes, offset), visit);
}

/**
 * `scanFrames` for a scan that keeps no frame (repair, index builds): a v3 frame is checked where
 * it lies (`frameV3CheckedAt`: the same checks, CRC included, no object built), anything else is
 * decoded; `visit` gets one `FrameHead`, the same object for every frame.
 */
export function scanFrameHeads(
  file: FileHandle,
  range: ScanRange,
  visit: (head: FrameHead, offset: number) => boolean,
): Promise<ScanEnd> {
  const head: FrameHead = { lsn: 0, timestampMs: 0, byteLength: 0 };
  const ok = { status: "ok" as const, frame: head };
  const check: _Decode<FrameHead> = (bytes, view, offset) =>
    frameV3CheckedAt(bytes, view, offset, head) > 0 ? ok : decodeFrame(bytes, offset);
  return _scan(file, range, check, visit);
}

async function _scan<F extends FrameHead>(
  file: FileHandle,
  range: ScanRange,
  decode: _Decode<F>,
  visit: (frame: F, offset: number) => boolean,
): Promise<ScanEnd> {
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
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const atEnd = position + got >= range.end || got < wanted;
    let offset = 0;
    while (offset < bytes.byteLength) {
      const result = decode(bytes, view, offset);
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
