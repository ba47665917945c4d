/**
 * The clean shutdown record of a timeline directory, `clean.shutdown` (like PostgreSQL's control
 * file saying "shut down"): written by a clean close, it describes the newest segment as it was
 * left (name, durable size, last record, its seek index, its append-time samples), so the next
 * open can skip the scan of that segment (SPEC.md section 3, "Repair on open").
 *
 * Why that is safe: a clean close writes it only after every append was made durable and none can
 * follow (`writeFileAtomic`: temp, fdatasync, rename, directory fsync), and it is removed, durably,
 * before the first byte is written to any segment again (`SegmentSet.writeAtEnd`, truncations).
 * So a crash after new writes always finds no record, and the full scan with torn-tail repair
 * runs. Never trusted blindly: a record that fails its CRC-32, names another newest segment, a
 * size the file no longer has, or whose last frame is not where it says (a whole frame with a good
 * CRC and the last LSN, ending at that size) is ignored, and the newest segment is scanned.
 *
 * Layout (little-endian): magic `FRCS` (4) | version u8 = 1 | 3 zero bytes | first LSN u64 |
 * last LSN u64 | size u64 | last frame offset u64 | checkpoints u32 | samples u32 | per
 * checkpoint: offset u64 | per sample: first LSN u64, time ms u64 | CRC-32 u32 of all before.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import {
  type FileHandle,
  type FileSystem,
  joinPath,
  readFileIfExists,
  writeFileAtomic,
} from "../core/files.ts";
import { CLEAN_SHUTDOWN_BYTES_MAX, FRAME_PAYLOAD_BYTES_MAX } from "../core/limits.ts";
import { decodeFrame, frameV3ByteLength } from "./frame.ts";
import { checkpointCount } from "./seek_sidecar.ts";

/** File name of the record in a timeline directory (no segment file is named like it). */
export const CLEAN_SHUTDOWN_FILE_NAME = "clean.shutdown";

const _MAGIC = [0x46, 0x52, 0x43, 0x53]; // "FRCS"
const _VERSION = 1;
const _VERSION_OFFSET = 4;
const _FIRST_LSN_OFFSET = 8;
const _LAST_LSN_OFFSET = 16;
const _SIZE_OFFSET = 24;
const _LAST_FRAME_AT_OFFSET = 32;
const _COUNTS_OFFSET = 40;
const _HEADER_BYTES = 48;
const _U64_BYTES = 8;
const _SAMPLE_BYTES = 16;
const _CRC_BYTES = 4;

/** The newest segment as a clean close left it. */
export interface CleanShutdown {
  firstLsn: number;
  /** `firstLsn - 1` when the segment holds no record. */
  lastLsn: number;
  sizeBytes: number;
  /** Where the last record's frame starts (0 when there is none). */
  lastFrameOffset: number;
  /** Seek-index checkpoint offsets: records 0, 64, 128 ... */
  offsets: number[];
  /** Append-time samples (`CommitTimes`) of the segment's records, oldest first. */
  samples: { lsns: number[]; times: number[] };
}

/** Bytes of the encoded record. */
export function cleanShutdownByteLength(record: CleanShutdown): number {
  const samples = record.samples.lsns.length;
  return _HEADER_BYTES + record.offsets.length * _U64_BYTES + samples * _SAMPLE_BYTES + _CRC_BYTES;
}

/** Encodes a record. Pure. */
export function encodeCleanShutdown(record: CleanShutdown): Uint8Array {
  const bytes = new Uint8Array(cleanShutdownByteLength(record));
  const view = new DataView(bytes.buffer);
  const setU64 = (at: number, value: number) => view.setBigUint64(at, BigInt(value), true);
  bytes.set(_MAGIC, 0);
  bytes[_VERSION_OFFSET] = _VERSION;
  setU64(_FIRST_LSN_OFFSET, record.firstLsn);
  setU64(_LAST_LSN_OFFSET, record.lastLsn);
  setU64(_SIZE_OFFSET, record.sizeBytes);
  setU64(_LAST_FRAME_AT_OFFSET, record.lastFrameOffset);
  view.setUint32(_COUNTS_OFFSET, record.offsets.length, true);
  view.setUint32(_COUNTS_OFFSET + 4, record.samples.lsns.length, true);
  let at = _HEADER_BYTES;
  for (const offset of record.offsets) {
    setU64(at, offset);
    at += _U64_BYTES;
  }
  record.samples.lsns.forEach((lsn, i) => {
    setU64(at, lsn);
    setU64(at + _U64_BYTES, record.samples.times[i]!);
    at += _SAMPLE_BYTES;
  });
  view.setUint32(at, crc32(bytes.subarray(0, at)), true);
  return bytes;
}

/** Decodes a record and checks it is self-consistent; else says why it cannot be used. Pure. */
export function decodeCleanShutdown(bytes: Uint8Array): CleanShutdown | { reason: string } {
  if (bytes.byteLength < _HEADER_BYTES + _CRC_BYTES) return { reason: "too short" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.byteLength - _CRC_BYTES;
  if (view.getUint32(crcAt, true) !== crc32(bytes.subarray(0, crcAt))) return { reason: "bad CRC" };
  if (_MAGIC.some((byte, i) => bytes[i] !== byte) || bytes[_VERSION_OFFSET] !== _VERSION) {
    return { reason: "bad magic or version" };
  }
  // Two u32 halves: no BigInt per checkpoint.
  const u64 = (at: number) => view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  const checkpoints = view.getUint32(_COUNTS_OFFSET, true);
  const sampleCount = view.getUint32(_COUNTS_OFFSET + 4, true);
  if (crcAt !== _HEADER_BYTES + checkpoints * _U64_BYTES + sampleCount * _SAMPLE_BYTES) {
    return { reason: "bad length" };
  }
  const offsets: number[] = [];
  for (let i = 0; i < checkpoints; i++) offsets.push(u64(_HEADER_BYTES + i * _U64_BYTES));
  const samples = { lsns: [] as number[], times: [] as number[] };
  const samplesAt = _HEADER_BYTES + checkpoints * _U64_BYTES;
  for (let i = 0; i < sampleCount; i++) {
    samples.lsns.push(u64(samplesAt + i * _SAMPLE_BYTES));
    samples.times.push(u64(samplesAt + i * _SAMPLE_BYTES + _U64_BYTES));
  }
  const record = {
    firstLsn: u64(_FIRST_LSN_OFFSET),
    lastLsn: u64(_LAST_LSN_OFFSET),
    sizeBytes: u64(_SIZE_OFFSET),
    lastFrameOffset: u64(_LAST_FRAME_AT_OFFSET),
    offsets,
    samples,
  };
  const reason = _inconsistency(record);
  return reason === undefined ? record : { reason };
}

function _inconsistency(record: CleanShutdown): string | undefined {
  const { firstLsn, lastLsn, sizeBytes, lastFrameOffset, offsets } = record;
  const { lsns, times } = record.samples;
  const numbers = [firstLsn, lastLsn, sizeBytes, lastFrameOffset, ...lsns, ...times];
  if (!numbers.every(Number.isSafeInteger) || firstLsn < 1 || lastLsn < firstLsn - 1) {
    return `implausible LSN ${firstLsn}..${lastLsn} or size ${sizeBytes}`;
  }
  const records = lastLsn - firstLsn + 1;
  if (offsets.length !== checkpointCount(records)) return `${offsets.length} checkpoints`;
  if (records === 0) return sizeBytes === 0 ? undefined : `no record in ${sizeBytes} bytes`;
  if (lastFrameOffset >= sizeBytes) return `last frame at ${lastFrameOffset} of ${sizeBytes}`;
  for (const [i, offset] of offsets.entries()) {
    const rising = i === 0 ? offset === 0 : offset > offsets[i - 1]!;
    if (!rising || offset > lastFrameOffset) return `checkpoint ${i} at offset ${offset}`;
  }
  return undefined;
}

/**
 * The record of `dir` (`present`: a file is there, even a damaged one; `record`: it decoded).
 * Needs read access.
 */
export async function readCleanShutdown(
  fs: FileSystem,
  dir: string,
): Promise<{ present: boolean; record: CleanShutdown | undefined }> {
  const path = joinPath(dir, CLEAN_SHUTDOWN_FILE_NAME);
  const bytes = await readFileIfExists(fs, path, CLEAN_SHUTDOWN_BYTES_MAX);
  // Missing, or past the bound (not a record this code wrote: present, unusable).
  if (bytes === undefined) return { present: await _exists(fs, path), record: undefined };
  const decoded = decodeCleanShutdown(bytes);
  return { present: true, record: "reason" in decoded ? undefined : decoded };
}

/**
 * Why `record` does not describe the newest segment `firstLsn` open in `file`, or undefined when
 * it does: same segment, same size, and its last frame whole where the record says (one read of
 * that frame; nothing else is read). Needs read access to the segment.
 */
export async function cleanShutdownMismatch(
  file: FileHandle,
  record: CleanShutdown,
  firstLsn: number,
): Promise<string | undefined> {
  if (record.firstLsn !== firstLsn) return `it names segment ${record.firstLsn}`;
  const size = await file.size();
  if (size !== record.sizeBytes) return `the segment has ${size} bytes, not ${record.sizeBytes}`;
  if (record.lastLsn < record.firstLsn) return undefined;
  const lastBytes = size - record.lastFrameOffset;
  if (lastBytes > frameV3ByteLength(FRAME_PAYLOAD_BYTES_MAX)) return "its last frame is too long";
  const last = new Uint8Array(lastBytes);
  const got = await file.readAt(last, record.lastFrameOffset);
  const decoded = decodeFrame(last.subarray(0, got));
  const whole = decoded.status === "ok" && decoded.frame.byteLength === last.byteLength;
  if (!whole || decoded.frame.lsn !== record.lastLsn) return "its last frame does not match";
  return undefined;
}

/**
 * Writes the record (temp, fdatasync, rename, directory fsync); a record past
 * `CLEAN_SHUTDOWN_BYTES_MAX` is not written (the next open scans). Needs read and write access.
 */
export async function writeCleanShutdown(
  fs: FileSystem,
  dir: string,
  record: CleanShutdown,
): Promise<void> {
  if (cleanShutdownByteLength(record) > CLEAN_SHUTDOWN_BYTES_MAX) return;
  await writeFileAtomic(fs, joinPath(dir, CLEAN_SHUTDOWN_FILE_NAME), encodeCleanShutdown(record));
}

/**
 * Removes the record and fsyncs `dir`, so no later open can trust it once a segment changes.
 * Needs read and write access to `dir`.
 */
export async function removeCleanShutdown(fs: FileSystem, dir: string): Promise<void> {
  try {
    await fs.remove(joinPath(dir, CLEAN_SHUTDOWN_FILE_NAME));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await fs.syncDir(dir);
}

async function _exists(fs: FileSystem, path: string): Promise<boolean> {
  try {
    await fs.sizeOf(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
