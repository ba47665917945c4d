/**
 * Byte helpers shared by server and client.
 *
 * @module
 */

/**
 * The parts as one `Uint8Array`: the part itself when there is one (no copy), else a new buffer.
 * `totalBytes` saves a pass when the caller already counted.
 */
export function concatBytes(parts: readonly Uint8Array[], totalBytes?: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let total = totalBytes;
  if (total === undefined) {
    total = 0;
    for (const part of parts) total += part.byteLength;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/**
 * UTF-8 length of the well-formed text between `start` and `end` (all of it by default), counted
 * without encoding it (a lone surrogate would count 3, as TextEncoder writes U+FFFD).
 */
export function utf8Length(text: string, start = 0, end: number = text.length): number {
  let bytes = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4; // a surrogate pair
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

const _strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const _lenientUtf8 = new TextDecoder();

/**
 * `bytes` as UTF-8 text, strictly: throws `TypeError` when they are not valid UTF-8, never reads
 * them with replacement characters. Deno's fatal decoder is about ten times slower than its
 * lenient one on large inputs, and every invalid sequence decodes to U+FFFD, so the lenient one
 * goes first and the fatal one only judges a text that holds U+FFFD (invalid bytes, or a U+FFFD
 * that was really sent). A leading byte order mark is dropped either way.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  const text = _lenientUtf8.decode(bytes);
  return text.includes("\uFFFD") ? _strictUtf8.decode(bytes) : text;
}
