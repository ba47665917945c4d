/**
 * Reading the answers of ferry's HTTP API: a body with a byte bound, the `FerryHttpError` of a
 * non-2xx answer, typed field checks, and the parsers of the answers that need more than a field
 * reader (a write, a raw-frame pull).
 *
 * @module
 */

import { FerryHttpError, FerryResponseError } from "../core/errors.ts";
import {
  ERROR_BODY_BYTES_MAX,
  QUOTED_VALUE_CHARS_MAX,
  RESPONSE_BODY_BYTES_MAX,
} from "../core/limits.ts";
import {
  FRAMES_MEDIA_TYPE,
  HEADER_CURRENT_LSN,
  HEADER_OLDEST_LSN,
  HEADER_RECORD_COUNT,
  HEADER_START_LSN,
  HEADER_TERM,
  HEADER_TIMELINE,
} from "../model/wire.ts";
import { concatBytes } from "../core/bytes.ts";
import { type DecodedFrame, decodeFrameRun } from "../wal/frame.ts";
import type { FramePull, JsonPull, Topology, TopologyLeader, WriteResponse } from "./types.ts";

const MS_PER_SECOND = 1000;

// ---- bodies ----

/**
 * The chunks of a byte stream, in order. Stopping early (a throw, or the consumer's `break`)
 * cancels the stream; the reader's lock is released either way. `signal`'s abort cancels it too
 * and throws its reason, ending a read that waits: a fetch's own abort does not end a body read
 * already waiting (Deno 2.9), so a stop would otherwise wait for the server's next bytes.
 */
export async function* readChunks(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  const reader = body.getReader();
  let finished = false;
  const cancel = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    signal?.throwIfAborted();
    while (true) {
      const { done, value } = await reader.read();
      signal?.throwIfAborted(); // cut short by the abort, not ended by the server
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * The body's bytes, at most `maxBytes`: a larger body is cancelled there and is a
 * `FerryResponseError`, or, with `truncate`, its first `maxBytes` bytes. A body whose length is
 * declared (`content-length`, no `content-encoding`) is read straight into one buffer of that
 * size, with no chunk list and no copy; anything past the declared length is still read and bound.
 */
export async function readBody(
  response: Response,
  maxBytes: number,
  options: { truncate?: boolean } = {},
): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const declared = _declaredLength(response.headers);
  const head = declared !== undefined && declared <= maxBytes
    ? await _readDeclared(response.body, declared)
    : undefined;
  const chunks: Uint8Array[] = head === undefined ? [] : [head];
  let total = head?.byteLength ?? 0;
  for await (const value of readChunks(response.body)) {
    if (total + value.byteLength > maxBytes && options.truncate) {
      chunks.push(value.subarray(0, maxBytes - total));
      total = maxBytes;
      break;
    }
    total += value.byteLength;
    if (total > maxBytes) {
      throw new FerryResponseError(`the answer is longer than ${maxBytes} bytes`, {
        max_bytes: maxBytes,
      });
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks, total);
}

/** The `content-length` of a body sent as is, or undefined. */
function _declaredLength(headers: Headers): number | undefined {
  const value = headers.get("content-length");
  if (value === null || headers.has("content-encoding") || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** A BYOB reader of `body` when it is a byte stream (a fetch body is), else undefined. */
export function byobReaderOf(
  body: ReadableStream<Uint8Array>,
): ReadableStreamBYOBReader | undefined {
  try {
    return body.getReader({ mode: "byob" });
  } catch (error) {
    if (error instanceof TypeError) return undefined;
    throw error;
  }
}

/**
 * Up to `length` bytes of `body`, read with a BYOB reader straight into one buffer of that size;
 * undefined, with nothing read, when `body` is not a byte stream.
 */
async function _readDeclared(
  body: ReadableStream<Uint8Array>,
  length: number,
): Promise<Uint8Array | undefined> {
  const reader = byobReaderOf(body);
  if (reader === undefined) return undefined;
  let buffer = new ArrayBuffer(length);
  let filled = 0;
  try {
    while (filled < length) {
      const view: Uint8Array<ArrayBuffer> = new Uint8Array(buffer, filled, length - filled);
      const { done, value } = await reader.read(view);
      // A read transfers the buffer it fills: keep the one it hands back.
      if (value !== undefined) buffer = value.buffer;
      if (done || value === undefined) break;
      filled += value.byteLength;
    }
  } finally {
    reader.releaseLock();
  }
  return new Uint8Array(buffer, 0, filled);
}

/** The `FerryHttpError` of a non-2xx answer (its body read up to `ERROR_BODY_BYTES_MAX`). */
export async function httpErrorOf(response: Response, request: string): Promise<FerryHttpError> {
  const retryAfterMs = _retryAfterMs(response.headers.get("retry-after"));
  const bytes = await readBody(response, ERROR_BODY_BYTES_MAX, { truncate: true });
  const text = new TextDecoder().decode(bytes);
  let body: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    const isErrorShape = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) &&
      typeof (parsed as Record<string, unknown>).error === "string";
    if (isErrorShape) body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): described by its status below.
  }
  body ??= {
    error: `http_${response.status}`,
    message: text.trim().slice(0, QUOTED_VALUE_CHARS_MAX) || response.statusText ||
      `HTTP ${response.status}`,
  };
  return new FerryHttpError(response.status, body, { retryAfterMs, request });
}

/** `Retry-After` (seconds, or an HTTP date) in ms; undefined when absent or unreadable. */
function _retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * MS_PER_SECOND);
  const dateMs = Date.parse(trimmed);
  return Number.isNaN(dateMs) ? undefined : Math.max(0, dateMs - Date.now());
}

/** A header that must be a non-negative safe integer (the position headers of a pull). */
export function uintHeader(headers: Headers, name: string): number {
  const value = headers.get(name);
  const parsed = value !== null && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed)) {
    throw new FerryResponseError(`pull: header ${name} is ${quote(value)}, not an integer`);
  }
  return parsed;
}

/**
 * Checks and decodes a raw-frame body in one pass (`decodeFrameRun`: one CRC-32 per frame, the
 * LSN from two u32 reads), until the first frame that is not "ok" or the body ends. The frames
 * before a damaged one are returned with `corrupt` saying where and why; so is a body that ends
 * before `expectedCount` frames.
 */
export function decodeFrames(
  bytes: Uint8Array,
  expectedCount: number | undefined,
): { frames: DecodedFrame[]; corrupt?: { offset: number; reason: string } } {
  const { frames, offset, stop } = decodeFrameRun(bytes);
  if (stop?.status === "incomplete") {
    const reason = `truncated frame: ${stop.bytesNeeded} more bytes needed`;
    return { frames, corrupt: { offset, reason } };
  }
  if (stop?.status === "corrupt") return { frames, corrupt: { offset, reason: stop.reason } };
  if (expectedCount !== undefined && frames.length < expectedCount) {
    const reason = `the body ended after ${frames.length} of ${expectedCount} frames`;
    return { frames, corrupt: { offset, reason } };
  }
  return { frames };
}

/** Where a raw-frame answer (a pull's or a stream's) says the server stands. */
export interface FramesPosition {
  currentLsn: number;
  oldestLsn: number;
  term: number;
  timeline: number;
  startLsn: number;
}

/**
 * The position headers of a raw-frame answer, once it is known readable: the frames media type
 * and, for a stream, a body (a pull's empty answer, as a long-poll that timed out gives, is read
 * as no frames). Otherwise the body is cancelled and `FerryResponseError` thrown.
 */
export async function framesPositionOf(
  response: Response,
  what: "pull" | "stream",
): Promise<FramesPosition> {
  const contentType = response.headers.get("content-type") ?? "";
  const bodyMissing = what === "stream" && response.body === null;
  if (!contentType.includes(FRAMES_MEDIA_TYPE) || bodyMissing) {
    await response.body?.cancel();
    throw new FerryResponseError(`${what}: expected ${FRAMES_MEDIA_TYPE}, got "${contentType}"`);
  }
  const header = (name: string) => uintHeader(response.headers, name);
  return {
    currentLsn: header(HEADER_CURRENT_LSN),
    oldestLsn: header(HEADER_OLDEST_LSN),
    term: header(HEADER_TERM),
    timeline: header(HEADER_TIMELINE),
    startLsn: header(HEADER_START_LSN),
  };
}

/**
 * The `FramePull` of a raw-frame pull's answer: its content type and position headers checked,
 * its body read (bounded) and checked in one pass (`decodeFrames`).
 */
export async function framePullOf(response: Response): Promise<FramePull> {
  const position = await framesPositionOf(response, "pull");
  const countHeader = response.headers.get(HEADER_RECORD_COUNT);
  const expectedCount = countHeader === null
    ? undefined
    : uintHeader(response.headers, HEADER_RECORD_COUNT);
  const bytes = await readBody(response, RESPONSE_BODY_BYTES_MAX);
  const { frames, corrupt } = decodeFrames(bytes, expectedCount);
  return corrupt ? { frames, corrupt, ...position } : { frames, ...position };
}

/** The `JsonPull` of a JSON pull's answer, field by field. */
export function jsonPullOf(body: Record<string, unknown>): JsonPull {
  const field = fieldReader(body, "pull");
  const records = field.array("records").map((item, index) => {
    const record = fieldReader(
      asObject(item, `pull: records[${index}]`),
      `pull: records[${index}]`,
    );
    return {
      lsn: record.uint("lsn"),
      term: record.uint("term"),
      timestampMs: record.uint("timestamp_ms"),
      record: (item as Record<string, unknown>).record ?? null,
    };
  });
  return {
    records,
    currentLsn: field.uint("current_lsn"),
    oldestLsn: field.uint("oldest_lsn"),
    term: field.uint("term"),
    timeline: field.uint("timeline"),
  };
}

/** The `WriteResponse` of a write's JSON answer, its commit outcome checked. */
export function writeResponseOf(body: Record<string, unknown>): WriteResponse {
  const field = fieldReader(body, "write");
  const commit = fieldReader(field.object("commit"), "write: commit");
  const outcome = commit.string("outcome");
  if (outcome !== "not_required" && outcome !== "reached" && outcome !== "timed_out") {
    throw new FerryResponseError(`write: unknown commit outcome ${quote(outcome)}`);
  }
  return {
    firstLsn: field.uint("first_lsn"),
    lastLsn: field.uint("last_lsn"),
    term: field.uint("term"),
    timeline: field.uint("timeline"),
    commit: {
      policy: commit.string("policy"),
      outcome,
      durableReplicas: commit.stringArray("durable_replicas"),
      regions: commit.stringArray("regions"),
      waitedMs: commit.number("waited_ms"),
      required: commit.uint("required"),
      observed: commit.uint("observed"),
    },
  };
}

// ---- field checks (answers and snapshot lines) ----

/** Makes the error a failed field check throws (the answer's, or the snapshot line's). */
export type Fail = (message: string) => Error;

/** A value as JSON for an error message, cut at `QUOTED_VALUE_CHARS_MAX` characters. */
export function quote(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value) ?? String(value);
  return text.length > QUOTED_VALUE_CHARS_MAX
    ? `${text.slice(0, QUOTED_VALUE_CHARS_MAX)}...`
    : text;
}

/** `value` as a JSON object, else a `FerryResponseError` that names `context`. */
export function asObject(value: unknown, context: string): Record<string, unknown> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  throw new FerryResponseError(`${context}: expected a JSON object, got ${quote(value)}`);
}

/** Typed getters of an object's fields, each by its wire name. */
export interface FieldReader {
  uint(name: string): number;
  number(name: string): number;
  string(name: string): string;
  boolean(name: string): boolean;
  array(name: string): unknown[];
  stringArray(name: string): string[];
  object(name: string): Record<string, unknown>;
}

/** Typed getters of an object's fields; a missing or mistyped field throws what `fail` makes. */
export function fieldReader(
  object: Record<string, unknown>,
  context: string,
  fail: Fail = (message) => new FerryResponseError(message),
): FieldReader {
  const check = <T>(name: string, ok: (value: unknown) => boolean, expected: string): T => {
    const value = object[name];
    if (!ok(value)) throw fail(`${context}: ${name} must be ${expected}, got ${quote(value)}`);
    return value as T;
  };
  return {
    uint: (name: string) =>
      check<number>(
        name,
        (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0,
        "a non-negative integer",
      ),
    number: (name: string) =>
      check<number>(name, (v) => typeof v === "number" && Number.isFinite(v), "a number"),
    string: (name: string) => check<string>(name, (v) => typeof v === "string", "a string"),
    boolean: (name: string) => check<boolean>(name, (v) => typeof v === "boolean", "a boolean"),
    array: (name: string) => check<unknown[]>(name, Array.isArray, "an array"),
    stringArray: (name: string) =>
      check<string[]>(
        name,
        (v) => Array.isArray(v) && v.every((item) => typeof item === "string"),
        "an array of strings",
      ),
    object: (name: string) =>
      check<Record<string, unknown>>(
        name,
        (v) => typeof v === "object" && v !== null && !Array.isArray(v),
        "an object",
      ),
  };
}

/** A `GET /v1/topology` answer. */
export function topologyOf(body: Record<string, unknown>): Topology {
  const field = fieldReader(body, "topology");
  const primary = fieldReader(field.object("primary"), "topology: primary");
  return {
    epoch: field.uint("epoch"),
    primary: {
      url: primary.string("url"),
      region: primary.string("region"),
      term: primary.uint("term"),
      timeline: primary.uint("timeline"),
      currentLsn: primary.uint("current_lsn"),
    },
    replicas: field.array("replicas").map((item, index) => {
      const context = `topology: replicas[${index}]`;
      const replica = fieldReader(asObject(item, context), context);
      return {
        id: replica.string("id"),
        region: replica.string("region"),
        healthy: replica.boolean("healthy"),
        rebootstrapping: replica.boolean("rebootstrapping"),
        lastAppliedLsn: replica.uint("last_applied_lsn"),
        lagLsn: replica.uint("lag_lsn"),
        lagMs: replica.number("lag_ms"),
      };
    }),
    ...(body.leader === undefined ? {} : { leader: topologyLeaderOf(body.leader) }),
  };
}

/** The `leader` of a cluster member's topology: null during an election. */
export function topologyLeaderOf(value: unknown): TopologyLeader | null {
  if (value === null) return null;
  const context = "topology: leader";
  const leader = fieldReader(asObject(value, context), context);
  return { nodeId: leader.string("node_id"), url: leader.string("url"), term: leader.uint("term") };
}
