/**
 * The seek index of a sealed segment, kept beside it in `<first lsn>.idx` (SPEC.md section 3: "its
 * seek index is built on first read (or persisted)"), so that the first read from the middle of a
 * sealed segment after a start costs no scan of the segment; and the SHA-256 of its bytes, which
 * names it as an immutable object (SPEC.md 13.2), computed once. Written (temp, fdatasync, rename,
 * directory fsync) when the segment is sealed, and after a verifying scan rebuilt a missing or
 * damaged one (or one of version 1, which has no digest); deleted with its segment.
 *
 * Never trusted blindly: the file carries a CRC-32 over everything before it and the segment's
 * first LSN, last LSN and size; a sidecar that fails its CRC, or names another first LSN, last LSN
 * or size than the segment has now, or whose checkpoints are not exactly those a segment of that
 * many records has (one every 64 records, offsets rising from 0 and inside the file) is ignored,
 * and the index is rebuilt by a scan.
 *
 * Layout (little-endian): magic `FRIX` (4) | version u8 = 2 | 3 zero bytes | first LSN u64 |
 * last LSN u64 | size u64 | SHA-256 of the segment (32) | checkpoints u32 | per checkpoint:
 * offset u64 | CRC-32 u32 of all before.
 * The checkpoint LSNs are not stored: in a segment they are first LSN + 64·i.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { crc32 } from "node:zlib";
import type { FileHandle, FileSystem } from "../core/files.ts";
import { SEEK_INDEX_INTERVAL_RECORDS, SEEK_SIDECAR_BYTES_MAX } from "../core/limits.ts";

const _MAGIC = [0x46, 0x52, 0x49, 0x58]; // "FRIX"
const _VERSION = 2;
const _HEADER_BYTES = 68;
const _FIRST_LSN_OFFSET = 8;
const _LAST_LSN_OFFSET = 16;
const _SIZE_OFFSET = 24;
const _SHA256_OFFSET = 32;
const _SHA256_BYTES = 32;
const _COUNT_OFFSET = 64;
const _CHECKPOINT_BYTES = 8;
const _CRC_BYTES = 4;

/** What a sidecar describes: the segment it belongs to, and its checkpoint offsets. */
export interface SidecarIndex {
  firstLsn: number;
  lastLsn: number;
  sizeBytes: number;
  /** SHA-256 of the segment's bytes, 64 lowercase hex digits. */
  sha256: string;
  /** Byte offset of the records with ordinal 0, 64, 128 ... */
  offsets: number[];
}

/** The sidecar's path for a segment path (`….wal` → `….idx`). */
export function sidecarPath(segmentPath: string): string {
  return segmentPath.replace(/\.wal$/, ".idx");
}

/** Checkpoints a segment of `records` records has: one per 64, the first at ordinal 0. */
export function checkpointCount(records: number): number {
  return Math.ceil(records / SEEK_INDEX_INTERVAL_RECORDS);
}

/** Bytes of the sidecar of a segment of `records` records. */
export function sidecarByteLength(records: number): number {
  return _HEADER_BYTES + checkpointCount(records) * _CHECKPOINT_BYTES + _CRC_BYTES;
}

/**
 * The sidecar of `segment`, decoded and checked against it (`decodeSidecar`), or undefined when
 * it is missing or cannot be used. One read of the size it must have (and a byte more, to see a
 * longer file): no stat, no copy. Needs read access to the segment's directory.
 */
export async function readSidecar(
  fs: FileSystem,
  segment: { path: string; firstLsn: number; lastLsn: number; sizeBytes: number },
): Promise<{ offsets: number[]; sha256: string } | undefined> {
  const expectedBytes = sidecarByteLength(segment.lastLsn - segment.firstLsn + 1);
  if (expectedBytes > SEEK_SIDECAR_BYTES_MAX) return undefined;
  let file: FileHandle;
  try {
    file = await fs.open(sidecarPath(segment.path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const bytes = new Uint8Array(expectedBytes + 1);
  let got: number;
  try {
    got = await file.readAt(bytes, 0);
  } finally {
    file.close();
  }
  if (got !== expectedBytes) return undefined;
  const decoded = decodeSidecar(bytes.subarray(0, got), segment);
  return "reason" in decoded ? undefined : decoded;
}

/** Encodes a sidecar. Pure. */
export function encodeSidecar(index: SidecarIndex): Uint8Array {
  const bytes = new Uint8Array(
    _HEADER_BYTES + index.offsets.length * _CHECKPOINT_BYTES + _CRC_BYTES,
  );
  const view = new DataView(bytes.buffer);
  bytes.set(_MAGIC, 0);
  bytes[4] = _VERSION;
  view.setBigUint64(_FIRST_LSN_OFFSET, BigInt(index.firstLsn), true);
  view.setBigUint64(_LAST_LSN_OFFSET, BigInt(index.lastLsn), true);
  view.setBigUint64(_SIZE_OFFSET, BigInt(index.sizeBytes), true);
  assert.match(index.sha256, /^[0-9a-f]{64}$/);
  bytes.set(index.sha256.match(/../g)!.map((pair) => parseInt(pair, 16)), _SHA256_OFFSET);
  view.setUint32(_COUNT_OFFSET, index.offsets.length, true);
  index.offsets.forEach((offset, i) => {
    view.setBigUint64(_HEADER_BYTES + i * _CHECKPOINT_BYTES, BigInt(offset), true);
  });
  const crcAt = bytes.byteLength - _CRC_BYTES;
  view.setUint32(crcAt, crc32(bytes.subarray(0, crcAt)), true);
  return bytes;
}

/**
 * Decodes a sidecar and checks it against the segment it must describe; returns the checkpoint
 * offsets and the segment's digest, or a reason why it cannot be used. Pure.
 */
export function decodeSidecar(
  bytes: Uint8Array,
  expected: { firstLsn: number; lastLsn: number; sizeBytes: number },
): { offsets: number[]; sha256: string } | { reason: string } {
  if (bytes.byteLength < _HEADER_BYTES + _CRC_BYTES || bytes.byteLength > SEEK_SIDECAR_BYTES_MAX) {
    return { reason: `implausible size ${bytes.byteLength}` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.byteLength - _CRC_BYTES;
  if (view.getUint32(crcAt, true) !== crc32(bytes.subarray(0, crcAt))) return { reason: "bad CRC" };
  if (_MAGIC.some((byte, i) => bytes[i] !== byte) || bytes[4] !== _VERSION) {
    return { reason: "bad magic or version" };
  }
  const firstLsn = Number(view.getBigUint64(_FIRST_LSN_OFFSET, true));
  const lastLsn = Number(view.getBigUint64(_LAST_LSN_OFFSET, true));
  const sizeBytes = Number(view.getBigUint64(_SIZE_OFFSET, true));
  if (
    firstLsn !== expected.firstLsn || lastLsn !== expected.lastLsn ||
    sizeBytes !== expected.sizeBytes
  ) {
    return { reason: `describes LSN ${firstLsn}..${lastLsn} in ${sizeBytes} bytes` };
  }
  const count = view.getUint32(_COUNT_OFFSET, true);
  if (count !== checkpointCount(lastLsn - firstLsn + 1)) return { reason: `${count} checkpoints` };
  if (crcAt !== _HEADER_BYTES + count * _CHECKPOINT_BYTES) return { reason: "bad length" };
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) {
    const at = _HEADER_BYTES + i * _CHECKPOINT_BYTES;
    // Two u32 halves: a BigInt per checkpoint costs a cold read ten thousand allocations.
    const offset = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
    const previous = offsets[i - 1];
    const rising = previous === undefined ? offset === 0 : offset > previous;
    if (!rising || offset >= sizeBytes) return { reason: `checkpoint ${i} at offset ${offset}` };
    offsets.push(offset);
  }
  const sha256 = Array.from(
    bytes.subarray(_SHA256_OFFSET, _SHA256_OFFSET + _SHA256_BYTES),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return { offsets, sha256 };
}
