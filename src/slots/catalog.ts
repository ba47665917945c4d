/**
 * The binary slot catalog `RDSLOT01` (SPEC.md section 4, "Catalog file"): v3 encode, v1, v2 and v3
 * decode.
 *
 * Pure functions over `Uint8Array`, little-endian, no I/O. Strings are a u32 byte length and UTF-8;
 * an option is a tag byte (0 none, 1 some) and then the value. A u128 is stored as a low u64 and a
 * high u64; ferry keeps it as a JS number, so the high word must be 0. The CRC is IEEE CRC-32
 * (zlib's) over every byte before it, magic included. The fields themselves are read and written by
 * catalog_fields.ts; this module owns the layout and the checks.
 *
 * ```
 * "RDSLOT01" | u16 version | u64 timeline | [v3: u64 generation] | u32 slot count
 * per slot:  string replica_id | u64 restart | u64 confirmed_write | u64 confirmed_flush
 *            | u64 confirmed_apply | u8 active
 *            | [v2+: u128 last_seen_ms | option string reason | option u128 invalidated_at_ms]
 * u32 crc
 * ```
 *
 * ferry writes version 3 (version 2 plus the generation) and reads 1, 2 and 3.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { crc32 } from "node:zlib";
import { CatalogFormatError } from "../core/errors.ts";
import { CATALOG_REPLICA_ID_BYTES_MAX } from "../core/limits.ts";
import {
  CatalogReader,
  CatalogWriter,
  TAG_BYTES,
  U128_BYTES,
  U16_BYTES,
  U32_BYTES,
  U32_MAX,
  U64_BYTES,
  U8_BYTES,
} from "./catalog_fields.ts";
import { INVALIDATION_REASONS, type InvalidationReason, type Slot } from "./slot.ts";

// The replica id bound lives in limits.ts; it is re-exported as part of the format's public face.
export { CATALOG_REPLICA_ID_BYTES_MAX };

/** ASCII "RDSLOT01". */
export const CATALOG_MAGIC: Readonly<Uint8Array> = new TextEncoder().encode("RDSLOT01");
export const CATALOG_MAGIC_BYTES = 8;
export const CATALOG_VERSION_V1 = 1;
export const CATALOG_VERSION_V2 = 2;
export const CATALOG_VERSION_V3 = 3;
/** The version `encodeCatalog` writes. */
export const CATALOG_VERSION_CURRENT = CATALOG_VERSION_V3;
export const CATALOG_CRC_BYTES = 4;

// Header field offsets (from the start of the catalog).
export const CATALOG_VERSION_OFFSET = 8;
export const CATALOG_TIMELINE_OFFSET = 10;
/** v3 only; in v1 and v2 the slot count sits here. */
export const CATALOG_V3_GENERATION_OFFSET = 18;
export const CATALOG_V2_COUNT_OFFSET = 18;
export const CATALOG_V3_COUNT_OFFSET = 26;
/** Bytes before the first slot. */
export const CATALOG_V2_HEADER_BYTES = 22;
export const CATALOG_V3_HEADER_BYTES = 30;
/** Fewest bytes any catalog has: a v1 or v2 header, no slots, the CRC. */
export const CATALOG_BYTES_MIN = CATALOG_V2_HEADER_BYTES + CATALOG_CRC_BYTES;

/** Fewest bytes a v1 slot takes: an empty id, four u64 positions and the active byte. */
const SLOT_V1_BYTES_MIN = U32_BYTES + 4 * U64_BYTES + U8_BYTES;
/** Fewest bytes a v2 or v3 slot takes: a v1 slot, last seen, and two empty options. */
const SLOT_V2_BYTES_MIN = SLOT_V1_BYTES_MIN + U128_BYTES + 2 * TAG_BYTES;

// The layout above, checked when this module loads so that a bad edit fails at once.
assert.equal(CATALOG_MAGIC.byteLength, CATALOG_MAGIC_BYTES);
assert.equal(CATALOG_VERSION_OFFSET, CATALOG_MAGIC_BYTES);
assert.equal(CATALOG_TIMELINE_OFFSET, CATALOG_VERSION_OFFSET + U16_BYTES);
assert.equal(CATALOG_V3_GENERATION_OFFSET, CATALOG_TIMELINE_OFFSET + U64_BYTES);
assert.equal(CATALOG_V2_COUNT_OFFSET, CATALOG_TIMELINE_OFFSET + U64_BYTES);
assert.equal(CATALOG_V3_COUNT_OFFSET, CATALOG_V3_GENERATION_OFFSET + U64_BYTES);
assert.equal(CATALOG_V2_HEADER_BYTES, CATALOG_V2_COUNT_OFFSET + U32_BYTES);
assert.equal(CATALOG_V3_HEADER_BYTES, CATALOG_V3_COUNT_OFFSET + U32_BYTES);

/** What a catalog holds; what `encodeCatalog` writes. */
export interface CatalogContents {
  timeline: number;
  generation: number;
  slots: readonly Slot[];
}

/** A decoded catalog. `generation` is 0 for versions 1 and 2, which do not store one. */
export interface DecodedCatalog {
  version: 1 | 2 | 3;
  timeline: number;
  generation: number;
  slots: Slot[];
}

const utf8Encoder = new TextEncoder();

function _checkU53(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CatalogFormatError(`${field} must be an integer in 0..2^53-1, got ${value}`);
  }
}

function _checkSlot(slot: Slot, timeline: number): void {
  const name = `slot ${JSON.stringify(slot.replicaId)}`;
  if (typeof slot.replicaId !== "string" || !slot.replicaId.isWellFormed()) {
    throw new CatalogFormatError(`${name}: replica id is not well-formed Unicode`);
  }
  if (slot.timeline !== timeline) {
    throw new CatalogFormatError(
      `${name}: timeline ${slot.timeline} differs from the catalog's ${timeline}`,
    );
  }
  _checkU53(slot.restartLsn, `${name}: restart_lsn`);
  _checkU53(slot.confirmedWriteLsn, `${name}: confirmed_write`);
  _checkU53(slot.confirmedFlushLsn, `${name}: confirmed_flush`);
  _checkU53(slot.confirmedApplyLsn, `${name}: confirmed_apply`);
  _checkPositionOrder(slot, name);
  _checkU53(slot.lastSeenAtUnixMs, `${name}: last_seen_ms`);
  if (slot.invalidatedAtUnixMs !== undefined) {
    _checkU53(slot.invalidatedAtUnixMs, `${name}: invalidated_at_ms`);
  }
  if (
    slot.invalidationReason !== undefined &&
    !INVALIDATION_REASONS.includes(slot.invalidationReason)
  ) {
    throw new CatalogFormatError(
      `${name}: unknown invalidation reason ${JSON.stringify(slot.invalidationReason)}`,
    );
  }
}

function _checkPositionOrder(slot: Slot, name: string): void {
  const apply = slot.confirmedApplyLsn;
  const flush = slot.confirmedFlushLsn;
  const write = slot.confirmedWriteLsn;
  if (!(apply <= flush && flush <= write)) {
    throw new CatalogFormatError(
      `${name}: positions out of order (apply ${apply}, flush ${flush}, write ${write}); ` +
        `confirmed_apply <= confirmed_flush <= confirmed_write must hold`,
    );
  }
}

/** Validates the whole catalog and returns its slots sorted by replica id. */
function _validatedSlots(catalog: CatalogContents): Slot[] {
  _checkU53(catalog.timeline, "catalog timeline");
  _checkU53(catalog.generation, "catalog generation");
  const seen = new Set<string>();
  for (const slot of catalog.slots) {
    _checkSlot(slot, catalog.timeline);
    if (seen.has(slot.replicaId)) {
      throw new CatalogFormatError(`duplicate replica id ${JSON.stringify(slot.replicaId)}`);
    }
    seen.add(slot.replicaId);
  }
  if (catalog.slots.length > U32_MAX) {
    throw new CatalogFormatError(`${catalog.slots.length} slots do not fit a u32 count`);
  }
  return [...catalog.slots].sort((a, b) =>
    a.replicaId < b.replicaId ? -1 : a.replicaId > b.replicaId ? 1 : 0
  );
}

function _slotByteLength(idBytes: Uint8Array, slot: Slot): number {
  let length = SLOT_V2_BYTES_MIN + idBytes.byteLength;
  if (slot.invalidationReason !== undefined) {
    length += U32_BYTES + utf8Encoder.encode(slot.invalidationReason).byteLength;
  }
  if (slot.invalidatedAtUnixMs !== undefined) length += U128_BYTES;
  return length;
}

function _writeSlot(writer: CatalogWriter, idBytes: Uint8Array, slot: Slot): void {
  writer.string(idBytes);
  writer.u64(slot.restartLsn);
  writer.u64(slot.confirmedWriteLsn);
  writer.u64(slot.confirmedFlushLsn);
  writer.u64(slot.confirmedApplyLsn);
  // The active byte is derived, never trusted: a slot is active exactly when it is not invalidated.
  writer.u8(slot.invalidationReason === undefined ? 1 : 0);
  writer.u128(slot.lastSeenAtUnixMs);
  writer.tag(slot.invalidationReason !== undefined);
  if (slot.invalidationReason !== undefined) {
    writer.string(utf8Encoder.encode(slot.invalidationReason));
  }
  writer.tag(slot.invalidatedAtUnixMs !== undefined);
  if (slot.invalidatedAtUnixMs !== undefined) writer.u128(slot.invalidatedAtUnixMs);
}

/**
 * Encodes a catalog as `RDSLOT01` version 3, slots sorted by replica id. Validates first and throws
 * `CatalogFormatError` for a duplicate replica id, a slot on another timeline, positions that break
 * apply <= flush <= write, a number that is not an integer in 0..2^53-1, a replica id that is not
 * well-formed Unicode or longer than `CATALOG_REPLICA_ID_BYTES_MAX` bytes, or an unknown reason.
 * The slots' `active` field is not read: it is written as "not invalidated".
 *
 * @example
 * ```ts
 * const bytes = encodeCatalog({ timeline: 1, generation: 4, slots: [] });
 * decodeCatalog(bytes).generation; // 4
 * ```
 */
export function encodeCatalog(catalog: CatalogContents): Uint8Array {
  const slots = _validatedSlots(catalog);
  const ids = slots.map((slot) => utf8Encoder.encode(slot.replicaId));
  let byteLength = CATALOG_V3_HEADER_BYTES + CATALOG_CRC_BYTES;
  slots.forEach((slot, i) => {
    const idBytes = ids[i]!;
    if (idBytes.byteLength > CATALOG_REPLICA_ID_BYTES_MAX) {
      throw new CatalogFormatError(
        `slot ${JSON.stringify(slot.replicaId)}: replica id of ${idBytes.byteLength} bytes ` +
          `exceeds ${CATALOG_REPLICA_ID_BYTES_MAX} bytes`,
      );
    }
    byteLength += _slotByteLength(idBytes, slot);
  });
  const writer = new CatalogWriter(byteLength);
  writer.raw(CATALOG_MAGIC);
  writer.u16(CATALOG_VERSION_CURRENT);
  writer.u64(catalog.timeline);
  writer.u64(catalog.generation);
  writer.u32(slots.length);
  slots.forEach((slot, i) => _writeSlot(writer, ids[i]!, slot));
  const crcOffset = byteLength - CATALOG_CRC_BYTES;
  assert.equal(writer.offset, crcOffset, "catalog size computed wrongly");
  writer.u32(crc32(writer.bytes.subarray(0, crcOffset)));
  return writer.bytes;
}

function _checkMagic(bytes: Uint8Array): void {
  for (let i = 0; i < CATALOG_MAGIC_BYTES; i++) {
    if (bytes[i] !== CATALOG_MAGIC[i]) {
      throw new CatalogFormatError(`bad magic: not an RDSLOT01 catalog (byte ${i} differs)`);
    }
  }
}

function _storedCrcMatches(bytes: Uint8Array, crcOffset: number): boolean {
  if (crcOffset + CATALOG_CRC_BYTES > bytes.byteLength) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset + crcOffset, CATALOG_CRC_BYTES);
  return view.getUint32(0, true) === crc32(bytes.subarray(0, crcOffset));
}

/**
 * Checks the CRC in the last four bytes. On a mismatch, tells apart bytes appended after a whole,
 * CRC-valid catalog (found by parsing the fields, every read bounds-checked) from damage.
 */
function _checkCrc(bytes: Uint8Array): void {
  const crcOffset = bytes.byteLength - CATALOG_CRC_BYTES;
  if (_storedCrcMatches(bytes, crcOffset)) return;
  const end = _structuralEnd(bytes);
  if (end !== undefined && _storedCrcMatches(bytes, end)) {
    throw new CatalogFormatError(
      `${bytes.byteLength - end - CATALOG_CRC_BYTES} trailing bytes after the CRC at offset ${end}`,
      { offset: end + CATALOG_CRC_BYTES },
    );
  }
  const stored = new DataView(bytes.buffer, bytes.byteOffset + crcOffset).getUint32(0, true);
  const computed = crc32(bytes.subarray(0, crcOffset));
  throw new CatalogFormatError(
    `bad CRC: stored 0x${stored.toString(16).padStart(8, "0")}, ` +
      `computed 0x${computed.toString(16).padStart(8, "0")}`,
  );
}

/** Where the fields of `bytes` end when parsed without trusting the CRC; undefined if they do not parse. */
function _structuralEnd(bytes: Uint8Array): number | undefined {
  const reader = new CatalogReader(bytes, CATALOG_VERSION_OFFSET);
  try {
    _readCatalog(reader);
  } catch (error) {
    if (error instanceof CatalogFormatError) return undefined;
    throw error;
  }
  return reader.offset;
}

function _readVersion(reader: CatalogReader): 1 | 2 | 3 {
  const version = reader.u16("version");
  if (
    version !== CATALOG_VERSION_V1 && version !== CATALOG_VERSION_V2 &&
    version !== CATALOG_VERSION_V3
  ) {
    throw new CatalogFormatError(`unknown catalog version ${version} (ferry reads 1, 2 and 3)`);
  }
  return version;
}

function _checkSlotCount(count: number, reader: CatalogReader, version: number): void {
  const slotBytesMin = version === CATALOG_VERSION_V1 ? SLOT_V1_BYTES_MIN : SLOT_V2_BYTES_MIN;
  if (count * slotBytesMin > reader.remaining) {
    throw new CatalogFormatError(
      `absurd slot count ${count}: ${reader.remaining} remaining bytes hold at most ` +
        `${Math.floor(reader.remaining / slotBytesMin)} slots`,
    );
  }
}

function _readReason(reader: CatalogReader, field: string): InvalidationReason | undefined {
  if (!reader.tag(field)) return undefined;
  // No bound beyond the reader's own: reddb accepts (and ignores) an unknown reason of any length.
  const text = reader.string(field, U32_MAX);
  // reddb decodes an unknown reason string as none.
  return INVALIDATION_REASONS.find((reason) => reason === text);
}

function _readSlot(
  reader: CatalogReader,
  version: 1 | 2 | 3,
  timeline: number,
  index: number,
): Slot {
  const name = `slot ${index}`;
  const replicaId = reader.string(`${name} replica id`, CATALOG_REPLICA_ID_BYTES_MAX);
  const restartLsn = reader.u64(`${name} restart_lsn`);
  const confirmedWriteLsn = reader.u64(`${name} confirmed_write`);
  const confirmedFlushLsn = reader.u64(`${name} confirmed_flush`);
  const confirmedApplyLsn = reader.u64(`${name} confirmed_apply`);
  const activeOffset = reader.offset;
  const activeByte = reader.u8(`${name} active`);
  if (activeByte !== 0 && activeByte !== 1) {
    throw new CatalogFormatError(
      `bad active byte ${activeByte} in ${name} at offset ${activeOffset}`,
    );
  }
  let lastSeenAtUnixMs = 0;
  let invalidationReason: InvalidationReason | undefined;
  let invalidatedAtUnixMs: number | undefined;
  if (version !== CATALOG_VERSION_V1) {
    lastSeenAtUnixMs = reader.u128(`${name} last_seen_ms`);
    invalidationReason = _readReason(reader, `${name} invalidation reason`);
    const hasInvalidatedAt = reader.tag(`${name} invalidated_at_ms`);
    if (hasInvalidatedAt) invalidatedAtUnixMs = reader.u128(`${name} invalidated_at_ms`);
  }
  // An inactive slot with no (known) reason is one invalidated by the horizon, as reddb decides on
  // v1 decode and when loading any version. A slot with a reason is never active.
  if (activeByte === 0 && invalidationReason === undefined) invalidationReason = "horizon";
  const slot: Slot = {
    replicaId,
    timeline,
    restartLsn,
    confirmedWriteLsn,
    confirmedFlushLsn,
    confirmedApplyLsn,
    active: invalidationReason === undefined,
    lastSeenAtUnixMs,
    invalidationReason,
    invalidatedAtUnixMs,
  };
  _checkPositionOrder(slot, `${name} ${JSON.stringify(replicaId)}`);
  return slot;
}

/** Reads the header and every slot from `reader`, positioned at the version field. */
function _readCatalog(reader: CatalogReader): DecodedCatalog {
  const version = _readVersion(reader);
  const timeline = reader.u64("timeline");
  const generation = version === CATALOG_VERSION_V3 ? reader.u64("generation") : 0;
  const count = reader.u32("slot count");
  const headerBytes = version === CATALOG_VERSION_V3
    ? CATALOG_V3_HEADER_BYTES
    : CATALOG_V2_HEADER_BYTES;
  assert.equal(reader.offset, headerBytes, "catalog header read wrongly");
  _checkSlotCount(count, reader, version);
  const slots: Slot[] = [];
  const seen = new Set<string>();
  for (let index = 0; index < count; index++) {
    const slot = _readSlot(reader, version, timeline, index);
    if (seen.has(slot.replicaId)) {
      throw new CatalogFormatError(
        `duplicate replica id ${JSON.stringify(slot.replicaId)} in slot ${index}`,
      );
    }
    seen.add(slot.replicaId);
    slots.push(slot);
  }
  return { version, timeline, generation, slots };
}

/**
 * Decodes an `RDSLOT01` catalog of version 1, 2 or 3. Throws `CatalogFormatError` naming the
 * problem: fewer bytes than any catalog, a bad magic, a bad CRC (checked before any field, so random
 * damage shows as a CRC error), an unknown version, truncation, a slot count the bytes cannot hold,
 * a bad option tag or active byte, invalid UTF-8, a replica id over
 * `CATALOG_REPLICA_ID_BYTES_MAX` bytes, a number beyond 2^53-1, positions breaking
 * apply <= flush <= write, a duplicate replica id, or trailing bytes (before the CRC, or after a
 * whole catalog and its CRC).
 *
 * Unknown reason strings decode as none. A slot whose active byte is 0 and that has no known reason
 * (every inactive v1 slot) decodes as invalidated by `"horizon"`; `active` is always "no reason".
 *
 * @example
 * ```ts
 * const catalog = decodeCatalog(encodeCatalog({ timeline: 1, generation: 9, slots: [] }));
 * catalog.version; // 3
 * ```
 */
export function decodeCatalog(bytes: Uint8Array): DecodedCatalog {
  if (bytes.byteLength < CATALOG_BYTES_MIN) {
    throw new CatalogFormatError(
      `truncated catalog: ${bytes.byteLength} bytes, fewer than the ${CATALOG_BYTES_MIN} of an ` +
        `empty catalog`,
    );
  }
  _checkMagic(bytes);
  _checkCrc(bytes);
  const body = bytes.subarray(0, bytes.byteLength - CATALOG_CRC_BYTES);
  const reader = new CatalogReader(body, CATALOG_VERSION_OFFSET);
  const catalog = _readCatalog(reader);
  if (reader.remaining !== 0) {
    throw new CatalogFormatError(
      `${reader.remaining} trailing bytes after the last slot, before the CRC`,
      { offset: reader.offset },
    );
  }
  return catalog;
}
