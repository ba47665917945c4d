/**
 * `FerryClient`: a typed client of ferry's HTTP API v1 (SPEC.md section 9), usable on its own by an
 * edge app or by the replica. Responses are mapped from the wire's snake_case to camelCase and
 * checked field by field; every non-2xx answer is a `FerryHttpError` carrying the JSON error body.
 *
 * Three kinds of failure stay apart: `FerryHttpError` (the server answered with an error status),
 * `FerryResponseError` (a 2xx answer that does not have the documented shape or size), and
 * `SnapshotFormatError` (a snapshot stream line that is malformed, too long or out of order).
 * Network failures are the `TypeError` of `fetch`, untouched.
 *
 * @module
 */

import { FerryHttpError, FerryResponseError, SnapshotFormatError } from "../core/errors.ts";
import {
  ERROR_BODY_BYTES_MAX,
  QUOTED_VALUE_CHARS_MAX,
  RESPONSE_BODY_BYTES_MAX,
  SNAPSHOT_LINE_BYTES_MAX,
} from "../core/limits.ts";
import { type DecodedFrame, decodeFrame } from "../wal/frame.ts";
import {
  formatSnapshotCursor,
  FRAMES_MEDIA_TYPE,
  HEADER_CURRENT_LSN,
  HEADER_OLDEST_LSN,
  HEADER_RECORD_COUNT,
  HEADER_START_LSN,
  HEADER_TERM,
  HEADER_TIMELINE,
  JSON_MEDIA_TYPE,
  NDJSON_MEDIA_TYPE,
  SNAPSHOT_FORMAT,
} from "../model/wire.ts";
import { concatBytes } from "../core/bytes.ts";

/** User agent sent when `ClientOptions.userAgent` is not set. */
export const DEFAULT_USER_AGENT = "ferry-client/1";

const NEWLINE_BYTE = 0x0a;
const MS_PER_SECOND = 1000;

/** Options of `new FerryClient()`. */
export interface ClientOptions {
  /** Bearer token, sent as `authorization: Bearer <token>`. */
  token?: string;
  /** The `fetch` to use (tests pass `app.request`); the global one by default. */
  fetch?: typeof fetch;
  userAgent?: string;
}

/** A record to write: a put carries the whole value, a delete none. */
export type WriteRecord =
  | { op: "put"; collection: string; key: string; value: unknown; ts?: number }
  | { op: "delete"; collection: string; key: string; ts?: number };

/** Options of `write()`. */
export interface WriteOptions {
  /** `local`, `ack_n=N`, `quorum` or `regions=a,b`; the server's floor when absent. */
  commitPolicy?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What the commit policy reached (SPEC.md 9.2). */
export interface CommitResult {
  policy: string;
  outcome: "not_required" | "reached" | "timed_out";
  durableReplicas: string[];
  regions: string[];
  waitedMs: number;
  required: number;
  observed: number;
}

/** Answer to a write: the records are durable on the primary with LSNs `firstLsn..lastLsn`. */
export interface WriteResponse {
  firstLsn: number;
  lastLsn: number;
  term: number;
  timeline: number;
  commit: CommitResult;
}

/** Options of `read()`. */
export interface ReadOptions {
  /** Wait until this LSN is applied before reading. */
  minLsn?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A record read from the materialised state (SPEC.md 9.7). */
export interface ReadResponse {
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
  appliedLsn: number;
}

/** Query of a pull (SPEC.md 9.3); absent fields take the server's defaults. */
export interface PullOptions {
  sinceLsn?: number;
  maxCount?: number;
  maxBytes?: number;
  replicaId?: string;
  term?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Where the primary's log stood when it answered a pull. */
export interface PullPosition {
  currentLsn: number;
  oldestLsn: number;
  term: number;
  timeline: number;
}

/** A raw-frame pull: the frames that decoded, and where decoding stopped if one did not. */
export interface FramePull extends PullPosition {
  /** Every frame before the first one that is not "ok", in order; views into the body. */
  frames: DecodedFrame[];
  /** The first frame that did not decode (torn, flipped bit, missing): its body offset and why. */
  corrupt?: { offset: number; reason: string };
  /** The LSN the primary served after (`x-ferry-start-lsn`). */
  startLsn: number;
}

/** One record of a JSON pull. */
export interface PulledRecord {
  lsn: number;
  term: number;
  timestampMs: number;
  /** The change record as the primary parsed it (null when its payload was not JSON); unvalidated. */
  record: unknown;
}

/** A JSON pull. */
export interface JsonPull extends PullPosition {
  records: PulledRecord[];
}

/** Body of `register()`. */
export interface RegisterOptions {
  region?: string;
  /** The replica's own durable position; the slot's restart LSN when absent. */
  sinceLsn?: number;
}

/** Answer to `register()`: resume after `resumeLsn`. */
export interface RegisterResponse {
  resumeLsn: number;
  term: number;
  timeline: number;
  currentLsn: number;
}

/** Body of `ack()`. */
export interface Ack {
  appliedLsn: number;
  durableLsn?: number;
  applyErrorsTotal?: number;
  divergenceTotal?: number;
}

/** Answer to `ack()`: the replica's progress as the primary now records it. */
export interface AckResponse {
  replicaId: string;
  appliedLsn: number;
  durableLsn: number;
  applyErrorsTotal: number;
  divergenceTotal: number;
}

/** Options of `snapshot()`. */
export interface SnapshotOptions {
  /** Resume after this entry (the last one applied before a cut). */
  after?: { collection: string; key: string };
  signal?: AbortSignal;
}

/** First line of a snapshot stream. */
export interface SnapshotHeader {
  type: "header";
  startLsn: number;
  term: number;
  timeline: number;
  format: number;
}

/** One key of a snapshot stream. */
export interface SnapshotEntry {
  type: "entry";
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
  /**
   * The line exactly as received, without its terminating "\n". The trailer's CRC-32 covers the
   * UTF-8 bytes of `raw + "\n"` of every entry, in order.
   */
  raw: string;
}

/** Last line of a snapshot stream. */
export interface SnapshotTrailer {
  type: "trailer";
  endLsn: number;
  count: number;
  crc32: number;
}

/** One parsed line of a snapshot stream. */
export type SnapshotLine = SnapshotHeader | SnapshotEntry | SnapshotTrailer;

/** Options of `topology()`. */
export interface TopologyOptions {
  /** Hold the request until the epoch differs from this one (or the wait ends). */
  waitEpoch?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A replica as the topology shows it. */
export interface TopologyReplica {
  id: string;
  region: string;
  healthy: boolean;
  rebootstrapping: boolean;
  lastAppliedLsn: number;
  lagLsn: number;
  lagMs: number;
}

/** The topology document (SPEC.md 9.5); `replicas` is empty for unauthenticated callers. */
export interface Topology {
  epoch: number;
  primary: { url: string; region: string; term: number; timeline: number; currentLsn: number };
  replicas: TopologyReplica[];
}

type _Query = Record<string, string | number | undefined>;

interface _RequestOptions {
  query?: _Query;
  json?: unknown;
  accept?: string;
  signal?: AbortSignal;
}

/**
 * A client of one ferry server (a primary, or a replica for reads, status and health).
 *
 * Every method does network I/O: it needs `--allow-net` for the host of `baseUrl` (unless
 * `options.fetch` is replaced).
 *
 * @example
 * ```ts
 * const client = new FerryClient("http://127.0.0.1:8787", { token: Deno.env.get("FERRY_TOKEN") });
 * const { lastLsn } = await client.write([{ op: "put", collection: "users", key: "u1", value: 1 }]);
 * const user = await client.read("users", "u1", { minLsn: lastLsn });
 * ```
 */
export class FerryClient {
  readonly #baseUrl: string;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;

  /**
   * `baseUrl` is the server's root (a path prefix is kept); a malformed URL throws `TypeError`.
   *
   * @example
   * ```ts
   * const client = new FerryClient("https://ferry.example.com", { token: "secret" });
   * ```
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    new URL(baseUrl); // Throws TypeError on a malformed URL, now rather than at the first call.
    this.#baseUrl = baseUrl.replace(/\/+$/, "");
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#headers = { "user-agent": options.userAgent ?? DEFAULT_USER_AGENT };
    if (options.token !== undefined) this.#headers.authorization = `Bearer ${options.token}`;
  }

  /**
   * Appends records (`POST /v1/records`). They are durable on the primary when this resolves; a
   * 504 `commit_timeout` (server option fail-on-commit-timeout) throws a `FerryHttpError` whose
   * `body` still carries `first_lsn` and `last_lsn`: those records are durable too.
   *
   * @example
   * ```ts
   * const result = await client.write(
   *   [{ op: "delete", collection: "users", key: "u1" }],
   *   { commitPolicy: "ack_n=1", timeoutMs: 2000 },
   * );
   * if (result.commit.outcome === "timed_out") console.warn("durable locally only");
   * ```
   */
  async write(records: WriteRecord[], options: WriteOptions = {}): Promise<WriteResponse> {
    const json: Record<string, unknown> = { records };
    if (options.commitPolicy !== undefined) json.commit_policy = options.commitPolicy;
    if (options.timeoutMs !== undefined) json.timeout_ms = options.timeoutMs;
    const body = await this.#json("POST", "/v1/records", { json, signal: options.signal });
    return _writeResponseOf(body);
  }

  /**
   * Reads one key (`GET /v1/records/:collection/:key`); `undefined` when it is absent (404
   * `not_found`). With `minLsn`, a 503 `lsn_not_applied` throws a `FerryHttpError` with
   * `retryAfterMs`.
   *
   * @example
   * ```ts
   * const found = await client.read("users", "u1", { minLsn: 42, awaitTimeoutMs: 1000 });
   * console.log(found?.value);
   * ```
   */
  async read(
    collection: string,
    key: string,
    options: ReadOptions = {},
  ): Promise<ReadResponse | undefined> {
    const path = `/v1/records/${encodeURIComponent(collection)}/${encodeURIComponent(key)}`;
    const query = { min_lsn: options.minLsn, await_timeout_ms: options.awaitTimeoutMs };
    let body: Record<string, unknown>;
    try {
      body = await this.#json("GET", path, { query, signal: options.signal });
    } catch (error) {
      if (error instanceof FerryHttpError && error.status === 404 && error.code === "not_found") {
        return undefined;
      }
      throw error;
    }
    const field = _fieldReader(body, "read");
    if (!("value" in body)) throw new FerryResponseError("read: the answer has no value");
    return {
      collection: field.string("collection"),
      key: field.string("key"),
      value: body.value,
      lsn: field.uint("lsn"),
      appliedLsn: field.uint("applied_lsn"),
    };
  }

  /**
   * Pulls raw frames (`GET /v1/wal`, `Accept: application/x-ferry-frames`) and decodes each one,
   * CRC-checked (v2 and v3 only). Decoding stops at the first frame that is not "ok": `frames`
   * holds the ones before it and `corrupt` says where and why. A body that ends after fewer frames
   * than `x-ferry-record-count` announced is reported the same way.
   *
   * @example
   * ```ts
   * const pull = await client.pullFrames({ replicaId: "edge-1", sinceLsn: 41, awaitTimeoutMs: 25_000 });
   * for (const frame of pull.frames) console.log(frame.lsn);
   * if (pull.corrupt) console.warn(`frame at ${pull.corrupt.offset}: ${pull.corrupt.reason}`);
   * ```
   */
  async pullFrames(options: PullOptions): Promise<FramePull> {
    const response = await this.#send("GET", "/v1/wal", {
      query: _pullQuery(options),
      accept: FRAMES_MEDIA_TYPE,
      signal: options.signal,
    });
    const contentType = response.headers.get("content-type") ?? "";
    if (!contentType.includes(FRAMES_MEDIA_TYPE)) {
      await response.body?.cancel();
      throw new FerryResponseError(`pull: expected ${FRAMES_MEDIA_TYPE}, got "${contentType}"`);
    }
    const header = (name: string) => _uintHeader(response.headers, name);
    const position = {
      currentLsn: header(HEADER_CURRENT_LSN),
      oldestLsn: header(HEADER_OLDEST_LSN),
      term: header(HEADER_TERM),
      timeline: header(HEADER_TIMELINE),
      startLsn: header(HEADER_START_LSN),
    };
    const countHeader = response.headers.get(HEADER_RECORD_COUNT);
    const expectedCount = countHeader === null ? undefined : header(HEADER_RECORD_COUNT);
    const bytes = await _readBody(response, RESPONSE_BODY_BYTES_MAX);
    const { frames, corrupt } = _decodeFrames(bytes, expectedCount);
    return corrupt ? { frames, corrupt, ...position } : { frames, ...position };
  }

  /**
   * Pulls records as JSON (`GET /v1/wal`). A 409 `rebootstrap_required` throws a `FerryHttpError`
   * whose body has `invalidation_reason` and `oldest_lsn`.
   *
   * @example
   * ```ts
   * const pull = await client.pullJson({ sinceLsn: 0, maxCount: 100 });
   * for (const { lsn, record } of pull.records) console.log(lsn, record);
   * ```
   */
  async pullJson(options: PullOptions): Promise<JsonPull> {
    const body = await this.#json("GET", "/v1/wal", {
      query: _pullQuery(options),
      signal: options.signal,
    });
    const field = _fieldReader(body, "pull");
    const records = field.array("records").map((item, index) => {
      const record = _fieldReader(
        _asObject(item, `pull: records[${index}]`),
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

  /**
   * Registers a replica (`PUT /v1/replicas/:id`); idempotent. A 409 `rebootstrap_required` means
   * the declared position is no longer in the spool: load a snapshot.
   *
   * @example
   * ```ts
   * const { resumeLsn } = await client.register("edge-1", { region: "eu", sinceLsn: 41 });
   * ```
   */
  async register(replicaId: string, body: RegisterOptions = {}): Promise<RegisterResponse> {
    const json: Record<string, unknown> = {};
    if (body.region !== undefined) json.region = body.region;
    if (body.sinceLsn !== undefined) json.since_lsn = body.sinceLsn;
    const answer = await this.#json("PUT", _replicaPath(replicaId), { json });
    const field = _fieldReader(answer, "register");
    return {
      resumeLsn: field.uint("resume_lsn"),
      term: field.uint("term"),
      timeline: field.uint("timeline"),
      currentLsn: field.uint("current_lsn"),
    };
  }

  /**
   * Acknowledges progress (`POST /v1/replicas/:id/ack`).
   *
   * @example
   * ```ts
   * await client.ack("edge-1", { appliedLsn: 57, durableLsn: 57 });
   * ```
   */
  async ack(replicaId: string, ack: Ack): Promise<AckResponse> {
    const json: Record<string, unknown> = { applied_lsn: ack.appliedLsn };
    if (ack.durableLsn !== undefined) json.durable_lsn = ack.durableLsn;
    if (ack.applyErrorsTotal !== undefined) json.apply_errors_total = ack.applyErrorsTotal;
    if (ack.divergenceTotal !== undefined) json.divergence_total = ack.divergenceTotal;
    const answer = await this.#json("POST", `${_replicaPath(replicaId)}/ack`, { json });
    const field = _fieldReader(answer, "ack");
    return {
      replicaId: field.string("replica_id"),
      appliedLsn: field.uint("applied_lsn"),
      durableLsn: field.uint("durable_lsn"),
      applyErrorsTotal: field.uint("apply_errors_total"),
      divergenceTotal: field.uint("divergence_total"),
    };
  }

  /**
   * Sets the replica's `rebootstrapping` flag (`PUT /v1/replicas/:id/rebootstrapping`).
   *
   * @example
   * ```ts
   * await client.setRebootstrapping("edge-1", true);
   * ```
   */
  async setRebootstrapping(replicaId: string, rebootstrapping: boolean): Promise<void> {
    const path = `${_replicaPath(replicaId)}/rebootstrapping`;
    await this.#json("PUT", path, { json: { rebootstrapping } });
  }

  /**
   * Unregisters a replica (`DELETE /v1/replicas/:id`, admin); a 404 `not_found` when it is not
   * registered.
   *
   * @example
   * ```ts
   * await client.unregister("edge-1");
   * ```
   */
  async unregister(replicaId: string): Promise<void> {
    await this.#json("DELETE", _replicaPath(replicaId));
  }

  /**
   * Streams a snapshot (`GET /v1/snapshot`), one parsed line at a time, never buffering more than
   * one line (`SNAPSHOT_LINE_BYTES_MAX`). The order is checked: a header first, then entries, then
   * a trailer, then nothing; a stream that ends before its trailer, or a malformed or overlong
   * line, throws `SnapshotFormatError` after the lines before it were yielded. Breaking out of the
   * loop cancels the body. The CRC of the trailer is left to the caller (see `SnapshotEntry.raw`).
   *
   * @example
   * ```ts
   * for await (const line of client.snapshot("edge-1", { after: { collection: "users", key: "u9" } })) {
   *   if (line.type === "entry") console.log(line.collection, line.key, line.value);
   * }
   * ```
   */
  async *snapshot(
    replicaId: string,
    options: SnapshotOptions = {},
  ): AsyncGenerator<SnapshotLine, void, undefined> {
    const after = options.after && formatSnapshotCursor(options.after);
    const response = await this.#send("GET", "/v1/snapshot", {
      query: { replica_id: replicaId, after },
      accept: NDJSON_MEDIA_TYPE,
      signal: options.signal,
    });
    if (response.body === null) throw new SnapshotFormatError("the snapshot answer has no body");
    let previous: SnapshotLine["type"] | undefined;
    let lineNumber = 0;
    for await (const text of _ndjsonLines(response.body)) {
      lineNumber += 1;
      const line = _parseSnapshotLine(text, lineNumber);
      _checkSnapshotOrder(previous, line.type, lineNumber);
      previous = line.type;
      yield line;
    }
    if (previous !== "trailer") {
      throw new SnapshotFormatError("the snapshot stream ended before its trailer", {
        lines: lineNumber,
      });
    }
  }

  /**
   * Reads the topology (`GET /v1/topology`). With `waitEpoch`, the server holds the request until
   * the epoch differs from it or `awaitTimeoutMs` passes.
   *
   * @example
   * ```ts
   * let topology = await client.topology();
   * topology = await client.topology({ waitEpoch: topology.epoch, awaitTimeoutMs: 25_000 });
   * ```
   */
  async topology(options: TopologyOptions = {}): Promise<Topology> {
    const query = { wait_epoch: options.waitEpoch, await_timeout_ms: options.awaitTimeoutMs };
    const body = await this.#json("GET", "/v1/topology", { query, signal: options.signal });
    const field = _fieldReader(body, "topology");
    const primary = _fieldReader(field.object("primary"), "topology: primary");
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
        const replica = _fieldReader(_asObject(item, context), context);
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
    };
  }

  /**
   * The server's status document (`GET /v1/status`, admin), as sent (snake_case; SPEC.md 9.6 for a
   * primary, 9.7 for a replica).
   *
   * @example
   * ```ts
   * const status = await client.status();
   * console.log(status.role, status.current_lsn);
   * ```
   */
  status(): Promise<Record<string, unknown>> {
    return this.#json("GET", "/v1/status");
  }

  /**
   * Liveness (`GET /healthz`): true on `{"ok": true}`; false on any other answer or when the
   * server cannot be reached (the `TypeError` of `fetch`).
   *
   * @example
   * ```ts
   * if (!(await client.health())) console.warn("ferry is down");
   * ```
   */
  async health(): Promise<boolean> {
    try {
      const body = await this.#json("GET", "/healthz");
      return body.ok === true;
    } catch (error) {
      if (error instanceof FerryHttpError || error instanceof FerryResponseError) return false;
      if (error instanceof TypeError) return false;
      throw error;
    }
  }

  /** Sends a request and returns the JSON object of its 2xx answer. */
  async #json(
    method: string,
    path: string,
    options: _RequestOptions = {},
  ): Promise<Record<string, unknown>> {
    const response = await this.#send(method, path, { ...options, accept: JSON_MEDIA_TYPE });
    const text = new TextDecoder().decode(await _readBody(response, RESPONSE_BODY_BYTES_MAX));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new FerryResponseError(`${method} ${path}: the answer is not JSON`, {
        status: response.status,
      });
    }
    return _asObject(parsed, `${method} ${path}`);
  }

  /** Sends a request; returns a 2xx response with its body unread, throws `FerryHttpError` else. */
  async #send(method: string, path: string, options: _RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { ...this.#headers };
    if (options.accept !== undefined) headers.accept = options.accept;
    let body: string | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["content-type"] = JSON_MEDIA_TYPE;
    }
    const url = `${this.#baseUrl}${path}${_queryString(options.query)}`;
    const response = await this.#fetch(url, { method, headers, body, signal: options.signal });
    if (response.ok) return response;
    throw await _httpErrorOf(response, `${method} ${path}`);
  }
}

// ---- requests ----

/** `?a=1&b=x` of the defined values, or "" when there are none. */
function _queryString(query: _Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined) params.set(name, String(value));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

function _pullQuery(options: PullOptions): _Query {
  return {
    since_lsn: options.sinceLsn,
    max_count: options.maxCount,
    max_bytes: options.maxBytes,
    replica_id: options.replicaId,
    term: options.term,
    await_timeout_ms: options.awaitTimeoutMs,
  };
}

function _replicaPath(replicaId: string): string {
  return `/v1/replicas/${encodeURIComponent(replicaId)}`;
}

// ---- responses ----

/**
 * The body's bytes, at most `maxBytes`: a larger body is cancelled there and is a
 * `FerryResponseError`, or, with `truncate`, its first `maxBytes` bytes.
 */
async function _readBody(
  response: Response,
  maxBytes: number,
  options: { truncate?: boolean } = {},
): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
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
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return concatBytes(chunks, total);
}

/** The `FerryHttpError` of a non-2xx answer (its body read up to `ERROR_BODY_BYTES_MAX`). */
async function _httpErrorOf(response: Response, request: string): Promise<FerryHttpError> {
  const retryAfterMs = _retryAfterMs(response.headers.get("retry-after"));
  const bytes = await _readBody(response, ERROR_BODY_BYTES_MAX, { truncate: true });
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

function _uintHeader(headers: Headers, name: string): number {
  const value = headers.get(name);
  const parsed = value !== null && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(parsed)) {
    throw new FerryResponseError(`pull: header ${name} is ${_quote(value)}, not an integer`);
  }
  return parsed;
}

/** Decodes frames until the first that is not "ok" or the body ends. */
function _decodeFrames(
  bytes: Uint8Array,
  expectedCount: number | undefined,
): { frames: DecodedFrame[]; corrupt?: { offset: number; reason: string } } {
  const frames: DecodedFrame[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const result = decodeFrame(bytes, offset);
    if (result.status === "incomplete") {
      const reason = `truncated frame: ${result.bytesNeeded} more bytes needed`;
      return { frames, corrupt: { offset, reason } };
    }
    if (result.status === "corrupt") return { frames, corrupt: { offset, reason: result.reason } };
    frames.push(result.frame);
    offset += result.frame.byteLength;
  }
  if (expectedCount !== undefined && frames.length < expectedCount) {
    const reason = `the body ended after ${frames.length} of ${expectedCount} frames`;
    return { frames, corrupt: { offset, reason } };
  }
  return { frames };
}

function _writeResponseOf(body: Record<string, unknown>): WriteResponse {
  const field = _fieldReader(body, "write");
  const commit = _fieldReader(field.object("commit"), "write: commit");
  const outcome = commit.string("outcome");
  if (outcome !== "not_required" && outcome !== "reached" && outcome !== "timed_out") {
    throw new FerryResponseError(`write: unknown commit outcome ${_quote(outcome)}`);
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

type _Fail = (message: string) => Error;

function _quote(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value) ?? String(value);
  return text.length > QUOTED_VALUE_CHARS_MAX
    ? `${text.slice(0, QUOTED_VALUE_CHARS_MAX)}...`
    : text;
}

function _asObject(value: unknown, context: string): Record<string, unknown> {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    return value as Record<string, unknown>;
  }
  throw new FerryResponseError(`${context}: expected a JSON object, got ${_quote(value)}`);
}

/** Typed getters of an object's fields; a missing or mistyped field throws what `fail` makes. */
function _fieldReader(
  object: Record<string, unknown>,
  context: string,
  fail: _Fail = (message) => new FerryResponseError(message),
) {
  const check = <T>(name: string, ok: (value: unknown) => boolean, expected: string): T => {
    const value = object[name];
    if (!ok(value)) throw fail(`${context}: ${name} must be ${expected}, got ${_quote(value)}`);
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

// ---- snapshot stream ----

/**
 * The lines of an NDJSON byte stream, each without its "\n", split in byte space (so a chunk
 * boundary inside a multi-byte character is harmless) and decoded as strict UTF-8. A line longer
 * than `SNAPSHOT_LINE_BYTES_MAX` throws as soon as that many bytes are pending. A last line without
 * "\n" is yielded too. Stopping early (a throw, or the consumer's `break`) cancels the stream.
 */
async function* _ndjsonLines(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<string, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let finished = false;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
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
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
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
function _parseSnapshotLine(text: string, lineNumber: number): SnapshotLine {
  const context = `snapshot line ${lineNumber}`;
  const fail: _Fail = (message) => new SnapshotFormatError(message, { line: lineNumber });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw fail(`${context} is not JSON: ${_quote(text)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw fail(`${context} is not a JSON object`);
  }
  const object = parsed as Record<string, unknown>;
  const field = _fieldReader(object, context, fail);
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
      throw fail(`${context}: unknown type ${_quote(object.type)}`);
  }
}

/** Header, then entries, then the trailer, then nothing. */
function _checkSnapshotOrder(
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
