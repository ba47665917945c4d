/**
 * A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range` and friends): the few calls a
 * ferry cluster needs (range, put, delete, txn, lease grant/keepalive/revoke), with endpoint
 * failover, etcd auth and a CA for https endpoints. Keys and values travel base64-encoded; lease ids
 * and revisions are int64 strings, kept as strings.
 *
 * Chosen over a gRPC client library: no dependency, and plain `fetch`, so the keepalive Worker
 * (loaded from a Blob URL, with no read permission for a library's module graph) speaks the same
 * protocol in a few lines. bench/etcd_bench.ts measures its round trips.
 *
 * @module
 */

import {
  ETCD_ENDPOINTS_MAX,
  ETCD_REQUEST_TIMEOUT_MS,
  ETCD_RESPONSE_BYTES_MAX,
} from "../core/cluster_limits.ts";
import { EtcdUnavailableError } from "../core/errors.ts";

/** How to reach etcd. */
export interface EtcdOptions {
  /** Client URLs, tried in order; the one that answered last is tried first. */
  endpoints: readonly string[];
  /** etcd auth (`FERRY_ETCD_USER` / `FERRY_ETCD_PASSWORD`). */
  user?: string;
  password?: string;
  /** PEM of the CA that signs https endpoints (`--etcd-ca`). */
  caPem?: string;
  /** Per-request timeout (default ETCD_REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** Everything a second client (the keepalive Worker) needs to reach etcd as this one does. */
export interface EtcdCredentials {
  endpoints: string[];
  token?: string;
  user?: string;
  password?: string;
  caPem?: string;
}

/** One key-value as etcd returns it. */
export interface EtcdKeyValue {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
  lease: string;
}

/** A comparison in a transaction. */
export type EtcdCompare =
  | { key: string; target: "CREATE"; createRevision: "0" }
  | { key: string; target: "VALUE"; value: string }
  | { key: string; target: "MOD"; modRevision: string };

/** An operation in a transaction. */
export type EtcdOp =
  | { put: { key: string; value: string; lease?: string } }
  | { range: { key: string } }
  | { delete: { key: string } };

/** What a transaction did: which branch ran, and the ranges it read. */
export interface EtcdTxnResult {
  succeeded: boolean;
  ranges: EtcdKeyValue[][];
}

/** The JSON gateway client. Needs `--allow-net` for the endpoints. */
export class EtcdClient {
  readonly #endpoints: string[];
  readonly #options: EtcdOptions;
  readonly #httpClient: Deno.HttpClient | undefined;
  #token: string | undefined;

  constructor(options: EtcdOptions) {
    if (options.endpoints.length === 0 || options.endpoints.length > ETCD_ENDPOINTS_MAX) {
      throw new RangeError(`between 1 and ${ETCD_ENDPOINTS_MAX} etcd endpoints`);
    }
    this.#endpoints = options.endpoints.map((url) => url.replace(/\/+$/, ""));
    this.#options = options;
    this.#httpClient = options.caPem
      ? Deno.createHttpClient({ caCerts: [options.caPem] })
      : undefined;
  }

  /** The endpoint tried first. */
  get endpoint(): string {
    return this.#endpoints[0]!;
  }

  /** The value at `key`, or undefined. */
  async get(key: string): Promise<EtcdKeyValue | undefined> {
    const answer = await this.#call("/v3/kv/range", { key: _b64(key) });
    return _kvs(answer)[0];
  }

  /** Every key under `prefix`, in key order, at most `limit`. */
  async list(prefix: string, limit: number): Promise<EtcdKeyValue[]> {
    const answer = await this.#call("/v3/kv/range", {
      key: _b64(prefix),
      range_end: _b64(_prefixEnd(prefix)),
      limit: String(limit),
    });
    return _kvs(answer);
  }

  /** Writes `value` at `key`, bound to `lease` when given. */
  async put(key: string, value: string, lease?: string): Promise<void> {
    await this.#call("/v3/kv/put", { key: _b64(key), value: _b64(value), lease });
  }

  /** Deletes every key under `prefix`. */
  async deletePrefix(prefix: string): Promise<void> {
    await this.#call("/v3/kv/deleterange", {
      key: _b64(prefix),
      range_end: _b64(_prefixEnd(prefix)),
    });
  }

  /** One atomic transaction: `success` runs when every comparison holds, else `failure`. */
  async txn(
    compare: readonly EtcdCompare[],
    success: readonly EtcdOp[],
    failure: readonly EtcdOp[] = [],
  ): Promise<EtcdTxnResult> {
    const answer = await this.#call("/v3/kv/txn", {
      compare: compare.map(_compareJson),
      success: success.map(_opJson),
      failure: failure.map(_opJson),
    });
    const responses = (answer.responses ?? []) as Array<Record<string, unknown>>;
    return {
      succeeded: answer.succeeded === true,
      ranges: responses.filter((r) => r.response_range).map((r) =>
        _kvs(r.response_range as Record<string, unknown>)
      ),
    };
  }

  /** Grants a lease; etcd may grant a longer TTL than asked (its minimum). */
  async grantLease(ttlS: number): Promise<{ id: string; ttlS: number }> {
    const answer = await this.#call("/v3/lease/grant", { TTL: String(ttlS) });
    return { id: String(answer.ID), ttlS: Number(answer.TTL) };
  }

  /** Renews a lease once; the TTL left, 0 when the lease has expired or was revoked. */
  async keepAlive(id: string): Promise<number> {
    const answer = await this.#call("/v3/lease/keepalive", { ID: id });
    const result = (answer.result ?? {}) as Record<string, unknown>;
    return Number(result.TTL ?? 0);
  }

  /** Revokes a lease (its keys go at once). */
  async revokeLease(id: string): Promise<void> {
    await this.#call("/v3/lease/revoke", { ID: id });
  }

  /** What the keepalive Worker needs to reach etcd on its own: endpoints, auth, CA. */
  async credentials(): Promise<EtcdCredentials> {
    if (this.#options.user && !this.#token) await this.#authenticate(this.#endpoints[0]!);
    return {
      endpoints: [...this.#endpoints],
      token: this.#token,
      user: this.#options.user,
      password: this.#options.password,
      caPem: this.#options.caPem,
    };
  }

  /** Closes the https client, if any. */
  close(): void {
    this.#httpClient?.close();
  }

  async #call(path: string, body: unknown): Promise<Record<string, unknown>> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.#endpoints.length; attempt++) {
      const endpoint = this.#endpoints[0]!;
      try {
        return await this.#callOne(endpoint, path, body);
      } catch (error) {
        if (!(error instanceof EtcdUnavailableError) || error.details.status !== undefined) {
          throw error;
        }
        lastError = error;
        this.#endpoints.push(this.#endpoints.shift()!);
      }
    }
    throw lastError;
  }

  async #callOne(endpoint: string, path: string, body: unknown): Promise<Record<string, unknown>> {
    if (this.#options.user && !this.#token) await this.#authenticate(endpoint);
    let answer = await this.#post(endpoint, path, body);
    if (answer.status === 401 || _isAuthError(answer.json)) {
      if (!this.#options.user) throw _answerError(path, answer.status, answer.json);
      await this.#authenticate(endpoint);
      answer = await this.#post(endpoint, path, body);
    }
    if (answer.status !== 200) throw _answerError(path, answer.status, answer.json);
    return answer.json;
  }

  async #authenticate(endpoint: string): Promise<void> {
    this.#token = undefined;
    const answer = await this.#post(endpoint, "/v3/auth/authenticate", {
      name: this.#options.user,
      password: this.#options.password ?? "",
    });
    if (answer.status !== 200 || typeof answer.json.token !== "string") {
      throw _answerError("/v3/auth/authenticate", answer.status, answer.json);
    }
    this.#token = answer.json.token;
  }

  async #post(
    endpoint: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#token) headers.authorization = this.#token;
    let response: Response;
    try {
      response = await fetch(`${endpoint}${path}`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? ETCD_REQUEST_TIMEOUT_MS),
        client: this.#httpClient,
      });
      const text = await _readCapped(response);
      return { status: response.status, json: text ? JSON.parse(text) : {} };
    } catch (error) {
      if (error instanceof EtcdUnavailableError) throw error;
      throw new EtcdUnavailableError(`etcd at ${endpoint} did not answer ${path}`, {
        endpoint,
        cause: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

async function _readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > ETCD_RESPONSE_BYTES_MAX) {
    await response.body?.cancel();
    throw new EtcdUnavailableError("etcd's answer is larger than ferry reads", {
      bytes: declared,
    });
  }
  const text = await response.text();
  if (text.length > ETCD_RESPONSE_BYTES_MAX) {
    throw new EtcdUnavailableError("etcd's answer is larger than ferry reads", {
      bytes: text.length,
    });
  }
  return text;
}

function _answerError(
  path: string,
  status: number,
  json: Record<string, unknown>,
): EtcdUnavailableError {
  const message = String(json.message ?? json.error ?? `HTTP ${status}`);
  return new EtcdUnavailableError(`etcd refused ${path}: ${message}`, { status, path });
}

function _isAuthError(json: Record<string, unknown>): boolean {
  const message = String(json.message ?? json.error ?? "");
  return message.includes("invalid auth token") || message.includes("user name is empty");
}

function _kvs(answer: Record<string, unknown>): EtcdKeyValue[] {
  const kvs = (answer.kvs ?? []) as Array<Record<string, string | undefined>>;
  return kvs.map((kv) => ({
    key: _unb64(kv.key ?? ""),
    value: _unb64(kv.value ?? ""),
    createRevision: kv.create_revision ?? "0",
    modRevision: kv.mod_revision ?? "0",
    lease: kv.lease ?? "0",
  }));
}

function _compareJson(compare: EtcdCompare): Record<string, string> {
  const key = _b64(compare.key);
  switch (compare.target) {
    case "CREATE":
      return { key, target: "CREATE", result: "EQUAL", create_revision: compare.createRevision };
    case "VALUE":
      return { key, target: "VALUE", result: "EQUAL", value: _b64(compare.value) };
    case "MOD":
      return { key, target: "MOD", result: "EQUAL", mod_revision: compare.modRevision };
  }
}

function _opJson(op: EtcdOp): Record<string, unknown> {
  if ("put" in op) {
    const { key, value, lease } = op.put;
    return { request_put: { key: _b64(key), value: _b64(value), lease } };
  }
  if ("range" in op) return { request_range: { key: _b64(op.range.key) } };
  return { request_delete_range: { key: _b64(op.delete.key) } };
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function _prefixEnd(prefix: string): string {
  const bytes = new TextEncoder().encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i]! += 1;
      return new TextDecoder().decode(end);
    }
  }
  return "\0";
}

function _b64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function _unb64(encoded: string): string {
  const binary = atob(encoded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}
