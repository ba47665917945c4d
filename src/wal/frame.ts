/**
 * RDLW log frames (SPEC.md section 2): v3 encode and decode, read-only v1 and v2 decode.
 *
 * Pure functions over `Uint8Array`, little-endian, no I/O. The v3 CRC is IEEE CRC-32 (zlib's)
 * over every byte after the magic.
 *
 * ```
 * v3: magic "RDLW" | u8 3 | u64 term | u64 epoch | u64 lsn | u64 timestamp_ms | u32 len | payload | u32 crc
 * v2: magic "RDLW" | u8 2 | u64 lsn | u64 timestamp_ms | u32 len | payload | u32 crc
 * v1: magic "RDLW" | u8 1 | u64 lsn | u64 len | payload            (no CRC)
 * ```
 *
 * v1 frames carry no CRC, and a v3 frame whose version byte loses one bit (3 -> 1) parses as a
 * plausible v1 frame. So v1 is decoded only on request (`{ legacyV1: true }`, for reading reddb's
 * legacy files); the spool and replicas accept the CRC-protected v2 and v3 only, and so every
 * flipped bit after the magic of a frame they accept is detected.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { FRAME_PAYLOAD_BYTES_MAX, U64_SAFE_MAX } from "../core/limits.ts";
import { CorruptFrameError } from "../core/errors.ts";

/** ASCII "RDLW". */
export const FRAME_MAGIC: Readonly<Uint8Array> = new Uint8Array([0x52, 0x44, 0x4c, 0x57]);
export const FRAME_MAGIC_BYTES = 4;
export const FRAME_CRC_BYTES = 4;
export const FRAME_V1 = 1;
export const FRAME_V2 = 2;
export const FRAME_V3 = 3;

// v3 field offsets (from the frame start).
const V3_VERSION_OFFSET = 4;
const V3_TERM_OFFSET = 5;
const V3_EPOCH_OFFSET = 13;
const V3_LSN_OFFSET = 21;
const V3_TIMESTAMP_OFFSET = 29;
const V3_LENGTH_OFFSET = 37;
export const FRAME_V3_HEADER_BYTES = 41;

// v2 field offsets.
const V2_LSN_OFFSET = 5;
const V2_TIMESTAMP_OFFSET = 13;
const V2_LENGTH_OFFSET = 21;
export const FRAME_V2_HEADER_BYTES = 25;

// v1 field offsets.
const V1_LSN_OFFSET = 5;
const V1_LENGTH_OFFSET = 13;
export const FRAME_V1_HEADER_BYTES = 21;

/** Bytes a v3 frame adds around its payload. */
export const FRAME_V3_OVERHEAD_BYTES = FRAME_V3_HEADER_BYTES + FRAME_CRC_BYTES;

/** The fields of a frame, whatever its version. */
export interface FrameFields {
  term: number;
  /** 0 means none; ferry writes 0. */
  ownershipEpoch: number;
  lsn: number;
  timestampMs: number;
  payload: Uint8Array;
}

/** A decoded frame. `payload` and `bytes` are views into the decoded buffer, not copies. */
export interface DecodedFrame extends FrameFields {
  version: 1 | 2 | 3;
  /** Total bytes of the frame, header and CRC included. */
  byteLength: number;
  /** The whole frame as stored (what a raw-frame pull sends). */
  bytes: Uint8Array;
}

/** Options of `decodeFrame`. */
export interface DecodeOptions {
  /** Also accept v1 frames (no CRC). Off by default; see the module comment. */
  legacyV1?: boolean;
}

/** Outcome of decoding at one offset. */
export type FrameDecodeResult =
  | { status: "ok"; frame: DecodedFrame }
  /** The bytes end before the frame does (a torn tail, or a read that must continue). */
  | { status: "incomplete"; bytesNeeded: number }
  | { status: "corrupt"; reason: string };

/** Total bytes of a v3 frame carrying `payloadBytes`. */
export function frameV3ByteLength(payloadBytes: number): number {
  return FRAME_V3_OVERHEAD_BYTES + payloadBytes;
}

function _setU64(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CorruptFrameError(`${field} must be an integer in 0..2^53-1, got ${value}`);
  }
  view.setUint32(offset, value % 0x1_0000_0000, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** Reads a u64; returns -1 when it does not fit an exact JS number. */
function _getU64(view: DataView, offset: number): number {
  const low = view.getUint32(offset, true);
  const high = view.getUint32(offset + 4, true);
  const value = high * 0x1_0000_0000 + low;
  return value > U64_SAFE_MAX ? -1 : value;
}

/**
 * Writes a v3 frame into `target` at `offset` and returns its byte length. Used by the appender to
 * build one buffer for a whole group commit without intermediate copies (`view`, over the whole of
 * `target`, made once for all its frames).
 */
export function writeFrameV3(
  target: Uint8Array,
  offset: number,
  fields: FrameFields,
  view: DataView = new DataView(target.buffer, target.byteOffset, target.byteLength),
): number {
  const length = fields.payload.byteLength;
  if (length > FRAME_PAYLOAD_BYTES_MAX) {
    throw new CorruptFrameError(`payload of ${length} bytes exceeds ${FRAME_PAYLOAD_BYTES_MAX}`);
  }
  const total = frameV3ByteLength(length);
  target.set(FRAME_MAGIC, offset);
  view.setUint8(offset + V3_VERSION_OFFSET, FRAME_V3);
  _setU64(view, offset + V3_TERM_OFFSET, fields.term, "term");
  _setU64(view, offset + V3_EPOCH_OFFSET, fields.ownershipEpoch, "ownership epoch");
  _setU64(view, offset + V3_LSN_OFFSET, fields.lsn, "lsn");
  _setU64(view, offset + V3_TIMESTAMP_OFFSET, fields.timestampMs, "timestamp");
  view.setUint32(offset + V3_LENGTH_OFFSET, length, true);
  target.set(fields.payload, offset + FRAME_V3_HEADER_BYTES);
  const crcEnd = offset + FRAME_V3_HEADER_BYTES + length;
  view.setUint32(crcEnd, crc32(target.subarray(offset + FRAME_MAGIC_BYTES, crcEnd)), true);
  return total;
}

/**
 * Encodes one v3 frame.
 *
 * @example
 * ```ts
 * const frame = encodeFrameV3({
 *   term: 1, ownershipEpoch: 0, lsn: 7, timestampMs: Date.now(),
 *   payload: new TextEncoder().encode('{"op":"delete","collection":"c","key":"k"}'),
 * });
 * ```
 */
export function encodeFrameV3(fields: FrameFields): Uint8Array {
  const out = new Uint8Array(frameV3ByteLength(fields.payload.byteLength));
  writeFrameV3(out, 0, fields);
  return out;
}

function _magicMatches(bytes: Uint8Array, offset: number, available: number): boolean {
  for (let i = 0; i < Math.min(available, FRAME_MAGIC_BYTES); i++) {
    if (bytes[offset + i] !== FRAME_MAGIC[i]) return false;
  }
  return true;
}

/**
 * Decodes the frame that starts at `offset` of `bytes`.
 *
 * Returns `incomplete` when the bytes end first (only a torn tail or an unfinished read looks like
 * that), `corrupt` for a bad magic, an unknown (or, by default, v1) version, an implausible length,
 * a field beyond 2^53-1 or a CRC mismatch.
 */
export function decodeFrame(
  bytes: Uint8Array,
  offset = 0,
  options: DecodeOptions = {},
): FrameDecodeResult {
  const available = bytes.byteLength - offset;
  if (!_magicMatches(bytes, offset, available)) return { status: "corrupt", reason: "bad magic" };
  if (available <= FRAME_MAGIC_BYTES) {
    return { status: "incomplete", bytesNeeded: FRAME_MAGIC_BYTES + 1 - available };
  }
  const version = bytes[offset + FRAME_MAGIC_BYTES];
  if (version === FRAME_V3) return _decodeV3(bytes, offset, available);
  if (version === FRAME_V2) return _decodeV2(bytes, offset, available);
  if (version === FRAME_V1 && options.legacyV1) return _decodeV1(bytes, offset, available);
  if (version === FRAME_V1) return { status: "corrupt", reason: "v1 frame (no CRC) not accepted" };
  return { status: "corrupt", reason: `unknown version ${version}` };
}

function _viewAt(bytes: Uint8Array, offset: number, length: number): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, length);
}

function _checkCrc(
  bytes: Uint8Array,
  offset: number,
  crcOffset: number,
): "ok" | "mismatch" {
  const stored = _viewAt(bytes, offset + crcOffset, FRAME_CRC_BYTES).getUint32(0, true);
  const computed = crc32(bytes.subarray(offset + FRAME_MAGIC_BYTES, offset + crcOffset));
  return stored === computed ? "ok" : "mismatch";
}

/** What a frame's header says. */
type _HeaderFields = Omit<DecodedFrame, "payload" | "byteLength" | "bytes">;

/** A decoded frame: the header fields, and views of its payload and whole bytes. */
function _okFrame(
  bytes: Uint8Array,
  at: { offset: number; headerBytes: number; length: number; total: number },
  fields: _HeaderFields,
): FrameDecodeResult {
  const payloadStart = at.offset + at.headerBytes;
  return {
    status: "ok",
    frame: {
      ...fields,
      payload: bytes.subarray(payloadStart, payloadStart + at.length),
      byteLength: at.total,
      bytes: bytes.subarray(at.offset, at.offset + at.total),
    },
  };
}

function _decodeV3(bytes: Uint8Array, offset: number, available: number): FrameDecodeResult {
  if (available < FRAME_V3_HEADER_BYTES) {
    return { status: "incomplete", bytesNeeded: FRAME_V3_HEADER_BYTES - available };
  }
  const view = _viewAt(bytes, offset, FRAME_V3_HEADER_BYTES);
  const length = view.getUint32(V3_LENGTH_OFFSET, true);
  if (length > FRAME_PAYLOAD_BYTES_MAX) {
    return { status: "corrupt", reason: `implausible payload length ${length}` };
  }
  const total = frameV3ByteLength(length);
  if (available < total) return { status: "incomplete", bytesNeeded: total - available };
  if (_checkCrc(bytes, offset, FRAME_V3_HEADER_BYTES + length) !== "ok") {
    return { status: "corrupt", reason: "crc mismatch" };
  }
  const term = _getU64(view, V3_TERM_OFFSET);
  const ownershipEpoch = _getU64(view, V3_EPOCH_OFFSET);
  const lsn = _getU64(view, V3_LSN_OFFSET);
  const timestampMs = _getU64(view, V3_TIMESTAMP_OFFSET);
  if (term < 0 || ownershipEpoch < 0 || lsn < 0 || timestampMs < 0) {
    return { status: "corrupt", reason: "u64 field beyond 2^53-1" };
  }
  const fields: _HeaderFields = { version: FRAME_V3, term, ownershipEpoch, lsn, timestampMs };
  return _okFrame(bytes, { offset, headerBytes: FRAME_V3_HEADER_BYTES, length, total }, fields);
}

function _decodeV2(bytes: Uint8Array, offset: number, available: number): FrameDecodeResult {
  if (available < FRAME_V2_HEADER_BYTES) {
    return { status: "incomplete", bytesNeeded: FRAME_V2_HEADER_BYTES - available };
  }
  const view = _viewAt(bytes, offset, FRAME_V2_HEADER_BYTES);
  const length = view.getUint32(V2_LENGTH_OFFSET, true);
  if (length > FRAME_PAYLOAD_BYTES_MAX) {
    return { status: "corrupt", reason: `implausible payload length ${length}` };
  }
  const total = FRAME_V2_HEADER_BYTES + length + FRAME_CRC_BYTES;
  if (available < total) return { status: "incomplete", bytesNeeded: total - available };
  if (_checkCrc(bytes, offset, FRAME_V2_HEADER_BYTES + length) !== "ok") {
    return { status: "corrupt", reason: "crc mismatch" };
  }
  const lsn = _getU64(view, V2_LSN_OFFSET);
  const timestampMs = _getU64(view, V2_TIMESTAMP_OFFSET);
  if (lsn < 0 || timestampMs < 0) return { status: "corrupt", reason: "u64 field beyond 2^53-1" };
  const fields: _HeaderFields = { version: FRAME_V2, term: 0, ownershipEpoch: 0, lsn, timestampMs };
  return _okFrame(bytes, { offset, headerBytes: FRAME_V2_HEADER_BYTES, length, total }, fields);
}

function _decodeV1(bytes: Uint8Array, offset: number, available: number): FrameDecodeResult {
  if (available < FRAME_V1_HEADER_BYTES) {
    return { status: "incomplete", bytesNeeded: FRAME_V1_HEADER_BYTES - available };
  }
  const view = _viewAt(bytes, offset, FRAME_V1_HEADER_BYTES);
  const length = _getU64(view, V1_LENGTH_OFFSET);
  if (length < 0 || length > FRAME_PAYLOAD_BYTES_MAX) {
    return { status: "corrupt", reason: `implausible payload length` };
  }
  const total = FRAME_V1_HEADER_BYTES + length;
  if (available < total) return { status: "incomplete", bytesNeeded: total - available };
  const lsn = _getU64(view, V1_LSN_OFFSET);
  if (lsn < 0) return { status: "corrupt", reason: "u64 field beyond 2^53-1" };
  const fields: _HeaderFields = {
    version: FRAME_V1,
    term: 0,
    ownershipEpoch: 0,
    lsn,
    timestampMs: 0,
  };
  return _okFrame(bytes, { offset, headerBytes: FRAME_V1_HEADER_BYTES, length, total }, fields);
}

/** What a frame's header says, its CRC unchecked (see `frameHeaderAt`). */
export type FrameHeaderResult =
  | { status: "ok"; lsn: number; byteLength: number }
  | { status: "incomplete"; bytesNeeded: number }
  | { status: "corrupt"; reason: string };

/** "RDLW" read as a little-endian u32. */
const _MAGIC_U32 = 0x574c4452;

/**
 * Reads the header of the frame at `offset` of `bytes` (`view` spans the same bytes): its LSN and
 * whole length. Checks the magic, the version (v2 or v3), the length bound and the LSN's range,
 * with the same reasons as `decodeFrame`, but not the CRC: for a reader that serves the stored
 * bytes as they are and leaves the CRC to the receiver (a raw range read). A few reads per frame,
 * whatever its size.
 */
export function frameHeaderAt(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
): FrameHeaderResult {
  const available = bytes.byteLength - offset;
  // One u32 compare for the whole magic when it is all there (the common case).
  const whole = available >= FRAME_MAGIC_BYTES;
  const magicOk = whole
    ? view.getUint32(offset, true) === _MAGIC_U32
    : _magicMatches(bytes, offset, available);
  if (!magicOk) return { status: "corrupt", reason: "bad magic" };
  if (available <= FRAME_MAGIC_BYTES) {
    return { status: "incomplete", bytesNeeded: FRAME_MAGIC_BYTES + 1 - available };
  }
  const version = bytes[offset + FRAME_MAGIC_BYTES];
  const v3 = version === FRAME_V3;
  if (!v3 && version !== FRAME_V2) {
    const reason = version === FRAME_V1
      ? "v1 frame (no CRC) not accepted"
      : `unknown version ${version}`;
    return { status: "corrupt", reason };
  }
  const headerBytes = v3 ? FRAME_V3_HEADER_BYTES : FRAME_V2_HEADER_BYTES;
  if (available < headerBytes) {
    return { status: "incomplete", bytesNeeded: headerBytes - available };
  }
  const length = view.getUint32(offset + (v3 ? V3_LENGTH_OFFSET : V2_LENGTH_OFFSET), true);
  if (length > FRAME_PAYLOAD_BYTES_MAX) {
    return { status: "corrupt", reason: `implausible payload length ${length}` };
  }
  const lsn = _getU64(view, offset + (v3 ? V3_LSN_OFFSET : V2_LSN_OFFSET));
  if (lsn < 0) return { status: "corrupt", reason: "u64 field beyond 2^53-1" };
  return { status: "ok", lsn, byteLength: headerBytes + length + FRAME_CRC_BYTES };
}

/**
 * The whole length of the v3 frame at `offset` of `bytes` when its header is all there and sound
 * (magic, version, length bound, LSN below 2^53), else 0, and then `frameHeaderAt` says why. No
 * object per frame: for header walks over many frames (`frameV3LsnAt` reads the LSN).
 */
export function frameV3LengthAt(bytes: Uint8Array, view: DataView, offset: number): number {
  if (bytes.byteLength - offset < FRAME_V3_HEADER_BYTES) return 0;
  if (bytes[offset + FRAME_MAGIC_BYTES] !== FRAME_V3) return 0;
  if (view.getUint32(offset, true) !== _MAGIC_U32) return 0;
  const length = view.getUint32(offset + V3_LENGTH_OFFSET, true);
  if (length > FRAME_PAYLOAD_BYTES_MAX || frameV3LsnAt(view, offset) < 0) return 0;
  return frameV3ByteLength(length);
}

/** The LSN of the v3 frame at `offset` (-1 past 2^53-1), its header unchecked. */
export function frameV3LsnAt(view: DataView, offset: number): number {
  return _getU64(view, offset + V3_LSN_OFFSET);
}

/** A frame's LSN, time and length: what a scan that keeps no frame needs. */
export interface FrameHead {
  lsn: number;
  timestampMs: number;
  byteLength: number;
}

/**
 * Checks the whole v3 frame at `offset` as `decodeFrame` does (magic, version, length bound, CRC,
 * every u64 field below 2^53) without building it: fills `head` and returns the frame's length,
 * or returns 0 when it is not a whole, sound v3 frame (then `decodeFrame` says why).
 */
export function frameV3CheckedAt(
  bytes: Uint8Array,
  view: DataView,
  offset: number,
  head: FrameHead,
): number {
  const total = frameV3LengthAt(bytes, view, offset);
  if (total === 0 || bytes.byteLength - offset < total) return 0;
  const crcAt = offset + total - FRAME_CRC_BYTES;
  const computed = crc32(bytes.subarray(offset + FRAME_MAGIC_BYTES, crcAt));
  if (computed !== view.getUint32(crcAt, true)) return 0;
  const timestampMs = _getU64(view, offset + V3_TIMESTAMP_OFFSET);
  const sound = _getU64(view, offset + V3_TERM_OFFSET) >= 0 &&
    _getU64(view, offset + V3_EPOCH_OFFSET) >= 0 && timestampMs >= 0;
  if (!sound) return 0;
  head.lsn = frameV3LsnAt(view, offset);
  head.timestampMs = timestampMs;
  head.byteLength = total;
  return total;
}

/** A run of frames decoded in one pass (`decodeFrameRun`), and where and why it stopped. */
export interface FrameRun {
  frames: DecodedFrame[];
  /** Where the run ended: `bytes.byteLength` when every frame decoded. */
  offset: number;
  /** Why the frame at `offset` did not decode: what `decodeFrame` says there. */
  stop?: Exclude<FrameDecodeResult, { status: "ok" }>;
}

/**
 * Decodes the frames that fill `bytes` (a raw-frame pull's body) in one pass: one `DataView` for
 * the whole run, one CRC-32 per frame, each u64 read as two u32. Stops at the first frame that is
 * not "ok" and reports it exactly as `decodeFrame` does; v2 frames and anything unusual go
 * through `decodeFrame` itself, so the outcome is the same as calling it frame by frame.
 *
 * @example
 * ```ts
 * const run = decodeFrameRun(body);
 * if (run.stop) console.warn(`frame at ${run.offset}: ${run.stop.status}`);
 * ```
 */
export function decodeFrameRun(bytes: Uint8Array): FrameRun {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: DecodedFrame[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    let frame = _fastV3(bytes, view, offset);
    if (frame === undefined) {
      const result = decodeFrame(bytes, offset);
      if (result.status !== "ok") return { frames, offset, stop: result };
      frame = result.frame;
    }
    frames.push(frame);
    offset += frame.byteLength;
  }
  return { frames, offset };
}

/** The common case of `decodeFrameRun`: a whole, intact v3 frame; undefined for anything else. */
function _fastV3(bytes: Uint8Array, view: DataView, offset: number): DecodedFrame | undefined {
  const available = bytes.byteLength - offset;
  if (available < FRAME_V3_OVERHEAD_BYTES || bytes[offset + FRAME_MAGIC_BYTES] !== FRAME_V3) {
    return undefined;
  }
  if (view.getUint32(offset, true) !== _MAGIC_U32) return undefined;
  const length = view.getUint32(offset + V3_LENGTH_OFFSET, true);
  const total = frameV3ByteLength(length);
  if (length > FRAME_PAYLOAD_BYTES_MAX || available < total) return undefined;
  const crcOffset = offset + FRAME_V3_HEADER_BYTES + length;
  const computed = crc32(bytes.subarray(offset + FRAME_MAGIC_BYTES, crcOffset));
  if (computed !== view.getUint32(crcOffset, true)) return undefined;
  const term = _getU64(view, offset + V3_TERM_OFFSET);
  const ownershipEpoch = _getU64(view, offset + V3_EPOCH_OFFSET);
  const lsn = _getU64(view, offset + V3_LSN_OFFSET);
  const timestampMs = _getU64(view, offset + V3_TIMESTAMP_OFFSET);
  if (term < 0 || ownershipEpoch < 0 || lsn < 0 || timestampMs < 0) return undefined;
  return {
    version: FRAME_V3,
    term,
    ownershipEpoch,
    lsn,
    timestampMs,
    payload: bytes.subarray(offset + FRAME_V3_HEADER_BYTES, crcOffset),
    byteLength: total,
    bytes: bytes.subarray(offset, offset + total),
  };
}

/**
 * Decodes one whole frame and requires that it fills `bytes` exactly; throws `CorruptFrameError`
 * otherwise. For callers that received a frame on its own (a replica checking a pulled frame).
 */
export function decodeWholeFrame(bytes: Uint8Array, options: DecodeOptions = {}): DecodedFrame {
  const result = decodeFrame(bytes, 0, options);
  if (result.status === "incomplete") throw new CorruptFrameError("truncated frame");
  if (result.status === "corrupt") throw new CorruptFrameError(result.reason);
  if (result.frame.byteLength !== bytes.byteLength) {
    throw new CorruptFrameError("trailing bytes after frame");
  }
  return result.frame;
}
