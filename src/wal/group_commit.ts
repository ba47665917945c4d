/**
 * What one group commit is: the appends taken from the queue in order (bounded by bytes and
 * records, but never fewer than one), and their frames encoded into one buffer, so the spool
 * writes them with one `write` and makes them durable with one `fdatasync`.
 *
 * @module
 */

import { LsnGapError } from "../core/errors.ts";
import { GROUP_COMMIT_BYTES_MAX, GROUP_COMMIT_RECORDS_MAX } from "../core/limits.ts";
import {
  type DecodedFrame,
  FRAME_CRC_BYTES,
  FRAME_V3,
  FRAME_V3_HEADER_BYTES,
  writeFrameV3,
} from "./frame.ts";

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
 * Encodes every payload of `batch` as v3 frames with consecutive LSNs after `previousLsn`, into
 * one buffer; each returned frame is a view into it. Mirrored frames are copied byte for byte
 * (their term and timestamp kept); one that does not follow the LSN before it throws `LsnGapError`.
 */
export function encodeGroupCommit<R>(
  batch: readonly PendingAppend<R>[],
  stamp: { term: number; previousLsn: number; timestampMs: number },
): { buffer: Uint8Array; frames: DecodedFrame[] } {
  let total = 0;
  for (const pending of batch) total += pending.frameBytes;
  const buffer = new Uint8Array(total);
  const frames: DecodedFrame[] = [];
  let lsn = stamp.previousLsn;
  let offset = 0;
  for (const pending of batch) {
    if (pending.frames) {
      for (const frame of pending.frames) {
        lsn += 1;
        if (frame.lsn !== lsn) throw new LsnGapError(lsn, frame.lsn);
        buffer.set(frame.bytes, offset);
        frames.push(_copiedFrame(frame, buffer.subarray(offset, offset + frame.byteLength)));
        offset += frame.byteLength;
      }
      continue;
    }
    for (const payload of pending.payloads) {
      lsn += 1;
      const fields = {
        term: stamp.term,
        ownershipEpoch: 0,
        lsn,
        timestampMs: stamp.timestampMs,
        payload,
      };
      const length = writeFrameV3(buffer, offset, fields);
      const bytes = buffer.subarray(offset, offset + length);
      const payloadEnd = FRAME_V3_HEADER_BYTES + payload.byteLength;
      frames.push({
        ...fields,
        version: FRAME_V3,
        payload: bytes.subarray(FRAME_V3_HEADER_BYTES, payloadEnd),
        byteLength: length,
        bytes,
      });
      offset += length;
    }
  }
  return { buffer, frames };
}

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

/** `frame` as a view into `bytes`, its copy in the group commit's buffer. */
function _copiedFrame(frame: DecodedFrame, bytes: Uint8Array): DecodedFrame {
  // A v1 frame (no CRC) ends with its payload; v2 and v3 end with the CRC.
  const crcBytes = frame.version === 1 ? 0 : FRAME_CRC_BYTES;
  const payloadStart = frame.byteLength - frame.payload.byteLength - crcBytes;
  const payload = bytes.subarray(payloadStart, payloadStart + frame.payload.byteLength);
  return { ...frame, payload, bytes };
}
