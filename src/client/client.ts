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
import { RESPONSE_BODY_BYTES_MAX } from "../core/limits.ts";
import { sleep } from "../core/waiter.ts";
import {
  formatSnapshotCursor,
  FRAMES_MEDIA_TYPE,
  HEADER_SNAPSHOT_ENTRIES,
  JSON_MEDIA_TYPE,
  NDJSON_MEDIA_TYPE,
} from "../model/wire.ts";
import { checkSnapshotOrder, ndjsonLines, parseSnapshotLine } from "./ndjson.ts";
import { pullQuery, type Query, queryString, replicaPath } from "./requests.ts";
import { openFrameStream } from "./frame_stream.ts";
import { commitOutcomeOf, type WriteCalls, writeRecovering } from "./commit_resolve.ts";
import {
  asObject,
  fieldReader,
  framePullOf,
  httpErrorOf,
  jsonPullOf,
  readBody,
  topologyOf,
} from "./responses.ts";
import type {
  Ack,
  AckResponse,
  ClientOptions,
  CommitOutcomeOptions,
  CommitOutcomeResponse,
  FramePull,
  FrameStream,
  JsonPull,
  PullOptions,
  ReadOptions,
  ReadResponse,
  RegisterOptions,
  RegisterResponse,
  SnapshotLine,
  SnapshotOptions,
  StreamOptions,
  Topology,
  TopologyOptions,
  WriteOptions,
  WriteRecord,
  WriteResponse,
} from "./types.ts";

/** User agent sent when `ClientOptions.userAgent` is not set. */
export const DEFAULT_USER_AGENT = "ferry-client/1";

interface _RequestOptions {
  query?: Query;
  /** The body, as `JSON.stringify` makes it: fields whose value is undefined are left out. */
  json?: unknown;
  accept?: string;
  signal?: AbortSignal;
  /** Another server's root (a leader's URL) instead of the client's base URL. */
  rootUrl?: string;
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
  readonly #clock: Pick<WriteCalls, "sleep" | "now">;

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
    this.#clock = { sleep: options.sleep ?? sleep, now: options.now ?? (() => performance.now()) };
  }

  /**
   * Appends records (`POST /v1/records`). They are durable on the primary when this resolves; a
   * 504 `commit_timeout` (server option fail-on-commit-timeout) throws a `FerryHttpError` whose
   * `body` still carries `first_lsn` and `last_lsn`: those records are durable too. A 503
   * `no_leader` or `commit_unknown` (a failover) is handled as `commit_resolve.ts` says: it may ask
   * the leader's host too.
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
  write(records: WriteRecord[], options: WriteOptions = {}): Promise<WriteResponse> {
    const calls: WriteCalls = {
      post: (json, signal) => this.#json("POST", "/v1/records", { json, signal }),
      ask: (term, lsn, url) => this.commitOutcome(term, lsn, { url, signal: options.signal }),
      baseUrl: this.#baseUrl,
      ...this.#clock,
    };
    return writeRecovering(calls, records, options);
  }

  /**
   * What became of the write made in `term` at `lsn` (`GET /v1/commits/:term/:lsn`, SPEC.md
   * 13.4): `committed` and `lost` are final; `unknown` means ask again later, best `leader.url`.
   *
   * @example
   * ```ts
   * const { outcome, leader } = await client.commitOutcome(7, 1042);
   * if (outcome === "unknown" && leader) await client.commitOutcome(7, 1042, { url: leader.url });
   * ```
   */
  async commitOutcome(
    term: number,
    lsn: number,
    options: CommitOutcomeOptions = {},
  ): Promise<CommitOutcomeResponse> {
    const path = `/v1/commits/${term}/${lsn}`;
    const body = await this.#json("GET", path, { signal: options.signal, rootUrl: options.url });
    return commitOutcomeOf(body, { term, lsn });
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
    const field = fieldReader(body, "read");
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
   * CRC-checked (v2 and v3 only), in one pass over the body (`framePullOf`). Decoding stops at the first frame that is not "ok": `frames`
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
    const query = pullQuery(options);
    const accept = FRAMES_MEDIA_TYPE;
    const response = await this.#send("GET", "/v1/wal", { query, accept, signal: options.signal });
    return await framePullOf(response);
  }

  /**
   * Opens a streaming pull (`GET /v1/wal?stream=1`, raw frames, SPEC.md 13.1): the frames after
   * `sinceLsn`, then each later group commit's as it becomes durable, with control records (the
   * primary's position) between them; every item is CRC-checked in one pass as it arrives. A
   * server that does not stream (its answer does not open with a control record) throws
   * `StreamRefusedError`: fall back to `pullFrames`. After any end, resume from the last LSN.
   *
   * @example
   * ```ts
   * const stream = await client.streamFrames({ replicaId: "edge-1", sinceLsn: 41 });
   * for await (const item of stream) {
   *   if (item.kind === "frames") for (const frame of item.frames) console.log(frame.lsn);
   *   else if (item.kind === "corrupt") break;
   * }
   * ```
   */
  async streamFrames(options: StreamOptions): Promise<FrameStream> {
    const query = { ...pullQuery(options), stream: 1 };
    const accept = FRAMES_MEDIA_TYPE;
    const response = await this.#send("GET", "/v1/wal", { query, accept, signal: options.signal });
    return await openFrameStream(response);
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
    const query = pullQuery(options);
    return jsonPullOf(await this.#json("GET", "/v1/wal", { query, signal: options.signal }));
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
    const json = { region: body.region, since_lsn: body.sinceLsn };
    const answer = await this.#json("PUT", replicaPath(replicaId), { json });
    const field = fieldReader(answer, "register");
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
    const answer = await this.#json("POST", `${replicaPath(replicaId)}/ack`, { json });
    const field = fieldReader(answer, "ack");
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
    const path = `${replicaPath(replicaId)}/rebootstrapping`;
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
    await this.#json("DELETE", replicaPath(replicaId));
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
    const hint = Number(response.headers.get(HEADER_SNAPSHOT_ENTRIES) ?? "NaN");
    let previous: SnapshotLine["type"] | undefined;
    let lineNumber = 0;
    for await (const text of ndjsonLines(response.body, options.signal)) {
      lineNumber += 1;
      const line = parseSnapshotLine(text, lineNumber);
      checkSnapshotOrder(previous, line.type, lineNumber);
      if (line.type === "header" && Number.isSafeInteger(hint) && hint >= 0) {
        line.entriesHint = hint;
      }
      previous = line.type;
      yield line;
    }
    const message = "the snapshot stream ended before its trailer";
    if (previous !== "trailer") throw new SnapshotFormatError(message, { lines: lineNumber });
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
    return topologyOf(body);
  }

  /**
   * Every replication slot (`GET /v1/slots`, admin), as sent (snake_case, SPEC.md 4 names plus
   * `retained_bytes`, `growth_bytes_per_s`, `eta_invalidation_s`).
   *
   * @example
   * ```ts
   * for (const slot of await client.slots()) console.log(slot.replica_id, slot.restart_lsn);
   * ```
   */
  async slots(): Promise<Record<string, unknown>[]> {
    const body = await this.#json("GET", "/v1/slots");
    return fieldReader(body, "slots").array("slots").map((slot) => asObject(slot, "slots"));
  }

  /**
   * Drops the slot of `replicaId` (`DELETE /v1/slots/:id`, admin; persisted before the answer). A
   * slot that does not exist is a `FerryHttpError` 404.
   *
   * @example
   * ```ts
   * await client.dropSlot("edge-gone");
   * ```
   */
  async dropSlot(replicaId: string): Promise<void> {
    await this.#json("DELETE", `/v1/slots/${encodeURIComponent(replicaId)}`);
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
    const text = new TextDecoder().decode(await readBody(response, RESPONSE_BODY_BYTES_MAX));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new FerryResponseError(`${method} ${path}: the answer is not JSON`, {
        status: response.status,
      });
    }
    return asObject(parsed, `${method} ${path}`);
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
    const root = options.rootUrl?.replace(/\/+$/, "") ?? this.#baseUrl;
    const url = `${root}${path}${queryString(options.query)}`;
    const response = await this.#fetch(url, { method, headers, body, signal: options.signal });
    if (response.ok) return response;
    throw await httpErrorOf(response, `${method} ${path}`);
  }
}
