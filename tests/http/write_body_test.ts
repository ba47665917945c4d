// SPEC.md 9.2: the hand-written check of a write body (src/http/write_body.ts) and the zod schema
// that describes it in /openapi.json must agree. A differential property feeds both the same
// generated bodies, good and bad (wrong types, missing and extra fields, oversize keys and
// collections, deep nesting, lone surrogates, numbers beyond a double, put without value, delete
// with value, bad UTF-8, truncated and mutated bytes), as JSON and as NDJSON, and compares the
// verdicts: accepted or refused, the status of a refusal, and for an accepted body the exact
// payload bytes, commit policy and timeout.

import assert from "node:assert/strict";
import fc from "fast-check";
import { writeBodySchema } from "../../src/http/routes/records.ts";
import { ndjsonWriteQuerySchema } from "../../src/http/routes/records.ts";
import {
  parseJsonWrite,
  parseNdjsonWrite,
  readWriteBody,
  writeBodyFormat,
  type WriteRequest,
} from "../../src/http/write_body.ts";
import {
  assertJsonShape,
  changeRecordSchema,
  decodeChangeRecord,
  encodeChangeRecords,
  jsonShapeWithin,
  stampRecord,
} from "../../src/model/records.ts";
import { type CommitPolicy, parseCommitPolicy } from "../../src/replication/commit_policy.ts";
import {
  BadRequestError,
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
} from "../../src/core/errors.ts";
import { JSON_DEPTH_MAX } from "../../src/core/limits.ts";
import type { WriteLimits } from "../../src/http/router.ts";

const NOW_MS = 1_800_000_000_000;
const RUNS = 3000;
/** Small limits, so that records, bodies and counts cross them often. */
const SMALL: WriteLimits = { requestBytesMax: 4096, recordBytesMax: 400, requestRecordsMax: 5 };
/** The defaults of a real server. */
const DEFAULTS: WriteLimits = {
  requestBytesMax: 4 << 20,
  recordBytesMax: 1 << 20,
  requestRecordsMax: 1000,
};

// ---- the verdicts ----

interface Verdict {
  status: number;
  payloads?: string[];
  policy?: CommitPolicy;
  timeoutMs?: number;
}

const _strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const _hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16)).join(" ");

function _accepted(request: WriteRequest): Verdict {
  return {
    status: 200,
    payloads: request.payloads.map(_hex),
    policy: request.policy,
    timeoutMs: request.timeoutMs,
  };
}

function _statusOf(error: unknown): number {
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof BadRequestError) return 400;
  throw error;
}

/** The hand-written path, the body read through `readWriteBody` as a server reads it. */
async function handVerdict(
  bytes: Uint8Array,
  format: "json" | "ndjson",
  options: { limits: WriteLimits; query?: { commit_policy?: string; timeout_ms?: string } },
): Promise<Verdict> {
  const body = bytes as Uint8Array<ArrayBuffer>;
  const request = new Request("http://ferry.test/v1/records", { method: "POST", body });
  try {
    const read = await readWriteBody(request, options.limits.requestBytesMax);
    const parse = { limits: options.limits, nowMs: NOW_MS };
    if (format === "json") return _accepted(parseJsonWrite(read, parse));
    const query = {
      commitPolicy: options.query?.commit_policy,
      timeoutMs: options.query?.timeout_ms,
    };
    return _accepted(parseNdjsonWrite(read, query, parse));
  } catch (error) {
    return { status: _statusOf(error) };
  }
}

/** zod's path: what the route did before the hand-written check (decode, parse, shape, schema). */
function zodJsonVerdict(bytes: Uint8Array, limits: WriteLimits): Verdict {
  if (bytes.byteLength > limits.requestBytesMax) return { status: 413 };
  let body: unknown;
  try {
    body = JSON.parse(_strictUtf8.decode(bytes));
    assertJsonShape(body);
  } catch {
    return { status: 400 };
  }
  const parsed = writeBodySchema.safeParse(body);
  if (!parsed.success || parsed.data.records.length > limits.requestRecordsMax) {
    return { status: 400 };
  }
  let policy: CommitPolicy | undefined;
  try {
    if (parsed.data.commit_policy !== undefined) {
      policy = parseCommitPolicy(parsed.data.commit_policy);
    }
  } catch {
    return { status: 400 };
  }
  return _encoded(parsed.data.records, limits, policy, parsed.data.timeout_ms);
}

/** zod's path for NDJSON: lines split, each parsed and checked with the record schema. */
function zodNdjsonVerdict(
  bytes: Uint8Array,
  limits: WriteLimits,
  query: Record<string, string>,
): Verdict {
  if (bytes.byteLength > limits.requestBytesMax) return { status: 413 };
  let text: string;
  try {
    text = _strictUtf8.decode(bytes);
  } catch {
    return { status: 400 };
  }
  const options = ndjsonWriteQuerySchema.safeParse(query);
  if (!options.success) return { status: 400 };
  const records = [];
  try {
    const policy = options.data.commit_policy === undefined
      ? undefined
      : parseCommitPolicy(options.data.commit_policy);
    for (const raw of text.split("\n")) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") continue;
      const value = JSON.parse(line);
      if (!jsonShapeWithin(value, JSON_DEPTH_MAX + 1)) return { status: 400 };
      const record = changeRecordSchema.safeParse(value);
      if (!record.success) return { status: 400 };
      records.push(record.data);
    }
    if (records.length === 0 || records.length > limits.requestRecordsMax) return { status: 400 };
    return _encoded(records, limits, policy, options.data.timeout_ms);
  } catch {
    return { status: 400 };
  }
}

function _encoded(
  records: Array<Parameters<typeof stampRecord>[0]>,
  limits: WriteLimits,
  policy: CommitPolicy | undefined,
  timeoutMs: number | undefined,
): Verdict {
  const payloads = encodeChangeRecords(records.map((record) => stampRecord(record, NOW_MS)));
  if (payloads.some((payload) => payload.byteLength > limits.recordBytesMax)) {
    return { status: 413 };
  }
  return { status: 200, payloads: payloads.map(_hex), policy, timeoutMs };
}

// ---- JSON text with what JSON.stringify cannot write ----

/** JSON text used as is: numbers JSON.parse cannot keep, escapes, deep nesting, broken JSON. */
class Raw {
  constructor(readonly text: string) {}
}

/** An object written with exactly these entries, in this order, duplicates included. */
class Entries {
  constructor(readonly entries: Array<[string, unknown]>) {}
}

function jsonText(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof Entries) {
    return "{" + value.entries.map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item)}`)
      .join(",") +
      "}";
  }
  if (Array.isArray(value)) return "[" + value.map(jsonText).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return jsonText(new Entries(Object.entries(value)));
  }
  return JSON.stringify(value) ?? "null";
}

// ---- generators ----

/** `arbitrary` one time in `oneIn`, else null. */
function maybe<T>(arbitrary: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> {
  return fc.oneof(
    { weight: oneIn - 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary },
  );
}

function nested(levels: number, inner: string, object: boolean): Raw {
  return new Raw(
    object
      ? '{"a":'.repeat(levels - 1) + `{"a":${inner}}` + "}".repeat(levels - 1)
      : "[".repeat(levels) + inner + "]".repeat(levels),
  );
}

/** Values of the wrong kind for any field. */
const wrongType = fc.constantFrom<unknown>(
  null,
  true,
  0,
  -1,
  1.5,
  "",
  "1",
  [],
  {},
  [1],
  { a: 1 },
  new Raw("1e400"),
  new Raw('"\\ud800"'),
);

const collectionChars = [..."abcXYZ019_.-"];
const goodCollection = fc.oneof(
  { weight: 9, arbitrary: fc.string({ unit: fc.constantFrom(...collectionChars), minLength: 1 }) },
  { weight: 1, arbitrary: fc.constant("Z".repeat(128)) },
);
const badCollection = fc.oneof(
  fc.constantFrom<unknown>("c".repeat(129), "", "no space", "é", "a/b", "a\u0000"),
  wrongType,
);

const goodKey = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "k".repeat(1024),
      "é".repeat(512),
      "😀".repeat(256),
      "中".repeat(341),
      "é".repeat(341),
      'quote"\\back',
      "\u202e\u200f",
    ),
  },
);
/** Keys past a limit, and strings that may or may not be keys (lone surrogates, NUL). */
const badKey = fc.oneof(
  fc.constantFrom<unknown>(
    "",
    "\u0000",
    "a\u0000b",
    "k".repeat(1025),
    "é".repeat(513),
    "😀".repeat(257),
    "中".repeat(342),
    new Raw('"a\\ud800"'),
    new Raw('"\\udfff"'),
  ),
  fc.string({ unit: "binary", maxLength: 6 }),
  wrongType,
);

const goodValue = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 300, max: 500 }).map((n) => "x".repeat(n)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      nested(JSON_DEPTH_MAX, "1", false),
      nested(JSON_DEPTH_MAX, "{}", true),
      new Raw("-0"),
      new Raw("1e-400"),
      new Raw('{"__proto__":{"x":1}}'),
      new Raw('{"a":1,"a":2}'),
      null,
    ),
  },
);
/** Values around the depth limit and with what JSON.parse cannot keep: some valid, most not. */
const badValue = fc.oneof(
  fc.tuple(
    fc.integer({ min: JSON_DEPTH_MAX - 1, max: JSON_DEPTH_MAX + 2 }),
    fc.boolean(),
    fc.constantFrom("1", "null", "[]", "{}", '"\\ud800"', "1e400"),
  ).map(([levels, object, inner]) => nested(levels, inner, object)),
  fc.constantFrom<unknown>(
    new Raw("1e400"),
    new Raw("-1e400"),
    new Raw('"\\ud800"'),
    new Raw('{"\\udc00":1}'),
    new Raw('[1,{"a":"\\udfff"}]'),
  ),
  fc.string({ unit: "binary", maxLength: 8 }),
);

const goodTs = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const badTs = fc.constantFrom<unknown>(
  -1,
  1.5,
  2 ** 53,
  new Raw("-0"),
  new Raw("1e400"),
  "1",
  null,
);

const fieldNames = ["op", "collection", "key", "value", "ts"] as const;
const faults = [
  "op",
  "collection",
  "key",
  "value",
  "ts",
  "drop",
  "extra",
  "value-on-delete",
  "no-value",
] as const;

/**
 * One record as entries, in order or reversed: valid four times in five, else with one fault (a
 * field of the wrong kind or past a limit, a field dropped or added, a value where none belongs).
 */
const record = fc.record({
  op: fc.constantFrom<unknown>("put", "put", "delete"),
  collection: goodCollection,
  key: goodKey,
  value: goodValue,
  ts: maybe(goodTs, 3),
  fault: maybe(fc.constantFrom(...faults), 5),
  badOp: fc.constantFrom<unknown>("upsert", "PUT", "", null, 1),
  badCollection,
  badKey,
  badValue,
  badTs,
  drop: fc.constantFrom(...fieldNames),
  extra: fc.tuple(
    fc.constantFrom("extra", "__proto__", "records", "Op", "", "value", "op", "ts"),
    goodValue,
  ),
  reversed: fc.boolean(),
}).map((r) => {
  const op = r.fault === "op" ? r.badOp : r.op;
  const entries: Array<[string, unknown]> = [
    ["op", op],
    ["collection", r.fault === "collection" ? r.badCollection : r.collection],
    ["key", r.fault === "key" ? r.badKey : r.key],
  ];
  const withValue = r.fault === "value-on-delete" ||
    (op !== "delete" && r.fault !== "no-value");
  if (withValue) entries.push(["value", r.fault === "value" ? r.badValue : r.value]);
  if (r.fault === "ts") entries.push(["ts", r.badTs]);
  else if (r.ts !== null) entries.push(["ts", r.ts]);
  const kept = r.fault === "drop" ? entries.filter(([name]) => name !== r.drop) : entries;
  if (r.fault === "extra") kept.push(r.extra);
  if (r.reversed) kept.reverse();
  return new Entries(kept);
});

const policy = fc.constantFrom<unknown>(
  "local",
  "quorum",
  "ack_n=0",
  "ack_n=2",
  "regions=eu,us,eu",
  "local",
  "ack_n=1",
  "ack_n=01",
  "Local",
  "",
  "regions=",
  1,
  null,
  new Raw('"\\ud800"'),
);
const timeout = fc.constantFrom<unknown>(0, 5, 600_000, 1000, 20, 600_001, -1, 1.5, "5", null);

/** Byte-level damage after the text is written. */
const damage = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant("truncate"), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({
    kind: fc.constant("insert"),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    bytes: fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xc3], [0x0a], [0x22]),
  }),
  fc.record({ kind: fc.constant("bom") }),
  fc.record({ kind: fc.constant("pad"), spaces: fc.constantFrom(1, 5000) }),
);

type Damage = { kind: string; at?: number; bytes?: number[]; spaces?: number };

function damaged(bytes: Uint8Array, how: Damage | null): Uint8Array {
  if (how === null) return bytes;
  const at = Math.floor((how.at ?? 0) * bytes.byteLength);
  switch (how.kind) {
    case "flip": {
      const out = bytes.slice();
      if (out.byteLength > 0) out[Math.min(at, out.byteLength - 1)]! ^= 0x80;
      return out;
    }
    case "truncate":
      return bytes.slice(0, at);
    case "insert": {
      const inserted = new Uint8Array(bytes.byteLength + how.bytes!.length);
      inserted.set(bytes.subarray(0, at));
      inserted.set(how.bytes!, at);
      inserted.set(bytes.subarray(at), at + how.bytes!.length);
      return inserted;
    }
    case "bom":
      return new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]);
    default: {
      const padded = new Uint8Array(bytes.byteLength + how.spaces!).fill(0x20);
      padded.set(bytes);
      return padded;
    }
  }
}

const jsonBody = fc.record({
  records: fc.oneof(
    { weight: 12, arbitrary: fc.array(record, { minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(record, { minLength: 5, maxLength: 7 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>([], null, "x", {}, [null], [[]]) },
  ),
  policy: maybe(policy, 3),
  timeout: maybe(timeout, 3),
  extra: maybe(fc.constantFrom("extra", "__proto__", "Records", "ts"), 15),
  dropRecords: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
  root: maybe(fc.constantFrom<unknown>([], null, "s", 1, new Raw("{")), 40),
  limits: fc.constantFrom(SMALL, DEFAULTS),
  damage: maybe(damage, 4),
});

const _utf8 = new TextEncoder();

Deno.test("property: the hand-written JSON check and zod's schema give the same verdict", async () => {
  await fc.assert(
    fc.asyncProperty(jsonBody, async (b) => {
      const entries: Array<[string, unknown]> = [];
      if (!b.dropRecords) entries.push(["records", b.records]);
      if (b.policy !== null) entries.push(["commit_policy", b.policy]);
      if (b.timeout !== null) entries.push(["timeout_ms", b.timeout]);
      if (b.extra !== null) entries.push([b.extra, 1]);
      const text = jsonText(b.root ?? new Entries(entries));
      const bytes = damaged(_utf8.encode(text), b.damage as Damage | null);
      const hand = await handVerdict(bytes, "json", { limits: b.limits });
      const reference = zodJsonVerdict(bytes, b.limits);
      assert.deepEqual(hand, reference, `body: ${new TextDecoder().decode(bytes).slice(0, 300)}`);
    }),
    { numRuns: RUNS },
  );
});

const ndjsonBody = fc.record({
  lines: fc.oneof(
    { weight: 12, arbitrary: fc.array(record, { minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(record, { minLength: 5, maxLength: 7 }) },
    { weight: 1, arbitrary: fc.constant([]) },
  ),
  odd: maybe(
    fc.constantFrom<unknown>(new Raw(""), new Raw(" "), new Raw("{"), new Raw("[1]"), null, 5),
    8,
  ),
  crlf: fc.boolean(),
  trailing: fc.boolean(),
  query: fc.record({
    commit_policy: maybe(fc.constantFrom("local", "ack_n=1", "quorum", "Local", ""), 3),
    timeout_ms: maybe(fc.constantFrom("0", "5", "600000", "600001", "-1", "1.5", "x", ""), 3),
  }),
  limits: fc.constantFrom(SMALL, DEFAULTS),
  damage: maybe(damage, 4),
});

Deno.test("property: the hand-written NDJSON check and zod's record schema give the same verdict", async () => {
  await fc.assert(
    fc.asyncProperty(ndjsonBody, async (b) => {
      const lines: unknown[] = [...b.lines];
      if (b.odd !== null) lines.splice(Math.floor(lines.length / 2), 0, b.odd);
      const newline = b.crlf ? "\r\n" : "\n";
      const text = lines.map(jsonText).join(newline) + (b.trailing ? newline : "");
      const bytes = damaged(_utf8.encode(text), b.damage as Damage | null);
      const query: Record<string, string> = {};
      if (b.query.commit_policy !== null) query.commit_policy = b.query.commit_policy;
      if (b.query.timeout_ms !== null) query.timeout_ms = b.query.timeout_ms;
      const hand = await handVerdict(bytes, "ndjson", { limits: b.limits, query });
      const reference = zodNdjsonVerdict(bytes, b.limits, query);
      assert.deepEqual(hand, reference, `body: ${new TextDecoder().decode(bytes).slice(0, 300)}`);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("parseJsonWrite() refuses what zod refuses, case by case", async () => {
  const put = (extra: Record<string, unknown> = {}) =>
    new Entries(Object.entries({ op: "put", collection: "c", key: "k", value: 1, ...extra }));
  const cases: Array<[string, unknown]> = [
    ["wrong type of op", { records: [put({ op: 1 })] }],
    ["missing key", { records: [new Entries([["op", "put"], ["collection", "c"], ["value", 1]])] }],
    ["extra field", { records: [put({ extra: true })] }],
    ["oversize key", { records: [put({ key: "é".repeat(513) })] }],
    ["oversize collection", { records: [put({ collection: "c".repeat(129) })] }],
    ["too deep", { records: [put({ value: nested(JSON_DEPTH_MAX + 1, "1", false) })] }],
    ["put without value", {
      records: [new Entries([["op", "put"], ["collection", "c"], ["key", "k"]])],
    }],
    ["delete with value", { records: [put({ op: "delete" })] }],
    ["lone surrogate", { records: [put({ value: new Raw('"\\ud800"') })] }],
    ["too many records", { records: Array.from({ length: 6 }, () => put()) }],
  ];
  for (const [name, body] of cases) {
    const bytes = _utf8.encode(jsonText(body));
    assert.deepEqual(await handVerdict(bytes, "json", { limits: SMALL }), { status: 400 }, name);
    assert.deepEqual(zodJsonVerdict(bytes, SMALL), { status: 400 }, name);
  }
  // A record of exactly recordBytesMax bytes is taken; one byte more is 413.
  const record = (n: number) => put({ value: "x".repeat(n), ts: 1 });
  const fixed = jsonText(record(0)).length;
  for (const [extra, status] of [[0, 200], [1, 413]] as const) {
    const body = { records: [record(SMALL.recordBytesMax - fixed + extra)] };
    const bytes = _utf8.encode(jsonText(body));
    assert.equal((await handVerdict(bytes, "json", { limits: SMALL })).status, status);
    assert.equal(zodJsonVerdict(bytes, SMALL).status, status);
  }
  // The deepest value a replica accepts is accepted, and not one level more (it was, before).
  const deepest = _utf8.encode(
    jsonText({ records: [put({ value: nested(JSON_DEPTH_MAX, "1", true) })] }),
  );
  assert.equal((await handVerdict(deepest, "json", { limits: DEFAULTS })).status, 200);
  const [payload] = parseJsonWrite(deepest, { limits: DEFAULTS, nowMs: NOW_MS }).payloads;
  assert.equal(decodeChangeRecord(payload!).key, "k", "a replica applies what was accepted");
});

Deno.test("readWriteBody() refuses a body past the limit, declared or streamed", async () => {
  const big = new Uint8Array(5000).fill(0x20);
  const declared = new Request("http://ferry.test/", {
    method: "POST",
    body: big,
    headers: { "content-length": "5000" },
  });
  await assert.rejects(readWriteBody(declared, 4096), PayloadTooLargeError);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(1000));
      controller.close();
    },
  });
  const streamed = new Request("http://ferry.test/", { method: "POST", body: stream });
  await assert.rejects(readWriteBody(streamed, 4096), PayloadTooLargeError);
  // A declared length past the limit is refused before a byte of the body is read.
  let pulled = false;
  const unread = new ReadableStream<Uint8Array>({
    pull: () => void (pulled = true),
  }, { highWaterMark: 0 });
  const declaredStream = new Request("http://ferry.test/", {
    method: "POST",
    body: unread,
    headers: { "content-length": "5000" },
  });
  await assert.rejects(readWriteBody(declaredStream, 4096), PayloadTooLargeError);
  assert.equal(pulled, false, "the body was not read");
  const fits = new Request("http://ferry.test/", { method: "POST", body: big });
  assert.equal((await readWriteBody(fits, 5000)).byteLength, 5000);
});

Deno.test("writeBodyFormat() takes JSON and NDJSON in UTF-8 and names both when refusing", () => {
  for (
    const type of [
      "application/json",
      "application/json; charset=utf-8",
      'APPLICATION/JSON; charset="UTF-8"',
      "application/json;foo=bar",
    ]
  ) {
    assert.equal(writeBodyFormat(type), "json", type);
  }
  assert.equal(writeBodyFormat("application/x-ndjson"), "ndjson");
  assert.equal(writeBodyFormat("application/x-ndjson; charset=utf-8"), "ndjson");
  for (
    const type of [
      undefined,
      "",
      "text/plain",
      "application/jsonx",
      "application/vnd.api+json",
      "application/json; charset=latin1",
      "application/json, text/plain",
      "multipart/form-data; boundary=x",
    ]
  ) {
    assert.throws(
      () => writeBodyFormat(type),
      (error: unknown) =>
        error instanceof UnsupportedMediaTypeError &&
        error.message.includes("application/json") &&
        error.message.includes("application/x-ndjson"),
      String(type),
    );
  }
});
