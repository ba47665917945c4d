/**
 * The snapshot stream as the client reads it: NDJSON lines split in byte space with a
 * line length bound, each parsed and checked, and the order of the lines checked.
 *
 * @module
 */

import { SnapshotFormatError } from "../core/errors.ts";
import { SNAPSHOT_LINE_BYTES_MAX } from "../core/limits.ts";
import { concatBytes } from "../core/bytes.ts";
import { SNAPSHOT_FORMAT } from "../model/wire.ts";
import { type Fail, fieldReader, quote, readChunks } from "./responses.ts";
import type { SnapshotLine } from "./types.ts";

const NEWLINE_BYTE = 0x0a;

/**
 * The lines of an NDJSON byte stream, each without its "\n", split in byte space (so a chunk
 * boundary inside a multi-byte character is harmless) and decoded as strict UTF-8. A line longer
 * than `SNAPSHOT_LINE_BYTES_MAX` throws as soon as that many bytes are pending. A last line without
 * "\n" is yielded too. Stopping early (a throw, the consumer's `break`, `signal`'s abort) cancels
 * the stream.
 */
export async function* ndjsonLines(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string, void, undefined> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const value of readChunks(body, signal)) {
    let start = 0;
    let newline = value.indexOf(NEWLINE_BYTE, start);
    while (newline !== -1) {
      _checkLineBytes(pendingBytes + newline - start);
      pending.push(value.subarray(start, newline));
      yield _decodeLine(decoder, pending, pendingBytes + newline - start);
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
      newline = value.indexOf(NEWLINE_BYTE, start);
    }
    if (start < value.byteLength) {
      pendingBytes += value.byteLength - start;
      _checkLineBytes(pendingBytes);
      pending.push(value.subarray(start));
    }
  }
  if (pendingBytes > 0) yield _decodeLine(decoder, pending, pendingBytes);
}

function _checkLineBytes(lineBytes: number): void {
  if (lineBytes > SNAPSHOT_LINE_BYTES_MAX) {
    throw new SnapshotFormatError(
      `a snapshot line is longer than ${SNAPSHOT_LINE_BYTES_MAX} bytes`,
      { max_bytes: SNAPSHOT_LINE_BYTES_MAX },
    );
  }
}

function _decodeLine(decoder: TextDecoder, parts: readonly Uint8Array[], bytes: number): string {
  try {
    return decoder.decode(concatBytes(parts, bytes));
  } catch (error) {
    if (error instanceof TypeError) throw new SnapshotFormatError("a snapshot line is not UTF-8");
    throw error;
  }
}

/** Parses and checks one snapshot line (its shape, not its place in the stream). */
export function parseSnapshotLine(text: string, lineNumber: number): SnapshotLine {
  const context = `snapshot line ${lineNumber}`;
  const fail: Fail = (message) => new SnapshotFormatError(message, { line: lineNumber });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw fail(`${context} is not JSON: ${quote(text)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw fail(`${context} is not a JSON object`);
  }
  const object = parsed as Record<string, unknown>;
  const field = fieldReader(object, context, fail);
  switch (object.type) {
    case "header": {
      const format = field.uint("format");
      if (format !== SNAPSHOT_FORMAT) throw fail(`${context}: unsupported format ${format}`);
      return {
        type: "header",
        startLsn: field.uint("start_lsn"),
        term: field.uint("term"),
        timeline: field.uint("timeline"),
        format,
      };
    }
    case "entry": {
      if (!("value" in object)) throw fail(`${context}: an entry needs a value`);
      return {
        type: "entry",
        collection: field.string("collection"),
        key: field.string("key"),
        value: object.value,
        lsn: field.uint("lsn"),
        raw: text,
      };
    }
    case "trailer": {
      const crc32 = field.uint("crc32");
      if (crc32 > 0xffff_ffff) throw fail(`${context}: crc32 ${crc32} is not a u32`);
      return { type: "trailer", endLsn: field.uint("end_lsn"), count: field.uint("count"), crc32 };
    }
    default:
      throw fail(`${context}: unknown type ${quote(object.type)}`);
  }
}

/** Header, then entries, then the trailer, then nothing. */
export function checkSnapshotOrder(
  previous: SnapshotLine["type"] | undefined,
  current: SnapshotLine["type"],
  lineNumber: number,
): void {
  const allowed = previous === undefined
    ? current === "header"
    : previous !== "trailer" && current !== "header";
  if (!allowed) {
    throw new SnapshotFormatError(
      `snapshot line ${lineNumber}: a ${current} cannot follow ${previous ?? "the start"}`,
      { line: lineNumber },
    );
  }
}
