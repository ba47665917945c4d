/**
 * What one group commit is: the appends taken from the queue in order (bounded by bytes and
 * records, but never fewer than one), and their frames encoded into one buffer, so the spool
 * writes them with one `write` and makes them durable with one `fdatasync`.
 *
 * @module
 */

import { LsnGapError } from "../core/errors.ts";
import { GROUP_COMMIT_BYTES_MAX, GROUP_COMMIT_RECORDS_MAX } from "../core/limits.ts";
import { type DecodedFrame, type FrameFields, writeFrameV3 } from "./frame.ts";

/**
 * One queued `append()`: its payloads, their encoded size, and how to answer it. A mirrored append
 * (`appendFrames`) also carries the frames as another node wrote them: they are copied as they are.
 */
export interface PendingAppend<R> {
  payloads: readonly Uint8Array[];
  frames?: readonly DecodedFrame[];
  frameBytes: number;
  resolve: (result: R) => void;
  reject: (error: Error) => void;
}

/**
 * Takes the next group commit off the front of `queue`: as many appends as fit the group-commit
 * bounds, at least one. Returns them and their frame bytes.
 */
export function takeGroupCommit<R>(
  queue: PendingAppend<R>[],
): { batch: PendingAppend<R>[]; frameBytes: number } {
  let bytes = 0;
  let records = 0;
  let count = 0;
  for (const pending of queue) {
    const nextBytes = bytes + pending.frameBytes;
    const nextRecords = records + pending.payloads.length;
    const fits = nextBytes <= GROUP_COMMIT_BYTES_MAX && nextRecords <= GROUP_COMMIT_RECORDS_MAX;
    if (count > 0 && !fits) break;
    bytes = nextBytes;
    records = nextRecords;
    count += 1;
  }
  return { batch: queue.splice(0, count), frameBytes: bytes };
}

/**
 * One group commit's frames, encoded into one buffer: where each frame ends in it, and no object
 * per frame (at batch rates those objects outlived the young generation and churned the old one).
 */
export interface EncodedGroupCommit {
  buffer: Uint8Array;
  firstLsn: number;
  /** Offset in `buffer` where each frame ends, in LSN order. */
  ends: number[];
  /** The first frame's timestamp: the commit's, or the first mirrored frame's own. */
  firstTimestampMs: number;
}

/**
 * Encodes every payload of `batch` as v3 frames with consecutive LSNs after `previousLsn`, into
 * one buffer. Mirrored frames are copied byte for byte (their term and timestamp kept); one that
 * does not follow the LSN before it throws `LsnGapError`.
 */
export function encodeGroupCommit<R>(
  batch: readonly PendingAppend<R>[],
  stamp: { term: number; previousLsn: number; timestampMs: number },
): EncodedGroupCommit {
  let total = 0;
  for (const pending of batch) total += pending.frameBytes;
  const buffer = new Uint8Array(total);
  const view = new DataView(buffer.buffer);
  const ends: number[] = [];
  let firstTimestampMs = stamp.timestampMs;
  // One fields object for the whole commit: only the LSN and the payload change per frame.
  const fields: FrameFields = {
    term: stamp.term,
    ownershipEpoch: 0,
    lsn: stamp.previousLsn,
    timestampMs: stamp.timestampMs,
    payload: _EMPTY,
  };
  let offset = 0;
  for (const pending of batch) {
    if (pending.frames) {
      for (const frame of pending.frames) {
        fields.lsn += 1;
        if (frame.lsn !== fields.lsn) throw new LsnGapError(fields.lsn, frame.lsn);
        if (ends.length === 0) firstTimestampMs = frame.timestampMs;
        buffer.set(frame.bytes, offset);
        offset += frame.byteLength;
        ends.push(offset);
      }
      continue;
    }
    for (const payload of pending.payloads) {
      fields.lsn += 1;
      fields.payload = payload;
      offset += writeFrameV3(buffer, offset, fields, view);
      ends.push(offset);
    }
  }
  return { buffer, firstLsn: stamp.previousLsn + 1, ends, firstTimestampMs };
}

const _EMPTY = new Uint8Array(0);

/** Answers each append of a durable group commit with its LSNs (they start at `firstLsn`). */
export function resolveGroupCommit(
  batch: readonly PendingAppend<{ firstLsn: number; lastLsn: number; timestampMs: number }>[],
  firstLsn: number,
  timestampMs: number,
): void {
  let next = firstLsn;
  for (const pending of batch) {
    const lastLsn = next + pending.payloads.length - 1;
    pending.resolve({ firstLsn: next, lastLsn, timestampMs });
    next = lastLsn + 1;
  }
}
