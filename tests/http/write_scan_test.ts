// The write body's byte scan (src/http/write_scan.ts) is a fast path only: for a body in the
// common form (UTF-8, values as JSON.stringify writes them) it must give exactly the bytes,
// policy and timeout of the general path (JSON.parse, check, encode again), and for any other
// body it must step aside (undefined) so that the general path decides. These properties hold it
// to both, over bodies built in that form, the same bodies damaged, and the cases it refuses.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  parseJsonWrite,
  parseJsonWriteGeneral,
  parseNdjsonWrite,
  parseNdjsonWriteGeneral,
  type WriteRequest,
} from "../../src/http/write_body.ts";
import { scanJsonWrite, scanNdjsonWrite } from "../../src/http/write_scan.ts";
import { JSON_DEPTH_MAX, WRITE_SCAN_MEMBERS_MAX } from "../../src/core/limits.ts";
import type { WriteLimits } from "../../src/http/router.ts";

const NOW_MS = 1_800_000_000_000;
const RUNS = 2000;
const DEFAULTS: WriteLimits = {
  requestBytesMax: 4 << 20,
  recordBytesMax: 1 << 20,
  requestRecordsMax: 1000,
};
/** Small limits, so that record sizes and counts cross them often. */
const SMALL: WriteLimits = { requestBytesMax: 4096, recordBytesMax: 120, requestRecordsMax: 3 };

const _utf8 = new TextEncoder();
const _text = new TextDecoder();
const _hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16)).join(" ");

type Outcome = { payloads: string[]; policy: unknown; timeoutMs: unknown } | { error: string };

function _outcome(run: () => WriteRequest): Outcome {
  try {
    const request = run();
    return {
      payloads: request.payloads.map(_hex),
      policy: request.policy,
      timeoutMs: request.timeoutMs,
    };
  } catch (error) {
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

// ---- bodies in the common form ----

const printable = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
/** Characters beyond ASCII of one, two, three and four bytes of UTF-8 (stringify keeps them). */
const wide = [
  "\u0080",
  "é",
  "\u07ff",
  "\u0800",
  "日",
  "\u2028",
  "\ufeff",
  "\uffff",
  "😀",
  "\u{10ffff}",
];
/** Text with the characters JSON.stringify escapes with two characters, and wide ones. */
const text = fc.string({
  unit: fc.constantFrom(...printable, "\u007f", "\n", "\t", "\r", "\b", "\f", ...wide),
  maxLength: 24,
});
/** Member names never of digits only (V8 orders those first, so the scan leaves them). */
const memberName = fc.stringMatching(/^[a-z_ A-Z-]{0,6}$/);
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    text,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(memberName, tie("value"), { maxKeys: 5 }),
  ),
}));
const key = fc.string({
  unit: fc.constantFrom(...printable.filter((c) => c !== '"' && c !== "\\"), "\u007f", ...wide),
  minLength: 1,
  maxLength: 16,
});
const collection = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/);
/** Whitespace the scan takes between the tokens of a record or of the body (never in a value). */
const space = fc.constantFrom("", "", " ", "\n", " \t\r\n ");

const record = fc.record({
  op: fc.constantFrom("put", "delete"),
  collection,
  key,
  value,
  ts: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  reversed: fc.boolean(),
  sp: space,
});

type Rec = typeof record extends fc.Arbitrary<infer T> ? T : never;

/** A record object written by hand: its fields in either order, `sp` between the tokens. */
function recordText(r: Rec, newlines = true): string {
  const sp = newlines ? r.sp : r.sp.replaceAll(/[\r\n]/g, "");
  const fields: string[] = [
    `"op"${sp}:${sp}"${r.op}"`,
    `"collection":${sp}${JSON.stringify(r.collection)}`,
    `"key"${sp}:${JSON.stringify(r.key)}`,
  ];
  if (r.op === "put") fields.push(`"value":${sp}${JSON.stringify(r.value)}`);
  if (r.ts !== null) fields.push(`"ts":${r.ts}${sp}`);
  if (r.reversed) fields.reverse();
  return `{${sp}${fields.join(`${sp},${sp}`)}${sp}}`;
}

const jsonBody = fc.record({
  records: fc.array(record, { minLength: 1, maxLength: 5 }),
  policy: fc.option(fc.constantFrom("local", "ack_n=1", "quorum", "regions=eu,us")),
  timeout: fc.option(fc.integer({ min: 0, max: 600_000 })),
  sp: space,
});

function jsonBodyText(b: typeof jsonBody extends fc.Arbitrary<infer T> ? T : never): string {
  const fields = [`"records"${b.sp}:${b.sp}[${b.records.map((r) => recordText(r)).join(",")}]`];
  if (b.policy !== null) fields.unshift(`"commit_policy":${b.sp}"${b.policy}"`);
  if (b.timeout !== null) fields.push(`"timeout_ms":${b.timeout}`);
  return `${b.sp}{${fields.join(`,${b.sp}`)}}${b.sp}`;
}

const ndjsonBody = fc.record({
  records: fc.array(record, { minLength: 1, maxLength: 5 }),
  crlf: fc.boolean(),
  trailing: fc.boolean(),
  blank: fc.boolean(),
});

function ndjsonBodyText(b: typeof ndjsonBody extends fc.Arbitrary<infer T> ? T : never): string {
  const newline = b.crlf ? "\r\n" : "\n";
  const lines = b.records.map((r) => recordText(r, false));
  if (b.blank) lines.splice(1, 0, "");
  return lines.join(newline) + (b.trailing ? newline : "");
}

function assertSameAsGeneral(bytes: Uint8Array, scanned: Outcome, general: Outcome): void {
  assert.deepEqual(scanned, general, `body: ${_text.decode(bytes).slice(0, 400)}`);
}

Deno.test("property: a JSON body in the common form takes the scan, with the general path's bytes", () => {
  fc.assert(
    fc.property(jsonBody, (b) => {
      const bytes = _utf8.encode(jsonBodyText(b));
      const options = { limits: DEFAULTS, nowMs: NOW_MS };
      assert.notEqual(scanJsonWrite(bytes, DEFAULTS, NOW_MS), undefined, jsonBodyText(b));
      const general = _outcome(() => parseJsonWriteGeneral(bytes, options));
      assert.ok(!("error" in general), JSON.stringify(general));
      assertSameAsGeneral(bytes, _outcome(() => parseJsonWrite(bytes, options)), general);
    }),
    { numRuns: RUNS },
  );
});

Deno.test("property: an NDJSON body in the common form takes the scan, with the general path's bytes", () => {
  fc.assert(
    fc.property(ndjsonBody, fc.option(fc.constantFrom("quorum", "bad")), (b, policy) => {
      const bytes = _utf8.encode(ndjsonBodyText(b));
      const query = { commitPolicy: policy, timeoutMs: "250" };
      const options = { limits: DEFAULTS, nowMs: NOW_MS };
      assert.notEqual(scanNdjsonWrite(bytes, DEFAULTS, NOW_MS), undefined, ndjsonBodyText(b));
      assertSameAsGeneral(
        bytes,
        _outcome(() => parseNdjsonWrite(bytes, query, options)),
        _outcome(() => parseNdjsonWriteGeneral(bytes, query, options)),
      );
    }),
    { numRuns: RUNS },
  );
});

// ---- any other body: the scan steps aside, or agrees ----

/** Pieces that leave the common form, or JSON, when put into a body. */
const intruder = fc.constantFrom(
  "",
  " ",
  "\\u0041",
  "\\/",
  "1.0",
  "-0",
  "1E2",
  '"1":1,',
  '"0":',
  "\u00e9",
  "\ud83d\ude00",
  '"op":"put",',
  '"value":1,',
  '"ts":1.5,',
  "[",
  "]",
  "}",
  ",",
  '"',
  "\\",
  "\u0000",
  "\ufeff",
  "9007199254740992",
  "1e400",
);

const damagedBody = fc.record({
  format: fc.constantFrom("json", "ndjson"),
  json: jsonBody,
  ndjson: ndjsonBody,
  at: fc.nat(),
  cut: fc.integer({ min: 0, max: 3 }),
  intruder,
  limits: fc.constantFrom(SMALL, DEFAULTS),
});

Deno.test("property: on any body, whatever the scan takes the general path takes the same way", () => {
  let taken = 0;
  fc.assert(
    fc.property(damagedBody, (d) => {
      const whole = d.format === "json" ? jsonBodyText(d.json) : ndjsonBodyText(d.ndjson);
      const at = d.at % (whole.length + 1);
      const body = whole.slice(0, at) + d.intruder + whole.slice(at + d.cut);
      const bytes = _utf8.encode(body);
      const options = { limits: d.limits, nowMs: NOW_MS };
      const query = { commitPolicy: undefined, timeoutMs: undefined };
      const scanned = d.format === "json"
        ? scanJsonWrite(bytes, d.limits, NOW_MS)
        : scanNdjsonWrite(bytes, d.limits, NOW_MS);
      const general = d.format === "json"
        ? _outcome(() => parseJsonWriteGeneral(bytes, options))
        : _outcome(() => parseNdjsonWriteGeneral(bytes, query, options));
      if (scanned === undefined) return;
      taken++;
      // What the route does with the scan's answer (a JSON body's policy is parsed after it).
      const routed = d.format === "json"
        ? _outcome(() => parseJsonWrite(bytes, options))
        : _outcome(() => parseNdjsonWrite(bytes, query, options));
      assert.deepEqual(routed, general, body);
      const payloads = Array.isArray(scanned) ? scanned : scanned.payloads;
      if (!("error" in general)) assert.deepEqual(payloads.map(_hex), general.payloads, body);
      else assert.match(general.error, /commit_policy|policy/, `only a policy is refused: ${body}`);
    }),
    { numRuns: RUNS },
  );
  assert.ok(taken > RUNS / 100, `the scan took ${taken} of ${RUNS} damaged bodies`);
});

/** A value written by hand: members in any order, index-like and repeated names among them. */
const { raw } = fc.letrec((tie) => ({
  raw: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    fc.constantFrom("1", "-0", "0.5", "1e2", '"x"', '"\\u0078"', "null"),
    fc.array(tie("raw"), { maxLength: 3 }).map((items) => `[${items.join(",")}]`),
    fc.array(fc.tuple(fc.constantFrom("a", "b", "0", "1", "10", "01", "-1"), tie("raw")), {
      maxLength: 4,
    }).map((entries) => `{${entries.map(([name, item]) => `"${name}":${item}`).join(",")}}`),
  ),
}));

Deno.test("property: values written by hand are copied only when JSON.stringify would write them so", () => {
  let taken = 0;
  fc.assert(
    fc.property(raw, (value) => {
      const body = `{"records":[{"op":"put","collection":"c","key":"k","value":${value}}]}`;
      const bytes = _utf8.encode(body);
      const scanned = scanJsonWrite(bytes, DEFAULTS, NOW_MS);
      if (scanned === undefined) return;
      taken++;
      const general = parseJsonWriteGeneral(bytes, { limits: DEFAULTS, nowMs: NOW_MS });
      assert.deepEqual(scanned.payloads.map(_hex), general.payloads.map(_hex), value);
    }),
    { numRuns: RUNS },
  );
  assert.ok(taken > RUNS / 10, `the scan took ${taken} of ${RUNS} values`);
});

/** Bytes that are not UTF-8 (JSON.parse never sees them: the general path refuses the body). */
const notUtf8 = [
  [0xff],
  [0x80],
  [0xc0, 0x80], // overlong
  [0xc3], // cut short
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // a surrogate
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf0, 0x9f, 0x98], // cut short
];

Deno.test("property: bytes that are not UTF-8, anywhere in a body, leave it to the general path", () => {
  fc.assert(
    fc.property(
      jsonBody,
      fc.nat(),
      fc.constantFrom(...notUtf8),
      (b, where, bad) => {
        const good = _utf8.encode(jsonBodyText(b));
        // Inside a string as often as not: right after a quote.
        const quotes = [...good].flatMap((byte, i) => byte === 0x22 ? [i + 1] : []);
        const at = quotes[where % quotes.length]!;
        const bytes = new Uint8Array([...good.subarray(0, at), ...bad, ...good.subarray(at)]);
        assert.equal(scanJsonWrite(bytes, DEFAULTS, NOW_MS), undefined, _hex(bytes));
        const general = _outcome(() =>
          parseJsonWriteGeneral(bytes, { limits: DEFAULTS, nowMs: NOW_MS })
        );
        assert.ok("error" in general);
      },
    ),
    { numRuns: RUNS / 4 },
  );
});

// ---- case by case ----

const _put = (value: string, extra = "") =>
  `{"records":[{"op":"put","collection":"c","key":"k","value":${value}${extra}}]}`;

Deno.test("scanJsonWrite() copies the values JSON.stringify writes as they are", () => {
  const taken = [
    "0",
    "-1.5",
    "1e+21",
    "5e-324",
    "1234567890123456",
    "-123456789012345",
    '"a\\"b\\\\c\\n\\t\\b\\f\\r"',
    '"\u007f"',
    `"${wide.join("")}"`,
    `{"${wide.join("")}":"é"}`,
    '{"":[],"a b":{},"_":null}',
    "[true,false,null,[[[]]]]",
    `{${Array.from({ length: WRITE_SCAN_MEMBERS_MAX }, (_, i) => `"m${i}":${i}`).join(",")}}`,
    "[".repeat(JSON_DEPTH_MAX) + "]".repeat(JSON_DEPTH_MAX),
  ];
  for (const value of taken) {
    const bytes = _utf8.encode(_put(value, ',"ts":7'));
    const scanned = scanJsonWrite(bytes, DEFAULTS, NOW_MS);
    assert.notEqual(scanned, undefined, value);
    const stored = `{"op":"put","collection":"c","key":"k","value":${value},"ts":7}`;
    assert.equal(_text.decode(scanned!.payloads[0]), stored, value);
    const general = parseJsonWriteGeneral(bytes, { limits: DEFAULTS, nowMs: NOW_MS });
    assert.deepEqual(scanned!.payloads, general.payloads, value);
  }
});

Deno.test("scanJsonWrite() steps aside for every form it does not copy, and the general path decides", () => {
  const aside = [
    "1.0", // stored as 1
    "-0", // stored as 0
    "1E2", // stored as 100
    "12345678901234567890", // stored as 12345678901234567000
    '"\\u0041"', // stored as "A"
    '"\\/"', // stored as "/"
    '{"1":1,"a":2}', // V8 puts index-like names first
    '{"b":1,"a":2,"b":3}', // a repeated member keeps its first place and last value
    '{"a": 1}', // whitespace in a value
    "[1, 2]",
    `{${Array.from({ length: WRITE_SCAN_MEMBERS_MAX + 1 }, (_, i) => `"m${i}":${i}`).join(",")}}`,
    "[".repeat(JSON_DEPTH_MAX + 1) + "]".repeat(JSON_DEPTH_MAX + 1), // refused: too deep
    "1e400", // refused: not a double
    '"\\ud800"', // refused: a lone surrogate
  ];
  for (const value of aside) {
    const bytes = _utf8.encode(_put(value));
    assert.equal(scanJsonWrite(bytes, DEFAULTS, NOW_MS), undefined, value);
  }
  const bodies = [
    '{"records":[{"op":"put","collection":"c","key":"k","value":1,"op":"put"}]}', // repeated field
    '{"records":[{"op":"put","collection":"c","key":"k","value":1}],"records":[]}',
    '{"records":[{"op":"put","collection":"c","key":"k","value":1,"ts":1.0}]}',
    '{"records":[{"op":"put","collection":"c","key":"k","value":1,"ts":9007199254740992}]}',
    '{"records":[{"op":"put","collection":"c","key":"\\u006b","value":1}]}',
    '{"records":[{"op":"put","collection":"c","key":"","value":1}]}',
    '{"records":[{"op":"put","collection":"c/d","key":"k","value":1}]}',
    '{"records":[{"op":"delete","collection":"c","key":"k","value":1}]}',
    '{"records":[{"op":"put","collection":"c","key":"k"}]}',
    '{"records":[{"op":"put","collection":"c","key":"k","value":1,"x":1}]}',
    '{"records":[]}',
    '{"records":[{"op":"put","collection":"c","key":"k","value":1}}}', // [ closed by }
    '{"records":[{"op":"put","collection":"c","key":"k","value":1]]}', // { closed by ]
    '{"records":[{"op":"put","collection":"c","key":"k","value":1}]]', // body closed by ]
    '{"records":[{"op":"put","collection":"c","key":"k","value":1}],"timeout_ms":600001}',
    '\ufeff{"records":[{"op":"put","collection":"c","key":"k","value":1}]}',
    '{"records":[{"op":"put","collection":"c","key":"k","value":1}]} x',
  ];
  for (const body of bodies) {
    assert.equal(scanJsonWrite(_utf8.encode(body), DEFAULTS, NOW_MS), undefined, body);
  }
});

Deno.test("scanJsonWrite() leaves limits to the general path: too many records, too big a record", () => {
  const records = (n: number, value: string) =>
    `{"records":[${
      Array.from({ length: n }, () => `{"op":"put","collection":"c","key":"k","value":${value}}`)
    }]}`;
  const many = _utf8.encode(records(SMALL.requestRecordsMax + 1, "1"));
  assert.equal(scanJsonWrite(many, SMALL, NOW_MS), undefined);
  assert.throws(() => parseJsonWrite(many, { limits: SMALL, nowMs: NOW_MS }), /at most 3 records/);
  const big = _utf8.encode(records(1, `"${"x".repeat(SMALL.recordBytesMax)}"`));
  assert.equal(scanJsonWrite(big, SMALL, NOW_MS), undefined);
  assert.throws(() => parseJsonWrite(big, { limits: SMALL, nowMs: NOW_MS }), /the limit is 120/);
});

Deno.test("scanNdjsonWrite() takes one record per line, never one spread over lines", () => {
  const line = '{"op":"delete","collection":"c","key":"k"}';
  const taken = scanNdjsonWrite(_utf8.encode(`${line} \r\n\r\n\t${line}\n`), DEFAULTS, NOW_MS);
  assert.equal(taken?.length, 2);
  assert.equal(
    _text.decode(taken![1]),
    `{"op":"delete","collection":"c","key":"k","ts":${NOW_MS}}`,
  );
  const spread = '{"op":"delete",\n"collection":"c","key":"k"}';
  assert.equal(scanNdjsonWrite(_utf8.encode(spread), DEFAULTS, NOW_MS), undefined);
  assert.equal(scanNdjsonWrite(_utf8.encode(`${line}\n  \n`), DEFAULTS, NOW_MS), undefined);
  assert.equal(scanNdjsonWrite(_utf8.encode("\n\n"), DEFAULTS, NOW_MS), undefined);
});

Deno.test("a scan's payloads stay as they were when later scans reuse its scratch space", () => {
  const body = (n: number) =>
    _utf8.encode(
      `{"records":[${
        Array.from(
          { length: n },
          (_, i) => `{"op":"put","collection":"c","key":"k${i}","value":${i}}`,
        )
      }]}`,
    );
  const first = scanJsonWrite(body(3), DEFAULTS, NOW_MS)!.payloads.map((p) => _text.decode(p));
  const firstViews = scanJsonWrite(body(3), DEFAULTS, NOW_MS)!.payloads;
  for (let i = 0; i < 50; i++) scanJsonWrite(body(1 + (i % 900)), DEFAULTS, NOW_MS + i);
  assert.deepEqual(firstViews.map((p) => _text.decode(p)), first);
});
