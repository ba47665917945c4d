/**
 * The fast path of `POST /v1/records` bodies: one pass over the bytes of a body in the form most
 * writers send (UTF-8, each value compact and already in `JSON.stringify`'s own form) that checks
 * every record and copies its key and value bytes straight into the stored form (SPEC.md 8),
 * without parsing them into objects and encoding them again.
 *
 * It decides nothing on its own: anything it does not copy verbatim (bytes that are not UTF-8,
 * `\u` or `\/` escapes, whitespace inside a value, a number not in its shortest form, a member
 * name of digits only, which V8 would reorder, a repeated member, a record above the byte limit,
 * any error) makes it answer `undefined`, and `write_body.ts` takes the body the general way. So
 * its bytes and verdicts are the general path's (`tests/http/write_scan_test.ts` holds them to
 * that).
 *
 * @module
 */

import {
  COLLECTION_BYTES_MAX,
  COMMIT_TIMEOUT_MS_MAX,
  KEY_BYTES_MAX,
  U64_SAFE_MAX,
  WRITE_ENCODE_SLAB_BYTES,
} from "../core/limits.ts";
import {
  asciiBytes,
  asciiText,
  CLOSE_BRACE,
  CLOSE_BRACKET,
  COMMA,
  JsonScan,
  NEWLINE,
  OPEN_BRACE,
  OPEN_BRACKET,
  QUOTE,
  RETURN,
} from "./json_scan.ts";
import { COLLECTION_PATTERN } from "../model/ids.ts";
import type { WriteLimits } from "./router.ts";

/** What the fast path found in a JSON body: the stored records and the body's options. */
export interface ScannedWrite {
  payloads: Uint8Array[];
  /** The `commit_policy` text as sent (not yet parsed), or undefined. */
  policyText: string | undefined;
  timeoutMs: number | undefined;
}

/** The limits a scan checks (the rest of `WriteLimits` is the body reader's). */
export type ScanLimits = Pick<WriteLimits, "requestRecordsMax" | "recordBytesMax">;

/** Digits of the largest `ts` (U64_SAFE_MAX, 2^53 - 1). */
const _TS_DIGITS_MAX = String(U64_SAFE_MAX).length;
const _TIMEOUT_DIGITS_MAX = String(COMMIT_TIMEOUT_MS_MAX).length;
/** Per record: op (1 put, 0 delete), then start and end of collection, key, value and ts. */
const _SPAN_INTS = 9;

const _PUT_HEAD = asciiBytes('{"op":"put","collection":"');
const _DELETE_HEAD = asciiBytes('{"op":"delete","collection":"');
const _KEY_FIELD = asciiBytes('","key":"');
const _VALUE_FIELD = asciiBytes('","value":');
const _TS_AFTER_VALUE = asciiBytes(',"ts":');
const _TS_AFTER_KEY = asciiBytes('","ts":');
const _FIELD_NAMES = ["op", "collection", "key", "value", "ts"].map(asciiBytes);
const _BODY_NAMES = ["records", "commit_policy", "timeout_ms"].map(asciiBytes);
const _PUT = asciiBytes('"put"');
const _DELETE = asciiBytes('"delete"');

/** Bytes a collection name may hold: the ASCII characters `COLLECTION_PATTERN` takes alone. */
const _COLLECTION_BYTE = Uint8Array.from(
  { length: 128 },
  (_, c) => COLLECTION_PATTERN.test(String.fromCharCode(c)) ? 1 : 0,
);

/**
 * A JSON write body `{"records": [...], "commit_policy"?, "timeout_ms"?}` in the common form:
 * its records in the stored form, or undefined to take the general path.
 */
export function scanJsonWrite(
  bytes: Uint8Array,
  limits: ScanLimits,
  nowMs: number,
): ScannedWrite | undefined {
  const scanner = new _Scanner(bytes, limits.requestRecordsMax);
  if (!scanner.body()) return undefined;
  const payloads = scanner.encode(nowMs, limits.recordBytesMax);
  if (payloads === undefined) return undefined;
  return { payloads, policyText: scanner.policyText, timeoutMs: scanner.timeoutMs };
}

/** An NDJSON write body (one record per line, empty lines skipped) in the common form, or undefined. */
export function scanNdjsonWrite(
  bytes: Uint8Array,
  limits: ScanLimits,
  nowMs: number,
): Uint8Array[] | undefined {
  const scanner = new _Scanner(bytes, limits.requestRecordsMax);
  if (!scanner.lines()) return undefined;
  return scanner.encode(nowMs, limits.recordBytesMax);
}

/**
 * `size` bytes no one else holds. A small request takes them from the unused rest of a shared
 * slab (allocating an ArrayBuffer costs Deno more than encoding a small request; each part of a
 * slab is handed out once, and the slab is freed when nothing views it).
 */
export function freshBytes(size: number): Uint8Array {
  if (size > WRITE_ENCODE_SLAB_BYTES / 4) return new Uint8Array(size);
  _slabRoom(size);
  _slabUsed += size;
  return _slab.subarray(_slabUsed - size, _slabUsed);
}

/** The UTF-8 of `text` in bytes no one else holds (from the slab when it is small). */
export function encodeUtf8Fresh(text: string): Uint8Array {
  const bytesMax = text.length * 3; // a UTF-16 unit is at most 3 bytes of UTF-8
  if (bytesMax > WRITE_ENCODE_SLAB_BYTES / 4) return _utf8.encode(text);
  _slabRoom(bytesMax);
  const { written } = _utf8.encodeInto(text, _slab.subarray(_slabUsed));
  _slabUsed += written;
  return _slab.subarray(_slabUsed - written, _slabUsed);
}

/** A new slab unless `size` bytes are left in this one. */
function _slabRoom(size: number): void {
  if (_slab.byteLength - _slabUsed >= size) return;
  _slab = new Uint8Array(WRITE_ENCODE_SLAB_BYTES);
  _slabUsed = 0;
}

const _utf8 = new TextEncoder();

let _slab = new Uint8Array(0);
let _slabUsed = 0;
/** Spans of the records being scanned, `_SPAN_INTS` each (grown when a body needs more). */
let _spans = new Int32Array(_SPAN_INTS * 1024);
/** The digits of the last stamp written: requests of one millisecond share them. */
let _stampMs = -1;
let _stamp = new Uint8Array(0);

function _stampBytes(nowMs: number): Uint8Array {
  if (nowMs !== _stampMs) {
    _stamp = asciiBytes(String(nowMs));
    _stampMs = nowMs;
  }
  return _stamp;
}

/** A write body's records, checked and taken apart in one pass (spans into the body's bytes). */
class _Scanner extends JsonScan {
  #recordsMax: number;
  #spans = _spans;
  #count = 0;
  policyText: string | undefined;
  timeoutMs: number | undefined;

  constructor(bytes: Uint8Array, recordsMax: number) {
    super(bytes);
    this.#recordsMax = recordsMax;
  }

  /** The whole JSON body. */
  body(): boolean {
    const b = this.b;
    this.skipSpace();
    if (b[this.p] !== OPEN_BRACE) return false;
    this.p++;
    let seen = 0;
    for (;;) {
      this.skipSpace();
      const field = this.fieldName(_BODY_NAMES);
      if (field < 0 || (seen & (1 << field)) !== 0) return false;
      seen |= 1 << field;
      const ok = field === 0 ? this.#records() : field === 1 ? this.#policy() : this.#timeout();
      const next = ok ? this.#afterItem(CLOSE_BRACE) : undefined;
      if (next === undefined) return false;
      if (next === "end") break;
    }
    this.skipSpace();
    return (seen & 1) !== 0 && this.p === b.byteLength;
  }

  /** An NDJSON body: a record per line. */
  lines(): boolean {
    const b = this.b;
    while (this.p < b.byteLength) {
      let end = b.indexOf(NEWLINE, this.p);
      if (end < 0) end = b.byteLength;
      const stop = end > this.p && b[end - 1] === RETURN ? end - 1 : end;
      if (stop > this.p && !this.#lineRecord(stop)) return false;
      this.p = end + 1;
    }
    return this.#count > 0;
  }

  /** A record alone on its line, which ends at `stop` (JSON.parse of the line would take it). */
  #lineRecord(stop: number): boolean {
    if (!this.#record() || this.p > stop) return false; // > stop: spread over lines
    const b = this.b;
    let i = this.p;
    while (i < stop && (b[i] === 0x20 || b[i] === 0x09 || b[i] === RETURN)) i++;
    return i === stop;
  }

  /** The stored form of every record: one buffer, a view per record; undefined if one is too big. */
  encode(nowMs: number, recordBytesMax: number): Uint8Array[] | undefined {
    const spans = this.#spans;
    const stamp = _stampBytes(nowMs);
    let total = 0;
    for (let i = 0; i < this.#count; i++) {
      const size = _storedSize(spans, i * _SPAN_INTS, stamp.byteLength);
      if (size > recordBytesMax) return undefined;
      total += size;
    }
    const out = freshBytes(total);
    const payloads = new Array<Uint8Array>(this.#count);
    let at = 0;
    for (let i = 0; i < this.#count; i++) {
      const end = this.#write(out, at, i * _SPAN_INTS, stamp);
      payloads[i] = out.subarray(at, end);
      at = end;
    }
    return payloads;
  }

  #write(out: Uint8Array, at: number, s: number, stamp: Uint8Array): number {
    const spans = this.#spans;
    const put = spans[s] === 1;
    at = _put(out, at, put ? _PUT_HEAD : _DELETE_HEAD);
    at = this.#copy(out, at, spans[s + 1]!, spans[s + 2]!);
    at = _put(out, at, _KEY_FIELD);
    at = this.#copy(out, at, spans[s + 3]!, spans[s + 4]!);
    if (put) {
      at = _put(out, at, _VALUE_FIELD);
      at = this.#copy(out, at, spans[s + 5]!, spans[s + 6]!);
      at = _put(out, at, _TS_AFTER_VALUE);
    } else at = _put(out, at, _TS_AFTER_KEY);
    const tsStart = spans[s + 7]!;
    at = tsStart < 0 ? _put(out, at, stamp) : this.#copy(out, at, tsStart, spans[s + 8]!);
    out[at] = CLOSE_BRACE;
    return at + 1;
  }

  #copy(out: Uint8Array, at: number, start: number, end: number): number {
    const b = this.b;
    if (end - start > 16) out.set(b.subarray(start, end), at);
    else for (let i = start; i < end; i++) out[at + i - start] = b[i]!;
    return at + end - start;
  }

  #records(): boolean {
    const b = this.b;
    this.skipSpace();
    if (b[this.p] !== OPEN_BRACKET) return false;
    this.p++;
    for (;;) {
      const next = this.#record() ? this.#afterItem(CLOSE_BRACKET) : undefined;
      if (next !== "more") return next === "end";
    }
  }

  /** After an item of the envelope (spaces around allowed): past a comma or past `close`. */
  #afterItem(close: number): "more" | "end" | undefined {
    this.skipSpace();
    const c = this.b[this.p];
    if (c !== COMMA && c !== close) return undefined;
    this.p++;
    return c === COMMA ? "more" : "end";
  }

  #policy(): boolean {
    const start = this.p + 1;
    const end = this.plainString(0x20, 0x7e);
    if (end < 0) return false;
    this.policyText = asciiText(this.b.subarray(start, end - 1));
    return true;
  }

  #timeout(): boolean {
    const value = this.wholeNumber(_TIMEOUT_DIGITS_MAX);
    if (!_within(value, COMMIT_TIMEOUT_MS_MAX)) return false;
    this.timeoutMs = value;
    return true;
  }

  /** One change record object; its spans are pushed on success. */
  #record(): boolean {
    const b = this.b;
    this.skipSpace();
    if (b[this.p] !== OPEN_BRACE) return false;
    this.p++;
    const s = this.#pushSpan();
    if (s < 0) return false;
    const spans = this.#spans;
    spans.fill(-1, s, s + _SPAN_INTS);
    let seen = 0;
    for (;;) {
      this.skipSpace();
      const field = this.fieldName(_FIELD_NAMES);
      if (field < 0 || (seen & (1 << field)) !== 0 || !this.#recordField(field, s)) return false;
      seen |= 1 << field;
      const next = this.#afterItem(CLOSE_BRACE);
      if (next === undefined) return false;
      if (next === "end") break;
    }
    const put = spans[s] === 1;
    // op, collection and key present; a value exactly for a put.
    return (seen & 7) === 7 && put === ((seen & 8) !== 0);
  }

  #recordField(field: number, s: number): boolean {
    const spans = this.#spans;
    const start = this.p;
    if (field === 0) {
      if (this.startsWith(_PUT)) spans[s] = 1;
      else if (this.startsWith(_DELETE)) spans[s] = 0;
      else return false;
      this.p += spans[s] === 1 ? _PUT.byteLength : _DELETE.byteLength;
      return true;
    }
    let end: number;
    if (field === 1) end = this.#collection();
    else if (field === 2) end = this.plainString(0x20, 0x7f, true);
    else if (field === 3) end = this.value(0) ? this.p : -1;
    else end = _within(this.wholeNumber(_TS_DIGITS_MAX), U64_SAFE_MAX) ? this.p : -1;
    if (end < 0) return false;
    const quoted = field === 1 || field === 2; // the span holds the characters only
    spans[s + 2 * field - 1] = quoted ? start + 1 : start;
    spans[s + 2 * field] = quoted ? end - 1 : end;
    if (field === 2) return end - start - 2 <= KEY_BYTES_MAX && end - start > 2;
    return true;
  }

  #collection(): number {
    const b = this.b;
    if (b[this.p] !== QUOTE) return -1;
    let i = this.p + 1;
    while (_COLLECTION_BYTE[b[i]!] === 1) i++;
    const length = i - this.p - 1;
    if (b[i] !== QUOTE || length === 0 || length > COLLECTION_BYTES_MAX) return -1;
    this.p = i + 1;
    return this.p;
  }

  /** Room for one more record's spans; its index in `#spans`, -1 past the record limit. */
  #pushSpan(): number {
    if (this.#count >= this.#recordsMax) return -1;
    const s = this.#count * _SPAN_INTS;
    if (s + _SPAN_INTS > this.#spans.length) {
      const grown = new Int32Array(this.#spans.length * 2);
      grown.set(this.#spans);
      this.#spans = _spans = grown;
    }
    this.#count++;
    return s;
  }
}

function _storedSize(spans: Int32Array, s: number, stampBytes: number): number {
  const put = spans[s] === 1;
  const ts = spans[s + 7]! < 0 ? stampBytes : spans[s + 8]! - spans[s + 7]!;
  const head = put
    ? _PUT_HEAD.byteLength + _KEY_FIELD.byteLength + _VALUE_FIELD.byteLength +
      _TS_AFTER_VALUE.byteLength + spans[s + 6]! - spans[s + 5]!
    : _DELETE_HEAD.byteLength + _KEY_FIELD.byteLength + _TS_AFTER_KEY.byteLength;
  return head + spans[s + 2]! - spans[s + 1]! + spans[s + 4]! - spans[s + 3]! + ts + 1;
}

function _within(value: number, max: number): boolean {
  return value >= 0 && value <= max;
}

function _put(out: Uint8Array, at: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.byteLength; i++) out[at + i] = bytes[i]!;
  return at + bytes.byteLength;
}
