/**
 * The body of `POST /v1/records` (SPEC.md 9.2), checked by hand on the hot path: its media type
 * (JSON or NDJSON, else 415), its size while it is read (413), then one pass that parses,
 * validates and encodes every record into one buffer. zod's schemas describe the same shape for
 * `/openapi.json` (`routes/records.ts`); `tests/http/write_body_test.ts` feeds both the same
 * bodies and holds them to the same verdicts.
 *
 * No record is copied, stamped into a new object or kept as a text of its own: each record's
 * compact JSON (fields in the order of `encodeChangeRecord`, `ts` stamped) is appended to one
 * string as it is checked, the string is encoded once, and the spool gets one view per record
 * into that one buffer.
 *
 * @module
 */

import { concatBytes, decodeUtf8Strict, utf8Length } from "../core/bytes.ts";
import {
  BadRequestError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from "../core/errors.ts";
import {
  COLLECTION_BYTES_MAX,
  COMMIT_TIMEOUT_MS_MAX,
  JSON_DEPTH_MAX,
  KEY_BYTES_MAX,
  QUERY_NUMBER_DIGITS_MAX,
  U64_SAFE_MAX,
} from "../core/limits.ts";
import { COLLECTION_PATTERN } from "../model/ids.ts";
import { jsonShapeWithin } from "../model/records.ts";
import { JSON_MEDIA_TYPE, NDJSON_MEDIA_TYPE } from "../model/wire.ts";
import { type CommitPolicy, parseCommitPolicy } from "../replication/commit_policy.ts";
import type { WriteLimits } from "./router.ts";
import { encodeUtf8Fresh, scanJsonWrite, scanNdjsonWrite } from "./write_scan.ts";

/** How a write body is laid out: one JSON object, or one change record per line. */
export type WriteBodyFormat = "json" | "ndjson";

/** A validated write: each record's payload, and the options that came with it. */
export interface WriteRequest {
  payloads: Uint8Array[];
  policy: CommitPolicy | undefined;
  timeoutMs: number | undefined;
}

/** The query parameters an NDJSON write takes its options from (null or undefined: absent). */
export interface WriteQuery {
  commitPolicy?: string | null;
  timeoutMs?: string | null;
}

const _TIMEOUT_PATTERN = new RegExp(`^\\d{1,${QUERY_NUMBER_DIGITS_MAX}}$`);
/** A key of at most this many UTF-16 units is at most `KEY_BYTES_MAX` bytes (3 bytes a unit). */
const _KEY_UNITS_SURELY_SHORT = Math.floor(KEY_BYTES_MAX / 3);
const _BODY_FIELDS = new Set(["records", "commit_policy", "timeout_ms"]);

/**
 * The format of a body with this `content-type`: `application/json` or `application/x-ndjson`
 * (any case, parameters allowed, but a charset only if it is UTF-8).
 *
 * @throws {UnsupportedMediaTypeError} for anything else, naming the two it takes.
 */
export function writeBodyFormat(contentType: string | null | undefined): WriteBodyFormat {
  if (contentType === JSON_MEDIA_TYPE) return "json";
  const text = contentType ?? "";
  const semicolon = text.indexOf(";");
  const essence = (semicolon < 0 ? text : text.slice(0, semicolon)).trim().toLowerCase();
  const format = essence === JSON_MEDIA_TYPE
    ? "json"
    : essence === NDJSON_MEDIA_TYPE
    ? "ndjson"
    : undefined;
  if (format !== undefined && (semicolon < 0 || _charsetIsUtf8(text.slice(semicolon + 1)))) {
    return format;
  }
  throw new UnsupportedMediaTypeError(
    `the body must be ${JSON_MEDIA_TYPE} or ${NDJSON_MEDIA_TYPE} (one change record per line), ` +
      `in UTF-8; got ${contentType ? JSON.stringify(contentType.slice(0, 100)) : "none"}`,
    { expected: [JSON_MEDIA_TYPE, NDJSON_MEDIA_TYPE] },
  );
}

/** True unless the parameters name a charset other than UTF-8. */
function _charsetIsUtf8(parameters: string): boolean {
  for (const parameter of parameters.split(";")) {
    const equals = parameter.indexOf("=");
    if (equals < 0 || parameter.slice(0, equals).trim().toLowerCase() !== "charset") continue;
    const value = parameter.slice(equals + 1).trim().replace(/^"(.*)"$/, "$1").toLowerCase();
    if (value !== "utf-8") return false;
  }
  return true;
}

/**
 * Reads the body of `request`, refusing it (413) as soon as it is known to pass `maxBytes`: at
 * once from its `content-length`, else while it streams in. A body with a length is taken whole
 * without touching `request.body`: making that stream costs Deno more than reading the body.
 */
export async function readWriteBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && !request.headers.has("transfer-encoding")) {
    if (Number(declared) > maxBytes) throw _bodyTooLarge(maxBytes);
    const bytes = await request.bytes();
    if (bytes.byteLength > maxBytes) throw _bodyTooLarge(maxBytes);
    return bytes;
  }
  const body = request.body;
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      throw _bodyTooLarge(maxBytes);
    }
    chunks.push(value);
  }
  return concatBytes(chunks, size);
}

function _bodyTooLarge(maxBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`, {
    max_bytes: maxBytes,
  });
}

/**
 * A JSON write body `{"records": [...], "commit_policy"?, "timeout_ms"?}`, validated and encoded.
 * Throws `BadRequestError` (400) for anything zod's `writeBodySchema` refuses, and
 * `PayloadTooLargeError` (413) for a valid body with a record above `recordBytesMax`. A body in
 * the common form takes the byte scan of `write_scan.ts`; any other, `parseJsonWriteGeneral`.
 */
export function parseJsonWrite(
  bytes: Uint8Array,
  options: { limits: WriteLimits; nowMs: number },
): WriteRequest {
  const scanned = scanJsonWrite(bytes, options.limits, options.nowMs);
  if (scanned === undefined) return parseJsonWriteGeneral(bytes, options);
  const { payloads, policyText, timeoutMs } = scanned;
  // The scan found nothing else wrong, so this is the general path's next check too.
  const policy = policyText === undefined ? undefined : parseCommitPolicy(policyText);
  return { payloads, policy, timeoutMs };
}

/** `parseJsonWrite` through JSON.parse, for every body: the same verdicts and bytes. */
export function parseJsonWriteGeneral(
  bytes: Uint8Array,
  options: { limits: WriteLimits; nowMs: number },
): WriteRequest {
  let body: unknown;
  try {
    body = JSON.parse(decodeUtf8Strict(bytes));
  } catch {
    throw new BadRequestError("the request body is not valid UTF-8 JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadRequestError("the request body must be a JSON object with records");
  }
  const fields = body as Record<string, unknown>;
  for (const name in fields) {
    if (!_BODY_FIELDS.has(name)) {
      throw new BadRequestError(`the request body has an unknown field ${_quoted(name)}`);
    }
  }
  const { records, commit_policy: policyText, timeout_ms: timeoutMs } = fields;
  if (!Array.isArray(records) || records.length === 0) {
    throw new BadRequestError("records must be an array of at least one record");
  }
  _checkRecordCount(records.length, options.limits);
  if (policyText !== undefined && typeof policyText !== "string") {
    throw new BadRequestError("commit_policy must be a string");
  }
  if (timeoutMs !== undefined && !_isTimeoutMs(timeoutMs)) {
    throw new BadRequestError(
      `timeout_ms must be a whole number of milliseconds, 0..${COMMIT_TIMEOUT_MS_MAX}`,
    );
  }
  const policy = policyText === undefined ? undefined : parseCommitPolicy(policyText);
  const encoder = new _RecordEncoder(options.nowMs, "records");
  for (let index = 0; index < records.length; index++) encoder.add(records[index], index);
  return {
    payloads: encoder.finish(options.limits.recordBytesMax),
    policy,
    timeoutMs: timeoutMs as number | undefined,
  };
}

/**
 * An NDJSON write body: one change record per line (`\n`, optionally `\r\n`; empty lines are
 * skipped), its options from the query. The same limits and verdicts as `parseJsonWrite`; the
 * common form takes the byte scan, any other `parseNdjsonWriteGeneral`.
 */
export function parseNdjsonWrite(
  bytes: Uint8Array,
  query: WriteQuery,
  options: { limits: WriteLimits; nowMs: number },
): WriteRequest {
  const payloads = scanNdjsonWrite(bytes, options.limits, options.nowMs);
  if (payloads === undefined) return parseNdjsonWriteGeneral(bytes, query, options);
  return { payloads, ..._queryOptions(query) }; // ASCII: the general path's decode passes too
}

/** `parseNdjsonWrite` through JSON.parse of each line, for every body. */
export function parseNdjsonWriteGeneral(
  bytes: Uint8Array,
  query: WriteQuery,
  options: { limits: WriteLimits; nowMs: number },
): WriteRequest {
  let text: string;
  try {
    text = decodeUtf8Strict(bytes);
  } catch {
    throw new BadRequestError("the request body is not valid UTF-8");
  }
  const { policy, timeoutMs } = _queryOptions(query);
  const encoder = new _RecordEncoder(options.nowMs, "line");
  let start = 0;
  let line = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const stop = end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end; // "\r\n"
    line += 1;
    if (stop > start) {
      _checkRecordCount(encoder.count + 1, options.limits);
      let record: unknown;
      try {
        record = JSON.parse(text.slice(start, stop));
      } catch {
        throw new BadRequestError(`line ${line} is not a JSON value`, { line });
      }
      encoder.add(record, line);
    }
    start = end + 1;
  }
  if (encoder.count === 0) throw new BadRequestError("the body holds no record");
  return { payloads: encoder.finish(options.limits.recordBytesMax), policy, timeoutMs };
}

function _queryOptions(query: WriteQuery): Omit<WriteRequest, "payloads"> {
  return {
    policy: query.commitPolicy == null ? undefined : parseCommitPolicy(query.commitPolicy),
    timeoutMs: query.timeoutMs == null ? undefined : _queryTimeoutMs(query.timeoutMs),
  };
}

function _checkRecordCount(count: number, limits: WriteLimits): void {
  if (count > limits.requestRecordsMax) {
    throw new BadRequestError(
      `at most ${limits.requestRecordsMax} records per request` +
        (count > limits.requestRecordsMax + 1 ? `, got ${count}` : ""),
      { max_records: limits.requestRecordsMax },
    );
  }
}

function _isTimeoutMs(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 &&
    value <= COMMIT_TIMEOUT_MS_MAX;
}

function _queryTimeoutMs(text: string): number {
  const value = Number(text);
  if (!_TIMEOUT_PATTERN.test(text) || value > COMMIT_TIMEOUT_MS_MAX) {
    throw new BadRequestError(
      `timeout_ms must be a whole number of milliseconds, 0..${COMMIT_TIMEOUT_MS_MAX}`,
    );
  }
  return value;
}

function _quoted(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text);
}

/**
 * Validates records one at a time (the checks of `changeRecordSchema`) and appends their compact
 * JSON to one string; `finish` encodes it once and cuts it into one view per record.
 */
class _RecordEncoder {
  #nowMs: number;
  /** The last collection found valid: a batch mostly writes to one, so its check runs once. */
  #collection: unknown = _NONE;
  /** What a position is called in messages: `records` (`records[3]`) or `line` (`line 4`). */
  #where: "records" | "line";
  #text = "";
  /** Where each record's JSON ends in `#text`, in UTF-16 units. */
  #ends: number[] = [];

  constructor(nowMs: number, where: "records" | "line") {
    this.#nowMs = nowMs;
    this.#where = where;
  }

  get count(): number {
    return this.#ends.length;
  }

  /** Checks `input` as a change record and appends it; `at` is its index or line number. */
  add(input: unknown, at: number): void {
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw this.#invalid(at, "must be a JSON object (a change record)");
    }
    const record = input as Record<string, unknown>;
    for (const name in record) {
      if (name !== "op" && name !== "collection" && name !== "key" && name !== "value") {
        if (name !== "ts") throw this.#invalid(at, `has an unknown field ${_quoted(name)}`);
      }
    }
    const { op, collection, key, value, ts } = record;
    if (op !== "put" && op !== "delete") throw this.#invalid(at, 'op must be "put" or "delete"');
    if (collection !== this.#collection) {
      if (typeof collection !== "string" || !COLLECTION_PATTERN.test(collection)) {
        throw this.#invalid(at, _BAD_COLLECTION);
      }
      this.#collection = collection;
    }
    if (typeof key !== "string" || !_isKey(key)) {
      throw this.#invalid(
        at,
        `key must be 1..${KEY_BYTES_MAX} bytes of well-formed UTF-8 without NUL`,
      );
    }
    if (op === "put") {
      if (value === undefined) throw this.#invalid(at, "a put needs a value");
      if (!jsonShapeWithin(value, JSON_DEPTH_MAX)) throw this.#invalid(at, _BAD_VALUE);
    } else if (value !== undefined) throw this.#invalid(at, "a delete has no value");
    let stamp = this.#nowMs;
    if (ts !== undefined) {
      if (typeof ts !== "number" || !Number.isInteger(ts) || ts < 0 || ts > U64_SAFE_MAX) {
        throw this.#invalid(at, "ts must be a whole number of milliseconds, 0..2^53-1");
      }
      stamp = ts;
    }
    // The bytes of encodeChangeRecord: a collection needs no escaping, so it is quoted as is.
    this.#text += op === "put"
      ? `{"op":"put","collection":"${collection}","key":${JSON.stringify(key)},"value":${
        JSON.stringify(value)
      },"ts":${stamp}}`
      : `{"op":"delete","collection":"${collection}","key":${JSON.stringify(key)},"ts":${stamp}}`;
    this.#ends.push(this.#text.length);
  }

  /** Encodes every record at once; 413 for the first one above `recordBytesMax` bytes. */
  finish(recordBytesMax: number): Uint8Array[] {
    const text = this.#text;
    const bytes = encodeUtf8Fresh(text);
    const ascii = bytes.byteLength === text.length;
    const payloads = new Array<Uint8Array>(this.#ends.length);
    let start = 0;
    let offset = 0;
    for (let index = 0; index < this.#ends.length; index++) {
      const end = this.#ends[index]!;
      const length = ascii ? end - start : utf8Length(text, start, end);
      if (length > recordBytesMax) {
        throw new PayloadTooLargeError(
          `record ${index} is ${length} bytes; the limit is ${recordBytesMax}`,
          { index, max_bytes: recordBytesMax },
        );
      }
      payloads[index] = bytes.subarray(offset, offset + length);
      start = end;
      offset += length;
    }
    return payloads;
  }

  #invalid(at: number, problem: string): BadRequestError {
    return this.#where === "records"
      ? new BadRequestError(`records[${at}] ${problem}`, { index: at })
      : new BadRequestError(`line ${at} ${problem}`, { line: at });
  }
}

/** No JSON value equals it: the encoder's "no collection checked yet". */
const _NONE = Symbol("none");
const _BAD_COLLECTION =
  `collection must be 1..${COLLECTION_BYTES_MAX} characters of [A-Za-z0-9_.-]`;
const _BAD_VALUE = `value must nest at most ${JSON_DEPTH_MAX} levels deep, with well-formed ` +
  "strings and numbers within the range of a double (not 1e400)";

/** A record key: 1..KEY_BYTES_MAX bytes of well-formed UTF-8 without NUL (`isRecordKey`). */
function _isKey(key: string): boolean {
  if (key.length === 0 || key.length > KEY_BYTES_MAX) return false;
  if (!key.isWellFormed() || key.includes("\u0000")) return false;
  return key.length <= _KEY_UNITS_SURELY_SHORT || utf8Length(key) <= KEY_BYTES_MAX;
}
