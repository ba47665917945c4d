// A seeded, reproducible fuzzer over every route of the primary's HTTP API (SPEC.md section 9),
// driven through `app.request()` against a real primary on temporary files. It mixes valid
// requests (so records, replicas, slots and acks exist) with requests mutated from valid ones
// (bodies, query strings, paths, content types, Authorization headers, methods), unknown routes
// and wrong methods.
//
// The rule it checks is the product's: bad input gets a 4xx JSON error `{"error", "message"}`
// without a stack trace and changes nothing; no request gets a 5xx (SPEC.md's 503
// `lsn_not_applied` for a read whose `min_lsn` is not applied yet is the one documented exception)
// or a response stream that breaks. Afterwards the spool reads back contiguously and every frame
// decodes, the slot store reloads from disk as it is in memory, the materialised state catches up
// to the current LSN and holds the last write of every key, and every write answered 200 is in the
// spool exactly as sent.
//
// Reproduce a run with the seed it prints: FERRY_FUZZ_SEED=<seed> (and FERRY_FUZZ_REQUESTS=<n>).

import assert from "node:assert/strict";
// First: the app (through @hono/zod-openapi) must extend zod before src/model/records.ts builds its schema.
import { type AppFixture, testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";
import { decodeChangeRecord } from "../../src/model/records.ts";
import { SMALL_BODY_BYTES_MAX } from "../../src/core/limits.ts";
import { SlotStore } from "../../src/slots/slot_store.ts";
import {
  decodeWholeFrame,
  FRAME_V3_HEADER_BYTES,
  FRAME_V3_OVERHEAD_BYTES,
} from "../../src/wal/frame.ts";
import type { StateApplier } from "../../src/state/applier.ts";
import { seededRandom } from "../helpers/seeded_random.ts";

// ---- settings ----

function _envCount(name: string): number | undefined {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a whole number, got ${JSON.stringify(text)}`);
  }
  return value;
}

const SEED = _envCount("FERRY_FUZZ_SEED") ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
/** Requests of the auth-on run; the auth-off run sends a quarter as many. */
const REQUESTS = _envCount("FERRY_FUZZ_REQUESTS") ?? 10_000;
/** Largest hold a generated query may ask for, so held pulls do not dominate the run. */
const HOLD_MS_MAX = 5;
/** A request still unanswered after this long is aborted (its hold ends) and reported as slow. */
const REQUEST_ABORT_MS = 2000;
/** The fixture's write body limit (`withApp` limits). */
const WRITE_BODY_BYTES_MAX = 4 << 20;
/** Share of steps that send a burst of concurrent requests instead of one. */
const BURST_CHANCE = 0.03;
/** Most requests in one burst. */
const BURST_REQUESTS_MAX = 8;
/** Failures listed in the assertion message. */
const FAILURES_SHOWN = 5;

// ---- a small seeded PRNG (mulberry32) ----

class Rng {
  /** A float in [0, 1). */
  readonly next: () => number;

  constructor(seed: number) {
    this.next = seededRandom(seed);
  }

  /** A whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0);
    return items[this.int(0, items.length - 1)]!;
  }
}

// ---- JSON text with what JSON.stringify cannot produce ----

/** JSON text emitted as is: numbers JSON.parse cannot keep, escapes, deep nesting, invalid JSON. */
class Raw {
  constructor(readonly text: string) {}
}

/** An object emitted with exactly these entries, duplicate keys included. */
class Entries {
  constructor(readonly entries: Array<[string, unknown]>) {}
}

function toJsonText(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof Entries) {
    return "{" +
      value.entries.map(([key, item]) => `${JSON.stringify(key)}:${toJsonText(item)}`).join(",") +
      "}";
  }
  if (Array.isArray(value)) return "[" + value.map(toJsonText).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return toJsonText(new Entries(Object.entries(value)));
  }
  // NaN and Infinity come out as bare words: invalid JSON on purpose.
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value) ?? "null";
}

// ---- the pools requests draw from ----

const COLLECTIONS = ["users", "orders", "c", "a.b-c_d", "Z".repeat(128)];
// deno-fmt-ignore
const KEYS = [
  ...Array.from({ length: 40 }, (_, i) => `u${i}`), "ключ", "😀", "a/b", "a b", "\u202eevil\u200f",
  "%zz", "?x=1&y", "#frag", "tab\there", "new\nline", 'quote"', "back\\slash", "\uFEFFbom",
  "k".repeat(1024), "é".repeat(512), "😀".repeat(256),
];
/** Keys at and past the limits of a key (bytes, NUL), valid and not. */
// deno-fmt-ignore
const BOUNDARY_KEYS = [
  "\u0000", "a\u0000b", "\u0000".repeat(513), "\u0000".repeat(1024), "\u0001".repeat(1024),
  "😀".repeat(256), "😀".repeat(257), "é".repeat(513), "k".repeat(1024), "k".repeat(1025),
];
/** Number literals JSON.parse turns into something else (infinite, rounded, -0). */
// deno-fmt-ignore
const EDGE_NUMBER_LITERALS = [
  "1e400", "-1e400", "1e-400", "-0", "1E3", "9007199254740993", "18446744073709551616", "0.1e1",
];
const REGIONS = ["eu", "us", "ap", "eu-west-1"];
// deno-fmt-ignore
const POLICIES = [
  "local", "ack_n=0", "ack_n=1", "ack_n=2", "quorum", "regions=eu", "regions=eu,us,eu",
];
// deno-fmt-ignore
const STRINGS = [
  "", "hello", "😀👍🏽", "\u202e\u200fRTL", "ﷺ", "a\u0000b", "\uFEFF", "<script>",
  "'; DROP TABLE x; --", "\\u0000", "ｆｕｌｌｗｉｄｔｈ",
];
// deno-fmt-ignore
const FINITE_NUMBERS = [0, -0, 1, -1, 1.5, 1e308, -1e308, 5e-324, 2 ** 53, 2 ** 53 - 1, 2 ** 64, 42];

/** Values that replace a field: wrong types, extremes, unicode, nesting. */
// deno-fmt-ignore
const NASTY_VALUES: readonly unknown[] = [
  null, [], {}, true, false, 0, -1, -0, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 53 - 1, 2 ** 64, "",
  "1e3", "1", "NaN", "Infinity", "-0", "null", "a".repeat(10_000), "\ud800", "\udc00x\ud800",
  "\u0000", "a\u0000b", "😀", "\u202e\u200f", [null], [[[]]], { "": null },
  new Raw('{"__proto__":{"polluted":true}}'), new Raw("1e400"), new Raw("-1e400"), new Raw("-0"),
  new Raw("18446744073709551616"), new Raw("9007199254740993"), new Raw("1E3"), new Raw("1e-400"),
  new Raw('"\\ud800"'), new Raw('"\\udfff\\ud800"'), new Raw('"\\u0000"'),
  new Raw("[".repeat(70) + "]".repeat(70)), new Raw("[".repeat(5000) + "]".repeat(5000)),
  new Raw('{"a":'.repeat(70) + "1" + "}".repeat(70)), new Raw("[" + "0,".repeat(30_000) + "0]"),
];

/** Number literals, valid and not, put where a number goes. */
// deno-fmt-ignore
const NUMBER_TEXTS = [
  "1e308", "1e309", "-1e400", "-0", "2e0", "1.0", "9007199254740992", "9007199254740993",
  "18446744073709551616", "1e3", "5e-324", "01", ".5", "+1", "0x10", "NaN", "Infinity", "1e",
  "--1",
];

/** Query values: extremes, garbage percent-encoding, huge. */
// deno-fmt-ignore
const QUERY_VALUES = [
  "", "0", "-1", "-0", "1e3", "1.0", " 1", "+1", "0x10", "NaN", "Infinity", "9007199254740991",
  "9007199254740992", "18446744073709551616", "9".repeat(17), "1".repeat(5000), "a".repeat(20_000),
  "%zz", "%", "%2", "%00", "1%00", "%ff", "%ED%A0%80", "%C0%80", "%2F", "%EF%BC%91", "%D9%A3",
  "true", "null",
];

/** Path segments that replace an id, collection or key. */
// deno-fmt-ignore
const PATH_SEGMENTS = [
  "", ".", "..", "%2e", "%2E%2E", "%2F", "a%2Fb", "%5C", "%00", "a%00b", "%zz", "%", "%ED%A0%80",
  "%C0%AF", "%F0%9F%98%80", "%E2%80%AE", "x".repeat(200), "y".repeat(300), "a".repeat(129),
  encodeURIComponent("é".repeat(600)), "%00".repeat(1024), "%00".repeat(600), "%01".repeat(1024),
  "k".repeat(1025), "null", "undefined", "__proto__", "constructor", ";", "a;b=c", "~", "*", "a+b",
  "%20", "users", "a",
];

// deno-fmt-ignore
const CONTENT_TYPES = [
  "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
  "application/json;charset=latin1", "application/json; charset=utf-16",
  "application/vnd.api+json", "application/json, text/plain", "application/jsonx", "json",
  "text/plain", "text/json", "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x", "application/x-ndjson", "", "*/*",
];

// deno-fmt-ignore
const ACCEPTS = [
  "application/x-ferry-frames", "application/json", "*/*", "application/x-ferry-frames;q=0",
  "text/html, application/x-ferry-frames", "garbage", "",
];

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO", "patch"];

// ---- a request plan ----

interface Plan {
  /** The route the plan was made for (coverage). */
  target: string;
  method: string;
  /** Raw (already percent-encoded) path segments. */
  segments: string[];
  /** Raw query pairs; a null value leaves out the `=`. */
  query: Array<[string, string | null]>;
  headers: Record<string, string>;
  /** Body as a value for `toJsonText` (undefined: none). */
  json?: unknown;
  /** Body bytes after byte-level mutations (overrides `json`). */
  bytes?: Uint8Array;
  mutations: string[];
  /** Cancel a streamed body instead of reading it (decided up front, so runs reproduce). */
  cancelBody: boolean;
}

interface Model {
  rng: Rng;
  fixture: AppFixture;
  authOn: boolean;
  replicaIds: string[];
  /** Keys written by a 200 write, as [collection, key]. */
  written: Array<[string, string]>;
  writtenIndex: Set<string>;
}

function _pathOf(plan: Plan): string {
  const query = plan.query.map(([key, value]) => (value === null ? key : `${key}=${value}`));
  return "/" + plan.segments.join("/") + (query.length > 0 ? "?" + query.join("&") : "");
}

function _newPlan(
  target: string,
  method: string,
  path: string,
  options: { query?: Array<[string, string]>; json?: unknown; token?: string } = {},
): Plan {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.json !== undefined) headers["content-type"] = "application/json";
  return {
    target,
    method,
    segments: path.split("/").slice(1),
    query: (options.query ?? []).map(([key, value]) => [key, encodeURIComponent(value)]),
    headers,
    json: options.json,
    mutations: [],
    cancelBody: false,
  };
}

/** The token a valid request carries for a route that needs `role` (acting as `replicaId`). */
function _token(
  m: Model,
  role: "none" | "writer" | "replica" | "admin",
  replicaId?: string,
): string | undefined {
  const { rng } = m;
  if (!m.authOn) return rng.chance(0.2) ? rng.pick(Object.values(TOKENS)) : undefined;
  if (role === "none") return rng.chance(0.5) ? undefined : rng.pick(Object.values(TOKENS));
  if (role === "writer") return rng.chance(0.8) ? TOKENS.writer : TOKENS.admin;
  if (role === "replica" && rng.chance(0.7)) {
    if (replicaId === "a") return TOKENS.replicaA;
    if (replicaId === "b") return TOKENS.replicaB;
  }
  return TOKENS.admin;
}

function _replicaIds(rng: Rng): string[] {
  const ids = ["a", "b", "r1", "r2", "edge-1", "edge.fra_2", "Z9", "x".repeat(128)];
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
  while (ids.length < 24) {
    ids.push(Array.from({ length: rng.int(1, 12) }, () => rng.pick([...alphabet])).join(""));
  }
  return ids;
}

function _lsnAround(m: Model): number {
  const current = m.fixture.spool.currentLsn();
  return m.rng.chance(0.9) ? m.rng.int(0, current) : current + m.rng.int(1, 3);
}

function _holdMs(m: Model): string {
  return String(m.rng.int(0, HOLD_MS_MAX));
}

function _writtenKey(m: Model): [string, string] {
  if (m.written.length > 0 && m.rng.chance(0.8)) return m.rng.pick(m.written);
  return [m.rng.pick(COLLECTIONS), m.rng.pick(KEYS)];
}

// ---- valid values ----

function _string(rng: Rng): string {
  const roll = rng.next();
  if (roll < 0.002) return "z".repeat(1_100_000);
  if (roll < 0.01) return "y".repeat(rng.int(60_000, 120_000));
  if (roll < 0.05) return "x".repeat(rng.int(100, 3000));
  if (roll < 0.5) return rng.pick(STRINGS);
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 éü中😀\u202e";
  return Array.from({ length: rng.int(0, 24) }, () => rng.pick([...alphabet])).join("");
}

function _value(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth >= 3 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.chance(0.1) ? new Raw(rng.pick(EDGE_NUMBER_LITERALS)) : rng.pick(FINITE_NUMBERS);
    case 3:
      return rng.int(-1_000_000, 1_000_000);
    case 4:
    case 5:
      return _string(rng);
    case 6:
      return Array.from({ length: rng.int(0, 4) }, () => _value(rng, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) {
        object[_string(rng).slice(0, 20)] = _value(rng, depth + 1);
      }
      return object;
    }
  }
}

function _record(rng: Rng): Record<string, unknown> {
  const put = rng.chance(0.8);
  const record: Record<string, unknown> = {
    op: put ? "put" : "delete",
    collection: rng.pick(COLLECTIONS),
    key: rng.pick(KEYS),
  };
  if (rng.chance(0.02)) record.key = rng.pick(BOUNDARY_KEYS);
  if (put) record.value = _value(rng);
  if (rng.chance(0.1)) record.ts = rng.pick([0, 1, 1_800_000_000_000, 2 ** 53 - 1]);
  return record;
}

// ---- valid requests, one generator per route ----

type Generator = (m: Model) => Plan;

function _writeRequest(m: Model): Plan {
  const { rng } = m;
  const roll = rng.next();
  const count = roll < 0.85 ? rng.int(1, 3) : roll < 0.98 ? rng.int(4, 20) : rng.int(100, 300);
  const body: Record<string, unknown> = {
    records: Array.from({ length: count }, () => _record(rng)),
  };
  if (rng.chance(0.35)) {
    body.commit_policy = rng.pick(POLICIES);
    body.timeout_ms = rng.int(0, HOLD_MS_MAX);
  } else if (rng.chance(0.1)) {
    body.timeout_ms = rng.int(0, HOLD_MS_MAX);
  }
  return _newPlan("POST /v1/records", "POST", "/v1/records", {
    json: body,
    token: _token(m, "writer"),
  });
}

function _readRequest(m: Model): Plan {
  const { rng } = m;
  const [collection, written] = _writtenKey(m);
  const key = rng.chance(0.1) ? rng.pick(BOUNDARY_KEYS) : written;
  const query: Array<[string, string]> = [];
  if (rng.chance(0.4)) query.push(["min_lsn", String(_lsnAround(m))]);
  if (rng.chance(0.4)) query.push(["await_timeout_ms", _holdMs(m)]);
  const path = `/v1/records/${encodeURIComponent(collection)}/${encodeURIComponent(key)}`;
  return _newPlan("GET /v1/records/:collection/:key", "GET", path, {
    query,
    token: _token(m, "writer"),
  });
}

function _pullRequest(m: Model, frames: boolean): Plan {
  const { rng } = m;
  const id = rng.pick(m.replicaIds);
  const token = _token(m, "replica", id);
  const query: Array<[string, string]> = [];
  if (rng.chance(0.7)) query.push(["since_lsn", String(_lsnAround(m))]);
  if (rng.chance(0.3)) query.push(["max_count", String(rng.int(0, 50))]);
  if (rng.chance(0.2)) query.push(["max_bytes", String(rng.int(0, 100_000))]);
  if (rng.chance(0.6)) query.push(["replica_id", id]);
  if (rng.chance(0.3)) query.push(["term", rng.chance(0.9) ? "1" : rng.pick(["0", "2"])]);
  if (rng.chance(0.4)) query.push(["await_timeout_ms", _holdMs(m)]);
  const plan = _newPlan(`GET /v1/wal (${frames ? "frames" : "json"})`, "GET", "/v1/wal", {
    query,
    token,
  });
  if (frames) plan.headers.accept = "application/x-ferry-frames";
  return plan;
}

function _registerRequest(m: Model): Plan {
  const { rng } = m;
  const id = rng.pick(m.replicaIds);
  const body: Record<string, unknown> = {};
  if (rng.chance(0.6)) body.region = rng.pick(REGIONS);
  if (rng.chance(0.4)) body.since_lsn = _lsnAround(m);
  return _newPlan("PUT /v1/replicas/:id", "PUT", `/v1/replicas/${id}`, {
    json: body,
    token: _token(m, "replica", id),
  });
}

function _ackRequest(m: Model): Plan {
  const { rng } = m;
  const id = rng.pick(m.replicaIds);
  const current = m.fixture.spool.currentLsn();
  const body: Record<string, unknown> = { applied_lsn: rng.int(0, current) };
  if (rng.chance(0.5)) body.durable_lsn = rng.int(0, current);
  if (rng.chance(0.2)) body.apply_errors_total = rng.int(0, 5);
  if (rng.chance(0.2)) body.divergence_total = rng.int(0, 3);
  return _newPlan("POST /v1/replicas/:id/ack", "POST", `/v1/replicas/${id}/ack`, {
    json: body,
    token: _token(m, "replica", id),
  });
}

function _flagRequest(m: Model): Plan {
  const id = m.rng.pick(m.replicaIds);
  return _newPlan(
    "PUT /v1/replicas/:id/rebootstrapping",
    "PUT",
    `/v1/replicas/${id}/rebootstrapping`,
    { json: { rebootstrapping: m.rng.chance(0.5) }, token: _token(m, "replica", id) },
  );
}

function _snapshotRequest(m: Model): Plan {
  const { rng } = m;
  const id = rng.pick(m.replicaIds);
  const query: Array<[string, string]> = [];
  const token = _token(m, "replica", id);
  if (token === TOKENS.admin || !m.authOn || rng.chance(0.3)) query.push(["replica_id", id]);
  if (rng.chance(0.1)) {
    const collection = rng.pick([...COLLECTIONS, "c".repeat(129), "c".repeat(2000), "no space"]);
    query.push(["after", `${collection}/${rng.pick(BOUNDARY_KEYS)}`]);
  } else if (rng.chance(0.25)) query.push(["after", _writtenKey(m).join("/")]);
  return _newPlan("GET /v1/snapshot", "GET", "/v1/snapshot", { query, token });
}

function _topologyRequest(m: Model): Plan {
  const { rng } = m;
  const query: Array<[string, string]> = [];
  if (rng.chance(0.5)) {
    const epoch = m.fixture.primary.epoch.value;
    query.push(["wait_epoch", String(rng.chance(0.6) ? epoch : rng.int(0, epoch + 2))]);
    query.push(["await_timeout_ms", _holdMs(m)]);
  }
  return _newPlan("GET /v1/topology", "GET", "/v1/topology", { query, token: _token(m, "none") });
}

function _adminRequest(target: string, method: string, path: string): Generator {
  return (m) => _newPlan(target, method, path, { token: _token(m, "admin") });
}

function _withId(target: string, method: string, pathOf: (id: string) => string): Generator {
  return (m) =>
    _newPlan(target, method, pathOf(m.rng.pick(m.replicaIds)), { token: _token(m, "admin") });
}

// deno-fmt-ignore
const UNKNOWN_PATHS = [
  "/", "/v1", "/v2/records", "/v1/records/", "/v1/records/users", "/v1/records/users/u1/extra",
  "/v1/wal/x", "/v1/replicas", "/v1/replicas/a/b/c", "/v1/replicas/a/ack/", "/v1/slots/",
  "/metrics/x", "/openapi.yaml", "//v1//status", "/V1/STATUS", "/healthz/", "/%", "/%zz",
  "/" + "z".repeat(500), "/v1/" + "%00".repeat(50),
];

function _unknownRequest(m: Model): Plan {
  const { rng } = m;
  const method = rng.pick(METHODS);
  const plan = _newPlan("unknown route", method, rng.pick(UNKNOWN_PATHS), {
    token: _token(m, "admin"),
  });
  if (rng.chance(0.3)) plan.segments.push(_randomSegment(rng));
  if (method !== "GET" && method !== "HEAD" && rng.chance(0.5)) {
    plan.json = { records: [_record(rng)] };
    plan.headers["content-type"] = "application/json";
  }
  return plan;
}

const KNOWN: ReadonlyArray<[string, readonly string[]]> = [
  ["/healthz", ["GET"]],
  ["/readyz", ["GET"]],
  ["/v1/records", ["POST"]],
  ["/v1/records/users/u1", ["GET"]],
  ["/v1/wal", ["GET"]],
  ["/v1/replicas/a", ["PUT", "DELETE"]],
  ["/v1/replicas/a/ack", ["POST"]],
  ["/v1/replicas/a/rebootstrapping", ["PUT"]],
  ["/v1/snapshot", ["GET"]],
  ["/v1/topology", ["GET"]],
  ["/v1/status", ["GET"]],
  ["/v1/slots", ["GET"]],
  ["/v1/slots/a", ["DELETE"]],
  ["/metrics", ["GET"]],
  ["/openapi.json", ["GET"]],
];

function _wrongMethodRequest(m: Model): Plan {
  const { rng } = m;
  const [path, allowed] = rng.pick(KNOWN);
  const method = rng.pick(METHODS.filter((candidate) => !allowed.includes(candidate)));
  const plan = _newPlan("wrong method", method, path, { token: _token(m, "admin") });
  if (method !== "GET" && method !== "HEAD" && rng.chance(0.6)) {
    plan.json = rng.chance(0.5) ? { applied_lsn: 0 } : { records: [_record(rng)] };
    plan.headers["content-type"] = "application/json";
  }
  return plan;
}

/** Every target with its weight. */
const ROUTES: ReadonlyArray<[number, Generator]> = [
  [2, _adminRequest("GET /healthz", "GET", "/healthz")],
  [2, _adminRequest("GET /readyz", "GET", "/readyz")],
  [22, _writeRequest],
  [10, _readRequest],
  [8, (m) => _pullRequest(m, false)],
  [6, (m) => _pullRequest(m, true)],
  [8, _registerRequest],
  [10, _ackRequest],
  [4, _flagRequest],
  [2, _withId("DELETE /v1/replicas/:id", "DELETE", (id) => `/v1/replicas/${id}`)],
  [3, _snapshotRequest],
  [4, _topologyRequest],
  [3, _adminRequest("GET /v1/status", "GET", "/v1/status")],
  [2, _adminRequest("GET /v1/slots", "GET", "/v1/slots")],
  [2, _withId("DELETE /v1/slots/:id", "DELETE", (id) => `/v1/slots/${id}`)],
  [2, _adminRequest("GET /metrics", "GET", "/metrics")],
  [1, _adminRequest("GET /openapi.json", "GET", "/openapi.json")],
  [4, _unknownRequest],
  [4, _wrongMethodRequest],
];
const ROUTE_WEIGHT_TOTAL = ROUTES.reduce((sum, [weight]) => sum + weight, 0);

function _validPlan(m: Model): Plan {
  let roll = m.rng.int(1, ROUTE_WEIGHT_TOTAL);
  for (const [weight, generate] of ROUTES) {
    roll -= weight;
    if (roll <= 0) return generate(m);
  }
  throw new Error("unreachable");
}

// ---- mutations ----

interface _JsonSlot {
  get(): unknown;
  set(value: unknown): void;
  remove(): void;
}

/** A copy of a pool value, so a later mutation never changes the pool. */
function _clone(value: unknown): unknown {
  if (value instanceof Raw || value instanceof Entries) return value;
  if (Array.isArray(value)) return value.map(_clone);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, _clone(item)]));
  }
  return value;
}

/** Every place in the body a mutation may touch (the root included), without recursion. */
function _jsonSlots(holder: { value: unknown }): _JsonSlot[] {
  const slots: _JsonSlot[] = [{
    get: () => holder.value,
    set: (value) => (holder.value = value),
    remove: () => (holder.value = undefined),
  }];
  const stack: Array<[unknown, number]> = [[holder.value, 0]];
  while (stack.length > 0 && slots.length < 200) {
    const [node, depth] = stack.pop()!;
    if (depth > 6 || node === null || typeof node !== "object") continue;
    if (node instanceof Raw || node instanceof Entries) continue;
    if (Array.isArray(node)) {
      node.forEach((item, index) => {
        slots.push({
          get: () => node[index],
          set: (value) => (node[index] = value),
          remove: () => node.splice(index, 1),
        });
        stack.push([item, depth + 1]);
      });
      continue;
    }
    const object = node as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      slots.push({
        get: () => object[key],
        set: (value) => (object[key] = value),
        remove: () => delete object[key],
      });
      stack.push([object[key], depth + 1]);
    }
  }
  return slots;
}

const EXTRA_FIELDS = ["extra", "__proto__", "constructor", "records", "op", "value", "", "ts"];

function _isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !(value instanceof Raw) && !(value instanceof Entries);
}

/** Most characters the copies of a record may come to (V8's strings end near 2^29). */
const RECORD_COPIES_CHARS_MAX = 32 * 1024 * 1024;

/** One structural mutation of the body value. */
function _mutateJson(m: Model, plan: Plan): string {
  const { rng } = m;
  const holder = { value: plan.json };
  const slot = rng.pick(_jsonSlots(holder));
  const current = slot.get();
  const nasty = () => _clone(rng.pick(NASTY_VALUES));
  let kind: string;
  switch (rng.int(0, 9)) {
    case 0:
    case 1:
    case 2:
      slot.set(nasty());
      kind = "json:replace";
      break;
    case 3:
      slot.remove();
      kind = "json:remove";
      break;
    case 4:
    case 5: {
      if (!_isPlainObject(current)) {
        slot.set([current, nasty()]);
        kind = "json:append";
        break;
      }
      const entries = Object.entries(current);
      const key = rng.chance(0.5) && entries.length > 0
        ? rng.pick(entries)[0]
        : rng.pick(EXTRA_FIELDS);
      entries.splice(rng.int(0, entries.length), 0, [
        key,
        rng.chance(0.3) ? current[key] : nasty(),
      ]);
      slot.set(new Entries(entries));
      kind = "json:duplicate-or-extra-field";
      break;
    }
    case 6:
      slot.set(
        rng.pick([[current], { v: current }, String(current), JSON.stringify(current ?? null)]),
      );
      kind = "json:wrap";
      break;
    case 7:
      slot.set(new Raw(rng.pick(NUMBER_TEXTS)));
      kind = "json:number-text";
      break;
    case 8:
      slot.set(
        rng.pick(["\ud800", "😀".repeat(1000), "\u0000", "a".repeat(rng.int(1000, 70_000))]),
      );
      kind = "json:string";
      break;
    default: {
      const records = _isPlainObject(holder.value) ? holder.value.records : undefined;
      if (!Array.isArray(records) || records.length === 0) {
        holder.value = nasty();
        kind = "json:root";
        break;
      }
      // A record of 1.1 MB copied 1001 times would not fit in a string: past the bound fewer
      // copies make a body just as far over the size limit.
      const copiesMax = Math.floor(RECORD_COPIES_CHARS_MAX / toJsonText(records[0]).length);
      const copies = Math.min(rng.pick([0, 1001, rng.int(2, 50)]), Math.max(2, copiesMax));
      holder.value = {
        ...holder.value as object,
        records: Array.from({ length: copies }, () => _clone(records[0])),
      };
      kind = "json:record-count";
    }
  }
  plan.json = holder.value;
  return kind;
}

const _utf8 = new TextEncoder();
// deno-fmt-ignore
const INTERESTING_BYTES = [
  [0x00], [0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xc3], [0xf0, 0x9f, 0x98], [0x22], [0x5c],
  [0x7b], [0x5d], [0x2c], [0x0a],
];

function _bodyBytes(plan: Plan): Uint8Array {
  return plan.bytes ?? _utf8.encode(plan.json === undefined ? "" : toJsonText(plan.json));
}

function _splice(bytes: Uint8Array, at: number, remove: number, insert: ArrayLike<number>) {
  const out = new Uint8Array(bytes.byteLength - remove + insert.length);
  out.set(bytes.subarray(0, at), 0);
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

/** One byte-level mutation of the serialised body. */
function _mutateBytes(m: Model, plan: Plan): string {
  const { rng } = m;
  let bytes = _bodyBytes(plan);
  const at = rng.int(0, bytes.byteLength);
  const length = rng.int(0, Math.min(64, bytes.byteLength - at));
  const kind = rng.int(0, 9);
  if (kind === 0) {
    bytes = bytes.slice();
    for (let i = rng.int(1, 4); i > 0 && bytes.byteLength > 0; i--) {
      bytes[rng.int(0, bytes.byteLength - 1)]! ^= 1 << rng.int(0, 7);
    }
  } else if (kind === 1) bytes = bytes.slice(0, at);
  else if (kind === 2) bytes = _splice(bytes, at, 0, rng.pick(INTERESTING_BYTES));
  else if (kind === 3) bytes = _splice(bytes, at, length, []);
  else if (kind === 4) bytes = _splice(bytes, at, 0, bytes.slice(at, at + length));
  else if (kind === 5) bytes = _splice(bytes, 0, 0, [0xef, 0xbb, 0xbf]);
  else if (kind === 6) {
    bytes = _utf8.encode(rng.pick(["", " ", "null", "[]", '"s"', "1", "{}", "{", "}", "\u0000"]));
  } else if (kind === 7) {
    bytes = _splice(
      bytes,
      bytes.byteLength,
      0,
      _utf8.encode(rng.pick([",", "}", "]", " {}", "\n\n"])),
    );
  } else if (kind === 8) {
    bytes = Uint8Array.from({ length: rng.int(0, 200) }, () => rng.int(0, 255));
  } else {
    // Whitespace after the JSON, to one byte past a body limit (small bodies, or writes).
    const padded = new Uint8Array(
      rng.chance(0.8) ? SMALL_BODY_BYTES_MAX + 1 : WRITE_BODY_BYTES_MAX + 1,
    )
      .fill(0x20);
    padded.set(bytes.subarray(0, padded.byteLength));
    bytes = padded;
  }
  plan.bytes = bytes;
  return `bytes:${
    [
      "flip",
      "truncate",
      "insert",
      "delete",
      "duplicate",
      "bom",
      "replace",
      "append",
      "random",
      "oversize",
    ][kind]
  }`;
}

// deno-fmt-ignore
const QUERY_NAMES = [
  "since_lsn", "max_count", "max_bytes", "replica_id", "term", "await_timeout_ms", "min_lsn",
  "wait_epoch", "after", "foo", "__proto__", "constructor", "since_lsn[]", "%zz", "",
  "a".repeat(3000),
];

function _mutateQuery(m: Model, plan: Plan): string {
  const { rng } = m;
  const query = plan.query;
  const index = query.length > 0 ? rng.int(0, query.length - 1) : -1;
  switch (rng.int(0, 6)) {
    case 0: {
      const [key, value] = query[index] ?? [rng.pick(QUERY_NAMES), "1"];
      query.push([key, rng.chance(0.5) ? value : rng.pick(QUERY_VALUES)]);
      return "query:repeat";
    }
    case 1:
      if (index >= 0) query[index] = [query[index]![0], rng.pick(QUERY_VALUES)];
      else query.push([rng.pick(QUERY_NAMES), rng.pick(QUERY_VALUES)]);
      return "query:value";
    case 2: {
      const key = index >= 0 ? query[index]![0] : rng.pick(QUERY_NAMES);
      query.push([key, rng.chance(0.5) ? "" : null]);
      return "query:empty";
    }
    case 3:
      query.push([rng.pick(QUERY_NAMES), rng.pick(QUERY_VALUES)]);
      return "query:extra";
    case 4:
      if (index >= 0) query.splice(index, 1);
      return "query:remove";
    case 5:
      query.push([rng.pick(["&&", "=", "a=b=c", ";x", "%", "%zz=%zz", "+=+"]), null]);
      return "query:garbage";
    default:
      for (let i = 0; i < 200; i++) query.push([rng.pick(QUERY_NAMES), String(i)]);
      return "query:many";
  }
}

function _randomSegment(rng: Rng): string {
  const alphabet = "abcXYZ019-._~!$&'()*+,;=:@%éü中😀 \u202e";
  return Array.from({ length: rng.int(1, 40) }, () => rng.pick([...alphabet])).join("");
}

function _mutatePath(m: Model, plan: Plan): string {
  const { rng } = m;
  const segments = plan.segments;
  switch (rng.int(0, 5)) {
    case 0:
    case 1: {
      const index = segments.length > 2
        ? rng.int(2, segments.length - 1)
        : rng.int(0, segments.length - 1);
      segments[index] = rng.chance(0.8) ? rng.pick(PATH_SEGMENTS) : _randomSegment(rng);
      return "path:segment";
    }
    case 2:
      segments.splice(rng.int(0, segments.length), 0, rng.pick(PATH_SEGMENTS));
      return "path:insert";
    case 3:
      segments.splice(rng.int(0, segments.length - 1), 1);
      return "path:remove";
    case 4:
      segments.splice(rng.chance(0.5) ? segments.length : rng.int(0, segments.length), 0, "");
      return "path:slash";
    default:
      segments[0] = segments[0]?.toUpperCase() ?? "";
      return "path:case";
  }
}

function _authValues(): string[] {
  const tokens = Object.values(TOKENS);
  return [
    "Bearer wrong",
    "Bearer",
    "Bearer ",
    `bearer ${TOKENS.admin}`,
    `Bearer  ${TOKENS.admin}`,
    `Bearer ${TOKENS.admin}x`,
    `Basic ${btoa(`admin:${TOKENS.admin}`)}`,
    `Basic ${TOKENS.admin}`,
    TOKENS.admin,
    ...tokens.map((token) => `Bearer ${token}`),
    `Bearer ${"t".repeat(4096)}`,
    `Bearer ${"t".repeat(5000)}`,
    "Bearer \xe9\xff",
    `Bearer ${TOKENS.admin}, Bearer ${TOKENS.writer}`,
    `Bearer \t${TOKENS.admin}`,
    "x".repeat(100_000),
  ];
}
const AUTH_VALUES = _authValues();

function _mutateHeaders(m: Model, plan: Plan): string {
  const { rng } = m;
  const headers = plan.headers;
  switch (rng.int(0, 3)) {
    case 0:
    case 1:
      if (rng.chance(0.2)) delete headers.authorization;
      else headers.authorization = rng.pick(AUTH_VALUES);
      return "header:authorization";
    case 2:
      if (rng.chance(0.2)) delete headers["content-type"];
      else headers["content-type"] = rng.pick(CONTENT_TYPES);
      return "header:content-type";
    default:
      headers.accept = rng.pick(ACCEPTS);
      return "header:accept";
  }
}

/** One to three mutations; body mutations only where there is a body. */
function _mutate(m: Model, plan: Plan): void {
  const { rng } = m;
  for (let i = rng.int(1, 3); i > 0; i--) {
    const hasBody = plan.json !== undefined || plan.bytes !== undefined;
    const roll = rng.int(0, 99);
    let kind: string;
    if (hasBody && roll < 35) {
      kind = plan.bytes === undefined && rng.chance(0.6)
        ? _mutateJson(m, plan)
        : _mutateBytes(m, plan);
    } else if (roll < 55) kind = _mutateQuery(m, plan);
    else if (roll < 70) kind = _mutatePath(m, plan);
    else if (roll < 95) kind = _mutateHeaders(m, plan);
    else {
      plan.method = rng.pick(METHODS);
      kind = "method";
    }
    plan.mutations.push(kind);
  }
}

function _decoded(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    return text;
  }
}

/** Keeps every hold a query asks for at most `HOLD_MS_MAX` (larger values would be served). */
function _capHolds(m: Model, plan: Plan): void {
  for (const pair of plan.query) {
    if (_decoded(pair[0]) !== "await_timeout_ms" || pair[1] === null) continue;
    const value = _decoded(pair[1]);
    if (/^\d{1,16}$/.test(value) && Number(value) > HOLD_MS_MAX) pair[1] = _holdMs(m);
  }
}

function _generate(m: Model): Plan {
  const plan = _validPlan(m);
  if (m.rng.chance(0.55)) _mutate(m, plan);
  plan.cancelBody = m.rng.chance(0.5);
  _capHolds(m, plan);
  return plan;
}

// ---- sending and checking one request ----

/** A write answered 200: its LSNs and the records as sent. */
interface WriteExpectation {
  firstLsn: number;
  lastLsn: number;
  records: Array<Record<string, unknown>>;
}

interface Failure {
  problem: string;
  request: string;
  status: number;
  response: string;
}

interface RunStats {
  /** target → status → count. */
  coverage: Map<string, Map<number, number>>;
  failures: Failure[];
  writes: WriteExpectation[];
  mutated: number;
  slowestMs: number;
  slowest: string;
}

function _clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`;
}

function _describe(plan: Plan, body: Uint8Array | undefined): string {
  const headers = Object.entries(plan.headers).map(([key, value]) => `${key}: ${_clip(value, 60)}`);
  const shown = body === undefined
    ? ""
    : ` body(${body.byteLength} B)=${_clip(JSON.stringify(new TextDecoder().decode(body)), 300)}`;
  return `${plan.method} ${_clip(_pathOf(plan), 300)} [${headers.join("; ")}]${shown} ` +
    `{target ${plan.target}; ${plan.mutations.join(", ") || "valid"}}`;
}

/** What must not change when a request is refused: LSN, slots, registry, topology epoch. */
function _fingerprint(fixture: AppFixture): string {
  return JSON.stringify([
    fixture.spool.currentLsn(),
    fixture.slots.all(),
    fixture.primary.replicas(),
    fixture.primary.epoch.value,
  ]);
}

const _STACK_TRACE = /\s{2,}at\s|\.ts:\d+:\d+|file:\/\//;

/** Why an error response breaks the one error shape, if it does. */
function _errorShapeProblem(status: number, type: string, text: string): string | undefined {
  if (!type.includes("application/json")) return `a ${status} is not JSON (content-type ${type})`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `a ${status} body is not valid JSON`;
  }
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  if (typeof error !== "string" || typeof message !== "string") {
    return `a ${status} body lacks a string error and message`;
  }
  if (_STACK_TRACE.test(text)) return `a ${status} body carries a stack trace`;
  return undefined;
}

/** Why a frames body is wrong, if it is: every frame must decode, LSNs in order from the start. */
function _framesProblem(response: Response, bytes: Uint8Array): string | undefined {
  const lengthOffset = FRAME_V3_HEADER_BYTES - 4;
  let lsn = Number(response.headers.get("x-ferry-start-lsn"));
  let count = 0;
  let offset = 0;
  try {
    while (offset < bytes.byteLength) {
      if (bytes.byteLength - offset < FRAME_V3_HEADER_BYTES) return "a truncated frame header";
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset + lengthOffset, 4);
      const length = FRAME_V3_OVERHEAD_BYTES + view.getUint32(0, true);
      const frame = decodeWholeFrame(bytes.subarray(offset, offset + length));
      if (frame.lsn !== lsn + 1) return `frame LSN ${frame.lsn} after ${lsn}`;
      lsn = frame.lsn;
      count += 1;
      offset += length;
    }
  } catch (error) {
    return `a frame does not decode: ${(error as Error).message}`;
  }
  const declared = Number(response.headers.get("x-ferry-record-count"));
  return count === declared ? undefined : `${count} frames, x-ferry-record-count ${declared}`;
}

/** Why a snapshot body is wrong, if it is: header first, trailer last, counted entries between. */
function _snapshotProblem(text: string): string | undefined {
  const lines = text.split("\n");
  if (lines.pop() !== "") return "the snapshot does not end with a newline";
  const parsed = lines.map((line) => JSON.parse(line) as { type?: string; count?: number });
  const trailer = parsed[parsed.length - 1];
  if (parsed[0]?.type !== "header" || trailer?.type !== "trailer") {
    return "the snapshot lacks its header or trailer";
  }
  if (trailer.count !== parsed.length - 2) {
    return `trailer count ${trailer.count}, ${parsed.length - 2} entries`;
  }
  return undefined;
}

/** Reads (or, for half the snapshots, cancels) the body; returns its text and any problem. */
async function _consume(
  plan: Plan,
  response: Response,
): Promise<{ text: string; problem?: string }> {
  const type = response.headers.get("content-type") ?? "";
  if (plan.method === "HEAD") {
    await response.body?.cancel();
    return { text: "" };
  }
  if (response.status === 200 && type.startsWith("application/x-ndjson")) {
    if (plan.cancelBody) {
      await response.body?.cancel();
      return { text: "(snapshot cancelled)" };
    }
    const text = await response.text();
    return { text: _clip(text, 200), problem: _snapshotProblem(text) };
  }
  if (response.status === 200 && type.startsWith("application/x-ferry-frames")) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { text: `(${bytes.byteLength} frame bytes)`, problem: _framesProblem(response, bytes) };
  }
  const text = await response.text();
  if (response.status < 400 && type.includes("application/json") && text !== "") {
    try {
      JSON.parse(text);
    } catch {
      return { text, problem: `a ${response.status} JSON body does not parse` };
    }
  }
  return { text };
}

/**
 * The 503s SPEC.md prescribes: a read whose `min_lsn` was not applied before its wait ended (9.7)
 * and, among concurrent requests, a snapshot beyond the concurrency bound (9.4).
 */
function _isDocumentedUnavailable(
  plan: Plan,
  response: Response,
  text: string,
  concurrent: boolean,
): boolean {
  if (response.status !== 503 || response.headers.get("retry-after") === null) return false;
  // A HEAD answer has no body to name the error: the read route with a min_lsn is the one case.
  if (plan.method === "HEAD") {
    return plan.segments[0] === "v1" && plan.segments[1] === "records" &&
      plan.query.some(([key]) => _decoded(key) === "min_lsn");
  }
  try {
    const { error } = JSON.parse(text) as { error?: unknown };
    return error === "lsn_not_applied" || (concurrent && error === "snapshot_busy");
  } catch {
    return false;
  }
}

function _requestOf(plan: Plan, body: Uint8Array | undefined, signal: AbortSignal): Request {
  return new Request(`http://ferry.test${_pathOf(plan)}`, {
    method: plan.method,
    headers: plan.headers,
    body: body as Uint8Array<ArrayBuffer> | undefined,
    signal,
  });
}

/**
 * Sends one plan and checks everything one response can show. Alone (not `concurrent`), it also
 * checks that a refused request changed nothing and that only a 200 write appended.
 */
async function _send(m: Model, plan: Plan, stats: RunStats, concurrent = false): Promise<void> {
  const { fixture } = m;
  const bodyless = ["GET", "HEAD"].includes(plan.method.toUpperCase());
  const body = bodyless || (plan.json === undefined && plan.bytes === undefined)
    ? undefined
    : _bodyBytes(plan);
  const described = _describe(plan, body);
  const fail = (problem: string, status: number, response: string) =>
    stats.failures.push({ problem, request: described, status, response: _clip(response, 400) });
  const before = _fingerprint(fixture);
  const lsnBefore = fixture.spool.currentLsn();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_ABORT_MS);
  const started = performance.now();
  let response: Response;
  let consumed: { text: string; problem?: string };
  try {
    response = await fixture.app.request(_requestOf(plan, body, controller.signal));
    consumed = await _consume(plan, response);
  } catch (error) {
    fail(`the request or its body failed: ${(error as Error)?.stack ?? error}`, 0, "");
    return;
  } finally {
    clearTimeout(timer);
  }
  const elapsedMs = performance.now() - started;
  if (elapsedMs > stats.slowestMs) {
    stats.slowestMs = elapsedMs;
    stats.slowest = described;
  }
  const { status } = response;
  const byStatus = stats.coverage.get(plan.target) ?? new Map<number, number>();
  byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  stats.coverage.set(plan.target, byStatus);
  const { text } = consumed;
  if (consumed.problem) fail(consumed.problem, status, text);
  if (status >= 500 && !_isDocumentedUnavailable(plan, response, text, concurrent)) {
    fail(`status ${status}`, status, text);
  }
  if (status >= 400) {
    const type = response.headers.get("content-type") ?? "";
    // A HEAD answer has no body: only its content type can show the error shape.
    const problem = plan.method === "HEAD"
      ? (type.includes("application/json") ? undefined : `a ${status} is not JSON (${type})`)
      : _errorShapeProblem(status, type, text);
    if (problem) fail(problem, status, text);
  }
  if (concurrent) {
    _checkConcurrentWrite(m, { status, text, body }, stats, fail);
    return;
  }
  if (status >= 400 && status < 500 && status !== 409 && _fingerprint(fixture) !== before) {
    fail(`a ${status} changed the primary's state`, status, text);
  }
  _checkWrite(m, { lsnBefore, status, text, body }, stats, fail);
}

/** Any append must be a 200 write whose LSNs and record count match what was sent. */
function _checkWrite(
  m: Model,
  sent: { lsnBefore: number; status: number; text: string; body: Uint8Array | undefined },
  stats: RunStats,
  fail: (problem: string, status: number, response: string) => void,
): void {
  const lsnAfter = m.fixture.spool.currentLsn();
  const { lsnBefore, status, text } = sent;
  let answer: { first_lsn?: unknown; last_lsn?: unknown } = {};
  try {
    answer = JSON.parse(text);
  } catch {
    // Not JSON: then it must not be a write either.
  }
  if (lsnAfter === lsnBefore) {
    if (status === 200 && answer?.first_lsn !== undefined) {
      fail("a 200 write appended nothing", status, text);
    }
    return;
  }
  if (status !== 200) {
    fail(`LSNs ${lsnBefore + 1}..${lsnAfter} were appended, answered ${status}`, status, text);
    return;
  }
  const records = (JSON.parse(new TextDecoder().decode(sent.body)) as {
    records: Array<Record<string, unknown>>;
  }).records;
  if (
    answer.first_lsn !== lsnBefore + 1 || answer.last_lsn !== lsnAfter ||
    records.length !== lsnAfter - lsnBefore
  ) {
    fail(
      `${records.length} records sent, LSNs ${lsnBefore + 1}..${lsnAfter} appended`,
      status,
      text,
    );
    return;
  }
  _noteWrite(m, stats, { firstLsn: lsnBefore + 1, lastLsn: lsnAfter, records });
}

/** A concurrent 200 write: its LSN range must fit the records sent (the spool check does the rest). */
function _checkConcurrentWrite(
  m: Model,
  sent: { status: number; text: string; body: Uint8Array | undefined },
  stats: RunStats,
  fail: (problem: string, status: number, response: string) => void,
): void {
  if (sent.status !== 200 || sent.body === undefined) return;
  let answer: { first_lsn?: unknown; last_lsn?: unknown } = {};
  try {
    answer = JSON.parse(sent.text);
  } catch {
    return;
  }
  const { first_lsn: firstLsn, last_lsn: lastLsn } = answer ?? {};
  if (typeof firstLsn !== "number" || typeof lastLsn !== "number") return;
  const records = (JSON.parse(new TextDecoder().decode(sent.body)) as {
    records: Array<Record<string, unknown>>;
  }).records;
  if (records.length !== lastLsn - firstLsn + 1) {
    fail(`${records.length} records sent, LSNs ${firstLsn}..${lastLsn} answered`, 200, sent.text);
    return;
  }
  _noteWrite(m, stats, { firstLsn, lastLsn, records });
}

function _noteWrite(m: Model, stats: RunStats, write: WriteExpectation): void {
  stats.writes.push(write);
  for (const record of write.records) {
    const id = JSON.stringify([record.collection, record.key]);
    if (record.op === "put" && !m.writtenIndex.has(id)) {
      m.writtenIndex.add(id);
      m.written.push([String(record.collection), String(record.key)]);
    }
  }
}

// ---- a run, and what must hold after it ----

async function _fuzz(
  fixture: AppFixture,
  options: { seed: number; requests: number; authOn: boolean; retentionEveryRequests?: number },
): Promise<RunStats> {
  const rng = new Rng(options.seed);
  const m: Model = {
    rng,
    fixture,
    authOn: options.authOn,
    replicaIds: _replicaIds(rng),
    written: [],
    writtenIndex: new Set(),
  };
  const stats: RunStats = {
    coverage: new Map(),
    failures: [],
    writes: [],
    mutated: 0,
    slowestMs: 0,
    slowest: "",
  };
  let sent = 0;
  while (sent < options.requests) {
    // Mostly one at a time (so a refused request can be shown to change nothing), sometimes a burst.
    const burst = rng.chance(BURST_CHANCE) ? rng.int(2, BURST_REQUESTS_MAX) : 1;
    const plans = Array.from(
      { length: Math.min(burst, options.requests - sent) },
      () => _generate(m),
    );
    stats.mutated += plans.filter((plan) => plan.mutations.length > 0).length;
    await Promise.all(plans.map((plan) => _send(m, plan, stats, plans.length > 1)));
    const before = sent;
    sent += plans.length;
    const every = options.retentionEveryRequests;
    if (every && Math.floor(sent / every) > Math.floor(before / every)) {
      await fixture.primary.runRetention();
    }
  }
  return stats;
}

function _report(label: string, seed: number, stats: RunStats, requests: number, ms: number): void {
  console.log(
    `fuzz ${label}: seed ${seed}, ${requests} requests (${stats.mutated} mutated), ` +
      `${stats.writes.length} writes answered 200, ${(ms / 1000).toFixed(1)} s; ` +
      `slowest ${stats.slowestMs.toFixed(0)} ms: ${_clip(stats.slowest, 600)}`,
  );
  const targets = [...stats.coverage.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [target, byStatus] of targets) {
    const total = [...byStatus.values()].reduce((sum, n) => sum + n, 0);
    const statuses = [...byStatus.entries()].sort(([a], [b]) => a - b)
      .map(([status, n]) => `${status}×${n}`).join(" ");
    console.log(`  ${target.padEnd(40)} ${String(total).padStart(5)}  ${statuses}`);
  }
}

function _assertNoFailures(label: string, seed: number, stats: RunStats): void {
  if (stats.failures.length === 0) return;
  const shown = stats.failures.slice(0, FAILURES_SHOWN).map((failure, i) =>
    `${i + 1}. ${failure.problem} (status ${failure.status})\n   request: ${failure.request}\n` +
    `   response: ${failure.response}`
  );
  assert.fail(
    `fuzz ${label} (FERRY_FUZZ_SEED=${seed}): ${stats.failures.length} failures; the first:\n` +
      shown.join("\n"),
  );
}

/** Structural equality of JSON values (numbers by ===, so -0 equals 0 and Infinity is not null). */
function _sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const aKeys = Object.keys(a);
  const bKeys = Object.keys(b);
  if (aKeys.length !== bKeys.length) return false;
  return aKeys.every((key) =>
    Object.hasOwn(b, key) &&
    _sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])
  );
}

/** (a) and (d): the spool reads back contiguously, every frame decodes, every 200 write is there as sent. */
async function _verifySpool(
  fixture: AppFixture,
  stats: RunStats,
  options: { pruned: boolean },
): Promise<void> {
  const { spool } = fixture;
  const expected = new Map<number, Record<string, unknown>>();
  for (const write of stats.writes) {
    write.records.forEach((record, i) => expected.set(write.firstLsn + i, record));
  }
  const oldest = spool.oldestLsn();
  const current = spool.currentLsn();
  assert.equal(expected.size, current, "every appended LSN belongs to a write answered 200");
  if (!options.pruned) assert.equal(oldest, 1, "nothing was pruned");
  let since = oldest - 1;
  while (since < current) {
    const frames = await spool.readSince(since, 1000, 1 << 20);
    assert.ok(frames.length > 0, `the spool reads on after LSN ${since}`);
    for (const frame of frames) {
      assert.equal(frame.lsn, since + 1, "the spool is contiguous");
      assert.equal(decodeWholeFrame(frame.bytes).lsn, frame.lsn);
      const stored = decodeChangeRecord(frame.payload);
      const sent = expected.get(frame.lsn)!;
      const at = `LSN ${frame.lsn}`;
      assert.equal(stored.op, sent.op, at);
      assert.equal(stored.collection, sent.collection, at);
      assert.equal(stored.key, sent.key, at);
      // By ===: JSON keeps no -0, so a ts sent as -0 is stored as 0.
      if (sent.ts !== undefined) assert.ok(stored.ts === sent.ts, `${at}: ts ${stored.ts}`);
      assert.ok(
        _sameJson(stored.value, sent.value),
        `${at} stores the value as sent: sent ${_clip(Deno.inspect(sent.value), 200)}, ` +
          `stored ${_clip(Deno.inspect(stored.value), 200)}`,
      );
      since = frame.lsn;
    }
  }
}

/** (b): a fresh slot store on the same data directory and KV loads what is in memory. */
async function _verifySlots(fixture: AppFixture): Promise<void> {
  await fixture.slots.flushNow();
  const fresh = await SlotStore.open({
    dataDir: fixture.dir,
    kv: fixture.kv,
    timeline: 1,
    flushIntervalMs: 1000,
  });
  try {
    const view = (slots: readonly unknown[]) => slots.map((slot) => JSON.stringify(slot));
    assert.deepEqual(view(fresh.all()), view(fixture.slots.all()), "the slots reload as they are");
  } finally {
    await fresh.close();
  }
}

/** (c): the state applies up to the current LSN and holds the last write of every key. */
async function _verifyState(fixture: AppFixture, stats: RunStats): Promise<void> {
  const { spool, state } = fixture;
  await state.waitApplied(spool.currentLsn(), { timeoutMs: 10_000 });
  assert.equal(state.appliedLsn(), spool.currentLsn(), "the state caught up");
  assert.equal(state.skippedRecords, 0, "every logged record is a change record");
  const last = new Map<string, Record<string, unknown>>();
  // In LSN order: writes of one burst are answered in any order, and the log decides which is last.
  const byLsn = [...stats.writes].sort((a, b) => a.firstLsn - b.firstLsn);
  for (const write of byLsn) {
    for (const record of write.records) {
      last.set(JSON.stringify([record.collection, record.key]), record);
    }
  }
  for (const record of last.values()) {
    const entry = await state.get(String(record.collection), String(record.key));
    const at = `${record.collection}/${record.key}`;
    if (record.op === "delete") assert.equal(entry, undefined, `${at} is deleted`);
    else assert.ok(entry && _sameJson(entry.value, record.value), `${at} holds its last value`);
  }
}

async function _run(
  label: string,
  options: { seed: number; requests: number; authOn: boolean; pruning: boolean },
): Promise<void> {
  let state: StateApplier | undefined;
  await withApp({
    auth: options.authOn ? testAuth() : undefined,
    spool: { segmentBytesMax: options.pruning ? 32 << 10 : 1 << 20, tailBytesMax: 256 << 10 },
    primary: {
      commitTimeoutMs: HOLD_MS_MAX,
      stateFloor: () => state?.appliedLsn() ?? 0,
      caps: { lagMaxRecords: options.pruning ? 300 : 0, retainedBytesMax: 0, idleTimeoutMs: 0 },
    },
  }, async (fixture) => {
    state = fixture.state;
    const started = performance.now();
    const stats = await _fuzz(fixture, {
      ...options,
      retentionEveryRequests: options.pruning ? 250 : undefined,
    });
    _report(label, options.seed, stats, options.requests, performance.now() - started);
    _assertNoFailures(label, options.seed, stats);
    await _verifySpool(fixture, stats, { pruned: options.pruning });
    await _verifySlots(fixture);
    await _verifyState(fixture, stats);
  });
}

Deno.test("fuzz: every route with auth on answers bad input with a 4xx JSON error and changes nothing", async () => {
  console.log(
    `fuzz seed ${SEED} (reproduce with FERRY_FUZZ_SEED=${SEED} FERRY_FUZZ_REQUESTS=${REQUESTS})`,
  );
  await _run("auth on", { seed: SEED, requests: REQUESTS, authOn: true, pruning: false });
});

Deno.test("fuzz: every route with auth off, with retention pruning the spool as it goes", async () => {
  const seed = (SEED + 1) >>> 0;
  await _run("auth off", {
    seed,
    requests: Math.ceil(REQUESTS / 4),
    authOn: false,
    pruning: true,
  });
});
