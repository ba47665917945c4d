/**
 * Conditional and partial GETs of immutable objects (RFC 9110 sections 13 and 14), as sealed
 * segments need them (SPEC.md 13.2): `If-None-Match` against a strong ETag, and one byte range
 * (`Range: bytes=a-b`, `a-`, `-n`). Pure: no I/O.
 *
 * A server may ignore a `Range` it does not serve (RFC 9110 14.2), so a malformed one and one of
 * several ranges get the whole object (200), never a 4xx; a range that starts past the end is the
 * one case answered 416.
 *
 * @module
 */

/** What to send for a `Range` header: the whole object, one part, or 416. */
export type RangeAnswer =
  | { kind: "whole" }
  /** Bytes `start` (inclusive) to `end` (exclusive). */
  | { kind: "part"; start: number; end: number }
  | { kind: "unsatisfiable" };

const _SINGLE_RANGE = /^bytes=(\d{0,16})-(\d{0,16})$/;

/**
 * The part of an object of `size` bytes that `range` asks for. `ifRange`, when present, must be
 * the object's `etag` for the range to count (else the whole object is sent).
 */
export function byteRangeOf(
  headers: { range: string | undefined; ifRange: string | undefined },
  size: number,
  etag: string,
): RangeAnswer {
  const { range, ifRange } = headers;
  if (range === undefined) return { kind: "whole" };
  if (ifRange !== undefined && ifRange.trim() !== etag) return { kind: "whole" };
  const match = _SINGLE_RANGE.exec(range.replaceAll(" ", ""));
  if (!match) return { kind: "whole" };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return { kind: "whole" };
  if (first === "") {
    // A suffix: the last `n` bytes.
    const n = Number(last);
    return n === 0
      ? { kind: "unsatisfiable" }
      : { kind: "part", start: Math.max(0, size - n), end: size };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return { kind: "whole" };
  if (start >= size) return { kind: "unsatisfiable" };
  const end = last === "" ? size : Math.min(Number(last) + 1, size);
  return { kind: "part", start, end };
}

/**
 * True when an `If-None-Match` value names `etag` (or is `*`): the client holds these bytes
 * already. The weak comparison RFC 9110 13.1.2 asks for (a `W/` prefix is ignored).
 */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(",").some((candidate) => {
    const tag = candidate.trim();
    return tag === "*" || tag.replace(/^W\//, "") === etag;
  });
}
