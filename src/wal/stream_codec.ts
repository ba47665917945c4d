/**
 * The body of a streaming pull (SPEC.md 13.1): v3 frames byte for byte as stored, interleaved
 * with RDLC control records that carry liveness and progress. Pure functions over `Uint8Array`,
 * little-endian, no I/O.
 *
 * ```
 * control record: magic "RDLC" | u8 version 1 | u32 payload length N | N bytes of JSON | u32 CRC
 * ```
 *
 * The CRC is IEEE CRC-32 (zlib's) over the version, the length and the payload (everything after
 * the magic), as for frames. The JSON payload is
 * `{"current_lsn", "commit_lsn", "term", "timeline", "slots"?}`; fields a reader does not know are
 * ignored, so a later writer may add some.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { CONTROL_PAYLOAD_BYTES_MAX } from "../core/limits.ts";
import { type DecodedFrame, decodeFrameRun, type FrameDecodeResult } from "./frame.ts";

/** ASCII "RDLC". */
export const CONTROL_MAGIC: Readonly<Uint8Array> = new Uint8Array([0x52, 0x44, 0x4c, 0x43]);
export const CONTROL_MAGIC_BYTES = 4;
/** The only control-record version written and read. */
export const CONTROL_VERSION = 1;
const _VERSION_OFFSET = 4;
const _LENGTH_OFFSET = 5;
/** Magic, version and length. */
export const CONTROL_HEADER_BYTES = 9;
export const CONTROL_CRC_BYTES = 4;

/** What a control record says (the JSON payload, camelCase). */
export interface ControlRecord {
  /** LSN of the newest durable record on the sender. */
  currentLsn: number;
  /** LSN through which records are committed (the current LSN without a cluster). */
  commitLsn: number;
  term: number;
  timeline: number;
  /** Slot positions for failover slots (SPEC.md 13.4), as sent; absent when not carried. */
  slots?: unknown[];
}

/** Why bytes did not decode here: more are needed, or they are not what they claim. */
export type StreamStop = Exclude<FrameDecodeResult, { status: "ok" }>;

/** Outcome of decoding a control record at one offset. */
export type ControlDecodeResult =
  | { status: "ok"; record: ControlRecord; byteLength: number }
  | StreamStop;

/** One item of a stream body: consecutive frames, or a control record. */
export type StreamItem =
  | { kind: "frames"; frames: DecodedFrame[] }
  | { kind: "control"; control: ControlRecord };

/** The items decoded in one pass (`decodeStreamRun`), and where and why it stopped. */
export interface StreamRun {
  items: StreamItem[];
  /** Where decoding ended: `bytes.byteLength` when every item decoded. */
  offset: number;
  /** Why the bytes at `offset` did not decode; "incomplete" means: wait for more. */
  stop?: StreamStop;
}

const _utf8Encoder = new TextEncoder();
const _utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes one control record.
 *
 * @example
 * ```ts
 * const bytes = encodeControlRecord({ currentLsn: 42, commitLsn: 42, term: 3, timeline: 1 });
 * ```
 */
export function encodeControlRecord(record: ControlRecord): Uint8Array {
  const json: Record<string, unknown> = {
    current_lsn: record.currentLsn,
    commit_lsn: record.commitLsn,
    term: record.term,
    timeline: record.timeline,
  };
  if (record.slots !== undefined) json.slots = record.slots;
  const payload = _utf8Encoder.encode(JSON.stringify(json));
  if (payload.byteLength > CONTROL_PAYLOAD_BYTES_MAX) {
    throw new RangeError(`a control record of ${payload.byteLength} bytes is too large`);
  }
  const total = CONTROL_HEADER_BYTES + payload.byteLength + CONTROL_CRC_BYTES;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(CONTROL_MAGIC, 0);
  view.setUint8(_VERSION_OFFSET, CONTROL_VERSION);
  view.setUint32(_LENGTH_OFFSET, payload.byteLength, true);
  out.set(payload, CONTROL_HEADER_BYTES);
  const crcOffset = CONTROL_HEADER_BYTES + payload.byteLength;
  view.setUint32(crcOffset, crc32(out.subarray(CONTROL_MAGIC_BYTES, crcOffset)), true);
  return out;
}

/** True when the bytes at `offset` start with the whole control-record magic. */
export function isControlRecordAt(bytes: Uint8Array, offset: number): boolean {
  if (bytes.byteLength - offset < CONTROL_MAGIC_BYTES) return false;
  for (let i = 0; i < CONTROL_MAGIC_BYTES; i++) {
    if (bytes[offset + i] !== CONTROL_MAGIC[i]) return false;
  }
  return true;
}

/**
 * Decodes the control record at `offset` of `bytes`: `incomplete` when the bytes end first,
 * `corrupt` for a bad magic, an unknown version, an implausible length, a CRC mismatch or a
 * payload that is not the documented JSON.
 */
export function decodeControlRecord(bytes: Uint8Array, offset = 0): ControlDecodeResult {
  const available = bytes.byteLength - offset;
  for (let i = 0; i < Math.min(available, CONTROL_MAGIC_BYTES); i++) {
    if (bytes[offset + i] !== CONTROL_MAGIC[i]) return { status: "corrupt", reason: "bad magic" };
  }
  if (available < CONTROL_HEADER_BYTES) {
    return { status: "incomplete", bytesNeeded: CONTROL_HEADER_BYTES - available };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, available);
  const version = view.getUint8(_VERSION_OFFSET);
  if (version !== CONTROL_VERSION) {
    return { status: "corrupt", reason: `unknown control record version ${version}` };
  }
  const length = view.getUint32(_LENGTH_OFFSET, true);
  if (length > CONTROL_PAYLOAD_BYTES_MAX) {
    return { status: "corrupt", reason: `implausible control record length ${length}` };
  }
  const total = CONTROL_HEADER_BYTES + length + CONTROL_CRC_BYTES;
  if (available < total) return { status: "incomplete", bytesNeeded: total - available };
  const crcOffset = CONTROL_HEADER_BYTES + length;
  const computed = crc32(bytes.subarray(offset + CONTROL_MAGIC_BYTES, offset + crcOffset));
  if (computed !== view.getUint32(crcOffset, true)) {
    return { status: "corrupt", reason: "control record crc mismatch" };
  }
  const record = _parsePayload(
    bytes.subarray(offset + CONTROL_HEADER_BYTES, offset + crcOffset),
  );
  if (typeof record === "string") return { status: "corrupt", reason: record };
  return { status: "ok", record, byteLength: total };
}

/** The control record a payload holds, or why it holds none. */
function _parsePayload(payload: Uint8Array): ControlRecord | string {
  let json: unknown;
  try {
    json = JSON.parse(_utf8Decoder.decode(payload));
  } catch {
    return "control record payload is not JSON";
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return "control record payload is not a JSON object";
  }
  const object = json as Record<string, unknown>;
  const fields = ["current_lsn", "commit_lsn", "term", "timeline"] as const;
  for (const name of fields) {
    const value = object[name];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      return `control record ${name} is not a non-negative integer`;
    }
  }
  if (object.slots !== undefined && !Array.isArray(object.slots)) {
    return "control record slots is not an array";
  }
  const record: ControlRecord = {
    currentLsn: object.current_lsn as number,
    commitLsn: object.commit_lsn as number,
    term: object.term as number,
    timeline: object.timeline as number,
  };
  if (object.slots !== undefined) record.slots = object.slots as unknown[];
  return record;
}

/**
 * Decodes the frames and control records that fill `bytes` in one pass (frames through
 * `decodeFrameRun`: one CRC-32 each), consecutive frames as one item. Stops at the first item
 * that does not decode: "incomplete" when the bytes end inside it (keep them, and decode again
 * with what comes next), "corrupt" when it is damaged.
 *
 * @example
 * ```ts
 * const run = decodeStreamRun(chunk);
 * if (run.stop?.status === "corrupt") console.warn(`at ${run.offset}: ${run.stop.reason}`);
 * const rest = chunk.subarray(run.offset); // the start of the next item, when incomplete
 * ```
 */
export function decodeStreamRun(bytes: Uint8Array): StreamRun {
  const items: StreamItem[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (isControlRecordAt(bytes, offset)) {
      const result = decodeControlRecord(bytes, offset);
      if (result.status !== "ok") return { items, offset, stop: result };
      items.push({ kind: "control", control: result.record });
      offset += result.byteLength;
      continue;
    }
    const run = decodeFrameRun(offset === 0 ? bytes : bytes.subarray(offset));
    if (run.frames.length > 0) items.push({ kind: "frames", frames: run.frames });
    offset += run.offset;
    // Frames stop where a control record starts ("bad magic" to the frame decoder): go on there.
    if (run.stop && !(run.stop.status === "corrupt" && isControlRecordAt(bytes, offset))) {
      return { items, offset, stop: run.stop };
    }
  }
  return { items, offset };
}
