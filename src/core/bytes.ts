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
