/**
 * The fields of an `RDSLOT01` catalog (catalog.ts), read and written little-endian: u8, u16, u32,
 * u64, u128, option tags and length-prefixed UTF-8 strings.
 *
 * Pure, no I/O. A u64 is kept as a JS number, so it must be at most 2^53-1; a u128 is a low u64 then
 * a high u64 that must be 0. Every read checks its bounds first and throws `CatalogFormatError`
 * naming the field and its offset; the writer fills a buffer whose size its caller computed.
 *
 * @module
 */

import { CatalogFormatError } from "../core/errors.ts";
import { U64_SAFE_MAX } from "../core/limits.ts";

export const U8_BYTES = 1;
export const U16_BYTES = 2;
export const U32_BYTES = 4;
export const U64_BYTES = 8;
export const U128_BYTES = 16;
export const TAG_BYTES = 1;
/** Largest value a u32 field holds. */
export const U32_MAX = 0xffff_ffff;
const TAG_NONE = 0;
const TAG_SOME = 1;
const TWO_POW_32 = 0x1_0000_0000;

// `ignoreBOM` keeps a leading U+FEFF in an id instead of silently dropping it.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A cursor over the catalog bytes (CRC excluded) whose every read checks bounds first. */
export class CatalogReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset: number;

  constructor(bytes: Uint8Array, offset: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = offset;
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.byteLength - this.#offset;
  }

  /** Claims `length` bytes for `field` and returns their offset; throws when they run past the end. */
  #take(length: number, field: string): number {
    if (length > this.remaining) {
      throw new CatalogFormatError(
        `truncated catalog: ${field} needs ${length} bytes at offset ${this.#offset}, ` +
          `only ${this.remaining} remain`,
        { offset: this.#offset },
      );
    }
    const at = this.#offset;
    this.#offset += length;
    return at;
  }

  u8(field: string): number {
    return this.#view.getUint8(this.#take(U8_BYTES, field));
  }

  u16(field: string): number {
    return this.#view.getUint16(this.#take(U16_BYTES, field), true);
  }

  u32(field: string): number {
    return this.#view.getUint32(this.#take(U32_BYTES, field), true);
  }

  u64(field: string): number {
    const at = this.#take(U64_BYTES, field);
    const value = this.#view.getUint32(at + 4, true) * TWO_POW_32 + this.#view.getUint32(at, true);
    if (value > U64_SAFE_MAX) {
      throw new CatalogFormatError(`${field} at offset ${at} is beyond 2^53-1`, { offset: at });
    }
    return value;
  }

  u128(field: string): number {
    const at = this.#offset;
    const low = this.u64(field);
    const high = this.u64(field);
    if (high !== 0) {
      throw new CatalogFormatError(`u128 ${field} at offset ${at} is beyond 2^53-1`, {
        offset: at,
      });
    }
    return low;
  }

  /** Reads a tag byte: true for some, false for none. */
  tag(field: string): boolean {
    const at = this.#offset;
    const tag = this.u8(`${field} option tag`);
    if (tag !== TAG_NONE && tag !== TAG_SOME) {
      throw new CatalogFormatError(`bad option tag ${tag} for ${field} at offset ${at}`, {
        offset: at,
      });
    }
    return tag === TAG_SOME;
  }

  /** Reads a u32 length and that many bytes of UTF-8, refusing lengths above `bytesMax`. */
  string(field: string, bytesMax: number): string {
    const at = this.#offset;
    const length = this.u32(`${field} length`);
    if (length > bytesMax) {
      throw new CatalogFormatError(
        `${field} of ${length} bytes at offset ${at} exceeds ${bytesMax} bytes`,
        { offset: at },
      );
    }
    const start = this.#take(length, field);
    try {
      return utf8Decoder.decode(this.#bytes.subarray(start, start + length));
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      throw new CatalogFormatError(`invalid UTF-8 in ${field} at offset ${start}`, {
        offset: start,
      });
    }
  }
}

/** Writes fields in order into a buffer sized in advance. */
export class CatalogWriter {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  offset = 0;

  constructor(byteLength: number) {
    this.bytes = new Uint8Array(byteLength);
    this.#view = new DataView(this.bytes.buffer);
  }

  raw(bytes: Readonly<Uint8Array>): void {
    this.bytes.set(bytes, this.offset);
    this.offset += bytes.byteLength;
  }

  u8(value: number): void {
    this.#view.setUint8(this.offset, value);
    this.offset += U8_BYTES;
  }

  u16(value: number): void {
    this.#view.setUint16(this.offset, value, true);
    this.offset += U16_BYTES;
  }

  u32(value: number): void {
    this.#view.setUint32(this.offset, value, true);
    this.offset += U32_BYTES;
  }

  /** `value` is a validated integer in 0..2^53-1. */
  u64(value: number): void {
    this.#view.setUint32(this.offset, value % TWO_POW_32, true);
    this.#view.setUint32(this.offset + 4, Math.floor(value / TWO_POW_32), true);
    this.offset += U64_BYTES;
  }

  /** Low u64 then a zero high u64. */
  u128(value: number): void {
    this.u64(value);
    this.u64(0);
  }

  /** Writes an option's tag byte; the caller writes the value after it when `some`. */
  tag(some: boolean): void {
    this.u8(some ? TAG_SOME : TAG_NONE);
  }

  /** A u32 byte length, then the (already UTF-8 encoded) bytes. */
  string(encoded: Uint8Array): void {
    this.u32(encoded.byteLength);
    this.raw(encoded);
  }
}
