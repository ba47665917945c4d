/**
 * A cursor over JSON bytes that takes a value only in the form `JSON.stringify` writes it (see
 * `write_scan.ts`, the one user): compact, well-formed UTF-8, the escapes it writes with two
 * characters (no `\u`), each number in its shortest form, no member name of digits only (V8 puts those first) and none twice.
 * Every method answers false (or -1) as soon as the bytes leave that form; the caller then takes
 * the general path, so being strict here never refuses a body.
 *
 * @module
 */

import { JSON_DEPTH_MAX, WRITE_SCAN_MEMBERS_MAX } from "../core/limits.ts";

export const QUOTE = 0x22;
export const COMMA = 0x2c;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;
export const NEWLINE = 0x0a;
export const RETURN = 0x0d;
const _BACKSLASH = 0x5c;
const _COLON = 0x3a;
const _MINUS = 0x2d;
const _DOT = 0x2e;
const _ZERO = 0x30;
const _NINE = 0x39;
/** Digits of an integer that a double holds exactly, and prints back the same. */
const _EXACT_INTEGER_DIGITS = 15;

/** The bytes of an ASCII text. */
export function asciiBytes(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length); // a loop: Uint8Array.from(text, f) costs far more
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
/** Decodes bytes already known to be ASCII. */
export const asciiText = (bytes: Uint8Array): string => _latin.decode(bytes);
const _latin = new TextDecoder("latin1");
const _TRUE = asciiBytes("true");
const _FALSE = asciiBytes("false");
const _NULL = asciiBytes("null");

/** Bytes a JSON number may hold. */
const _NUMBER_BYTE = new Uint8Array(128);
for (const c of "0123456789+-.eE") _NUMBER_BYTE[c.charCodeAt(0)] = 1;
/** Bytes a string holds as they are: ASCII from space on, but for `"` and `\`. */
const _PLAIN_BYTE = new Uint8Array(256);
_PLAIN_BYTE.fill(1, 0x20, 0x80);
_PLAIN_BYTE[QUOTE] = _PLAIN_BYTE[_BACKSLASH] = 0;
/** Escapes `JSON.stringify` itself writes with two characters. */
const _SHORT_ESCAPE = new Uint8Array(128);
for (const c of '"\\bfnrt') _SHORT_ESCAPE[c.charCodeAt(0)] = 1;
/** Member names of the objects being scanned (start, end pairs), innermost last; shared. */
const _names = new Int32Array(2 * WRITE_SCAN_MEMBERS_MAX * 4);

/** The cursor; a scan runs to its end without yielding, so scans share their scratch arrays. */
export class JsonScan {
  protected readonly b: Uint8Array;
  protected p = 0;
  private names = _names;
  private namesTop = 0;

  constructor(bytes: Uint8Array) {
    this.b = bytes;
  }

  /**
   * A string without escapes (a key, a policy) of bytes `low..high`, and of well-formed UTF-8
   * beyond ASCII when `utf8`; the index after it, -1 if it is not one.
   */
  protected plainString(low: number, high: number, utf8 = false): number {
    const b = this.b;
    if (b[this.p] !== QUOTE) return -1;
    let i = this.p + 1;
    for (;;) {
      const c = b[i];
      if (c === QUOTE) break;
      if (c === undefined || c < low || c === _BACKSLASH) return -1;
      const length = c <= high ? 1 : utf8 && c >= 0x80 ? _utf8Sequence(b, i) : 0;
      if (length === 0) return -1;
      i += length;
    }
    this.p = i + 1;
    return this.p;
  }

  /** A JSON value in the form `JSON.stringify` writes it, nested in `depth` containers. */
  protected value(depth: number): boolean {
    const c = this.b[this.p];
    if (c === QUOTE) return this.string();
    if (c === OPEN_BRACE) return this.object(depth);
    if (c === OPEN_BRACKET) return this.array(depth);
    if (c === _MINUS || (c !== undefined && c >= _ZERO && c <= _NINE)) return this.number();
    return this.literal(_TRUE) || this.literal(_FALSE) || this.literal(_NULL);
  }

  protected string(): boolean {
    const b = this.b;
    let i = this.p + 1;
    for (;;) {
      const c = b[i]!;
      if (_PLAIN_BYTE[c] === 1) {
        i++;
        continue;
      }
      if (c === QUOTE) break;
      if (c >= 0x80) {
        const length = _utf8Sequence(b, i); // JSON.stringify writes every such character as is
        if (length === 0) return false;
        i += length;
        continue;
      }
      if (c !== _BACKSLASH || _SHORT_ESCAPE[b[i + 1]!] !== 1) return false;
      i += 2;
    }
    this.p = i + 1;
    return true;
  }

  protected object(depth: number): boolean {
    const b = this.b;
    const entered = this.#enter(depth, CLOSE_BRACE);
    if (entered !== "open") return entered === "empty";
    const base = this.namesTop;
    for (;;) {
      const start = this.p;
      if (b[start] !== QUOTE || !this.string() || !this.newName(base, start + 1, this.p - 1)) {
        return false;
      }
      if (b[this.p] !== _COLON) return false;
      this.p++;
      if (!this.value(depth + 1)) return false;
      const c = b[this.p++];
      if (c === CLOSE_BRACE) break;
      if (c !== COMMA) return false;
    }
    this.namesTop = base;
    return true;
  }

  /** Steps into the container at the cursor: refused past the depth limit, empty if it closes. */
  #enter(depth: number, close: number): "refused" | "empty" | "open" {
    if (depth >= JSON_DEPTH_MAX) return "refused";
    this.p++;
    if (this.b[this.p] !== close) return "open";
    this.p++;
    return "empty";
  }

  /** Records a member name of the object whose names start at `base`: false if it repeats one. */
  protected newName(base: number, start: number, end: number): boolean {
    const b = this.b;
    let digits = start < end;
    for (let i = start; i < end && digits; i++) digits = b[i]! >= _ZERO && b[i]! <= _NINE;
    const names = this.names;
    if (digits || this.namesTop - base >= 2 * WRITE_SCAN_MEMBERS_MAX) return false;
    if (this.namesTop + 2 > names.length) return false;
    for (let n = base; n < this.namesTop; n += 2) {
      if (_sameBytes(b, names[n]!, names[n + 1]!, start, end)) return false;
    }
    names[this.namesTop] = start;
    names[this.namesTop + 1] = end;
    this.namesTop += 2;
    return true;
  }

  protected array(depth: number): boolean {
    const b = this.b;
    const entered = this.#enter(depth, CLOSE_BRACKET);
    if (entered !== "open") return entered === "empty";
    for (;;) {
      if (!this.value(depth + 1)) return false;
      const c = b[this.p++];
      if (c === CLOSE_BRACKET) return true;
      if (c !== COMMA) return false;
    }
  }

  /** A number exactly as `JSON.stringify` prints it (its shortest round-trip form). */
  protected number(): boolean {
    const b = this.b;
    const start = this.p;
    let i = b[start] === _MINUS ? start + 1 : start;
    const first = i;
    while (b[i]! >= _ZERO && b[i]! <= _NINE) i++;
    const digits = i - first;
    if (digits === 0 || (b[first] === _ZERO && digits > 1)) return false;
    const c = b[i];
    if (c !== _DOT && c !== 0x65 && c !== 0x45 && digits <= _EXACT_INTEGER_DIGITS) {
      this.p = i;
      return !(first > start && digits === 1 && b[first] === _ZERO); // -0 prints as 0
    }
    // Taken loosely: only a text that prints back the same is kept, and that is a JSON number.
    while (_NUMBER_BYTE[b[i]!] === 1) i++;
    const text = asciiText(b.subarray(start, i));
    const value = Number(text);
    this.p = i;
    return Number.isFinite(value) && String(value) === text;
  }

  protected literal(word: Uint8Array): boolean {
    if (!this.startsWith(word)) return false;
    this.p += word.byteLength;
    return true;
  }

  /** A whole number of at most `digitsMax` digits, no leading zero; -1 if it is not one. */
  protected wholeNumber(digitsMax: number): number {
    const b = this.b;
    let i = this.p;
    let value = 0;
    while (b[i]! >= _ZERO && b[i]! <= _NINE) value = value * 10 + (b[i++]! - _ZERO);
    const digits = i - this.p;
    const next = b[i];
    if (digits === 0 || digits > digitsMax || (digits > 1 && b[this.p] === _ZERO)) return -1;
    if (next === _DOT || next === 0x65 || next === 0x45) return -1;
    this.p = i;
    return value;
  }

  /** The index in `names` of the quoted field name at the cursor, after its colon; -1 if none. */
  protected fieldName(names: Uint8Array[]): number {
    const b = this.b;
    if (b[this.p] !== QUOTE) return -1;
    for (let field = 0; field < names.length; field++) {
      const name = names[field]!;
      const end = this.p + 1 + name.byteLength;
      if (b[end] === QUOTE && _matches(b, this.p + 1, name)) {
        this.p = end + 1;
        this.skipSpace();
        if (b[this.p] !== _COLON) return -1;
        this.p++;
        this.skipSpace();
        return field;
      }
    }
    return -1;
  }

  protected startsWith(word: Uint8Array): boolean {
    return _matches(this.b, this.p, word);
  }

  protected skipSpace(): void {
    const b = this.b;
    let c = b[this.p];
    while (c === 0x20 || c === NEWLINE || c === RETURN || c === 0x09) c = b[++this.p];
  }
}

/**
 * The length of the well-formed UTF-8 sequence of a character above ASCII at `i` (no overlong
 * form, no surrogate, nothing above U+10FFFF), 0 if there is none.
 */
function _utf8Sequence(b: Uint8Array, i: number): number {
  const c = b[i]!;
  const next = b[i + 1] ?? 0;
  if (c >= 0xc2 && c <= 0xdf) return _continues(next) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const low = c === 0xe0 ? 0xa0 : 0x80;
    const high = c === 0xed ? 0x9f : 0xbf;
    return next >= low && next <= high && _continues(b[i + 2]) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const low = c === 0xf0 ? 0x90 : 0x80;
    const high = c === 0xf4 ? 0x8f : 0xbf;
    return next >= low && next <= high && _continues(b[i + 2]) && _continues(b[i + 3]) ? 4 : 0;
  }
  return 0;
}

function _continues(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

function _matches(b: Uint8Array, at: number, word: Uint8Array): boolean {
  for (let i = 0; i < word.byteLength; i++) if (b[at + i] !== word[i]) return false;
  return true;
}

function _sameBytes(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let i = 0; i < e1 - s1; i++) if (b[s1 + i] !== b[s2 + i]) return false;
  return true;
}
