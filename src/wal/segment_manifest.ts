/**
 * The manifest of a timeline directory, `segments.manifest`: the sealed segments (first LSN and
 * size in bytes), written atomically (`writeFileAtomic`) when a segment is sealed or pruned, so that
 * opening the spool need not stat every sealed segment. Only the directory listing is trusted: a
 * manifest that fails its CRC-32, or lists other sealed segments than the listing shows, is ignored
 * (the sizes are then read from metadata, and the manifest rewritten).
 *
 * Layout (little-endian): magic `FRSM` (4) | version u8 = 1 | 3 zero bytes | segments u32 |
 * per segment: first LSN u64, size u64 | CRC-32 u32 of all before.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { type FileSystem, joinPath, readFileIfExists, writeFileAtomic } from "../core/files.ts";
import { SEGMENT_MANIFEST_BYTES_MAX } from "../core/limits.ts";

/** File name of the manifest in a timeline directory (no segment file is named like it). */
export const SEGMENT_MANIFEST_FILE_NAME = "segments.manifest";

const _MAGIC = [0x46, 0x52, 0x53, 0x4d]; // "FRSM"
const _VERSION = 1;
const _HEADER_BYTES = 12;
const _ENTRY_BYTES = 16;
const _CRC_BYTES = 4;

/** One sealed segment as the manifest lists it. */
export interface ManifestEntry {
  firstLsn: number;
  sizeBytes: number;
}

/** Bytes of the manifest of `count` segments. */
export function manifestByteLength(count: number): number {
  return _HEADER_BYTES + count * _ENTRY_BYTES + _CRC_BYTES;
}

/** Encodes a manifest. Pure. */
export function encodeManifest(entries: readonly ManifestEntry[]): Uint8Array {
  const bytes = new Uint8Array(manifestByteLength(entries.length));
  const view = new DataView(bytes.buffer);
  bytes.set(_MAGIC, 0);
  bytes[4] = _VERSION;
  view.setUint32(8, entries.length, true);
  entries.forEach((entry, i) => {
    view.setBigUint64(_HEADER_BYTES + i * _ENTRY_BYTES, BigInt(entry.firstLsn), true);
    view.setBigUint64(_HEADER_BYTES + i * _ENTRY_BYTES + 8, BigInt(entry.sizeBytes), true);
  });
  const crcAt = bytes.byteLength - _CRC_BYTES;
  view.setUint32(crcAt, crc32(bytes.subarray(0, crcAt)), true);
  return bytes;
}

/** Decodes a manifest; undefined when it is damaged in any way. Pure. */
export function decodeManifest(bytes: Uint8Array): ManifestEntry[] | undefined {
  if (bytes.byteLength < manifestByteLength(0)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const crcAt = bytes.byteLength - _CRC_BYTES;
  if (view.getUint32(crcAt, true) !== crc32(bytes.subarray(0, crcAt))) return undefined;
  if (_MAGIC.some((byte, i) => bytes[i] !== byte) || bytes[4] !== _VERSION) return undefined;
  const count = view.getUint32(8, true);
  if (bytes.byteLength !== manifestByteLength(count)) return undefined;
  const entries: ManifestEntry[] = [];
  for (let i = 0; i < count; i++) {
    const firstLsn = Number(view.getBigUint64(_HEADER_BYTES + i * _ENTRY_BYTES, true));
    const sizeBytes = Number(view.getBigUint64(_HEADER_BYTES + i * _ENTRY_BYTES + 8, true));
    if (!Number.isSafeInteger(firstLsn) || firstLsn < 1 || !Number.isSafeInteger(sizeBytes)) {
      return undefined;
    }
    entries.push({ firstLsn, sizeBytes });
  }
  return entries;
}

/**
 * The sizes of the sealed segments `sealedLsns` (the listing's, oldest first) from the manifest
 * of `dir`, or undefined when there is none or it lists anything else. Needs read access.
 */
export async function readManifestSizes(
  fs: FileSystem,
  dir: string,
  sealedLsns: readonly number[],
): Promise<number[] | undefined> {
  const path = joinPath(dir, SEGMENT_MANIFEST_FILE_NAME);
  const bytes = await readFileIfExists(fs, path, SEGMENT_MANIFEST_BYTES_MAX);
  const entries = bytes === undefined ? undefined : decodeManifest(bytes);
  if (entries === undefined || entries.length !== sealedLsns.length) return undefined;
  if (entries.some((entry, i) => entry.firstLsn !== sealedLsns[i])) return undefined;
  return entries.map((entry) => entry.sizeBytes);
}

/**
 * Replaces the manifest of `dir` with `entries` (`writeFileAtomic`; `syncDir: false` when the
 * caller fsyncs `dir` right after); none is kept past `SEGMENT_MANIFEST_BYTES_MAX` (an open then
 * reads sizes from metadata). Needs read and write access to `dir`.
 */
export async function writeManifest(
  fs: FileSystem,
  dir: string,
  entries: readonly ManifestEntry[],
  options: { syncDir?: boolean } = {},
): Promise<void> {
  const path = joinPath(dir, SEGMENT_MANIFEST_FILE_NAME);
  if (manifestByteLength(entries.length) > SEGMENT_MANIFEST_BYTES_MAX) {
    await fs.remove(path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    return;
  }
  await writeFileAtomic(fs, path, encodeManifest(entries), options);
}
