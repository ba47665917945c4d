/**
 * How the primary hands frames to the state's apply worker and what they say to each other. The
 * frames of one batch travel packed in one buffer that is transferred, not copied: per frame its
 * LSN and term (float64, exact for every safe integer), its payload's length (uint32) and the
 * payload, little-endian. In memory only; never stored.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { concatBytes } from "../core/bytes.ts";
import type { ApplyFrame, SkippedRecord } from "./apply_frames.ts";
import { decodeFrameRun } from "../wal/frame.ts";
import type { RawFrames } from "../wal/range_read.ts";

/** Bytes before each packed payload: LSN, term, length. */
export const PACKED_FRAME_HEADER_BYTES = 20;

/**
 * The priority the apply worker took as it opened: its nice value, or why it kept the process's
 * (most often: `--allow-sys=getPriority,setPriority` not granted).
 */
export type ApplyPriority = { nice: number } | { refused: string };

/** What the primary asks of the worker, one message at a time. */
export type ToApplyWorker =
  /** Open the KV file at `path`, first taking `niceSteps` nice steps below the process. */
  | { kind: "open"; path: string; niceSteps: number }
  | { kind: "apply"; frames: ArrayBuffer }
  /** Frames as the spool stores them (`rawFrameBuffer`), the first one after `afterLsn`. */
  | { kind: "apply_raw"; frames: ArrayBuffer; afterLsn: number }
  | { kind: "close" };

/**
 * What the worker answers: each request ends with `done` or `failed`; before it, an apply's
 * `committed` per visible commit, and the open's `priority`.
 */
export type FromApplyWorker =
  | { kind: "committed"; lsn: number }
  | { kind: "priority"; priority: ApplyPriority }
  | { kind: "done"; skipped: SkippedRecord[] }
  | { kind: "failed"; name: string; message: string };

/** Packs `frames` into one buffer (see the module comment). */
export function packFrames(frames: readonly ApplyFrame[]): ArrayBuffer {
  let bytes = 0;
  for (const frame of frames) bytes += PACKED_FRAME_HEADER_BYTES + frame.payload.byteLength;
  const buffer = new ArrayBuffer(bytes);
  const view = new DataView(buffer);
  const out = new Uint8Array(buffer);
  let at = 0;
  for (const { lsn, term, payload } of frames) {
    view.setFloat64(at, lsn, true);
    view.setFloat64(at + 8, term, true);
    view.setUint32(at + 16, payload.byteLength, true);
    out.set(payload, at + PACKED_FRAME_HEADER_BYTES);
    at += PACKED_FRAME_HEADER_BYTES + payload.byteLength;
  }
  return buffer;
}

/** The frames `packFrames` packed; payloads are views into `buffer`. */
export function unpackFrames(buffer: ArrayBuffer): ApplyFrame[] {
  const view = new DataView(buffer);
  const frames: ApplyFrame[] = [];
  let at = 0;
  while (at < buffer.byteLength) {
    assert(at + PACKED_FRAME_HEADER_BYTES <= buffer.byteLength, "a packed frame header is whole");
    const length = view.getUint32(at + 16, true);
    const start = at + PACKED_FRAME_HEADER_BYTES;
    assert(start + length <= buffer.byteLength, "a packed payload is whole");
    frames.push({
      lsn: view.getFloat64(at, true),
      term: view.getFloat64(at + 8, true),
      payload: new Uint8Array(buffer, start, length),
    });
    at = start + length;
  }
  return frames;
}

/** The worker refused raw frames: one failed its CRC check, or they do not follow each other. */
export class RawFramesRejectedError extends Error {
  override name = "RawFramesRejectedError";
}

/**
 * The bytes of `raw`'s chunks, back to back, in a buffer of their own (to transfer: a chunk is a
 * view of the tail's or a read's buffer, so even a single one is copied).
 */
export function rawFrameBuffer(raw: RawFrames): ArrayBuffer {
  const [only] = raw.chunks;
  const bytes = raw.chunks.length === 1 ? only!.slice() : concatBytes(raw.chunks, raw.byteLength);
  return bytes.buffer as ArrayBuffer;
}

/**
 * The frames of a `rawFrameBuffer`, every CRC checked and their LSNs following `afterLsn` one by
 * one; `RawFramesRejectedError` otherwise. Payloads are views into `buffer`.
 */
export function rawApplyFrames(buffer: ArrayBuffer, afterLsn: number): ApplyFrame[] {
  const run = decodeFrameRun(new Uint8Array(buffer));
  if (run.stop !== undefined) {
    const why = run.stop.status === "corrupt" ? run.stop.reason : "a frame is cut short";
    throw new RawFramesRejectedError(`raw frame at byte ${run.offset}: ${why}`);
  }
  let lsn = afterLsn;
  for (const frame of run.frames) {
    lsn += 1;
    if (frame.lsn !== lsn) {
      throw new RawFramesRejectedError(`raw frames: LSN ${frame.lsn} where ${lsn} was due`);
    }
  }
  return run.frames;
}
