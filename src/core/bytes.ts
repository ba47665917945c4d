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
