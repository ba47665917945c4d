// RFC 9110 conditional and partial GETs as sealed segments need them (SPEC.md 13.2): one byte range
// (a malformed one or several get the whole object), 416 only past the end, a weak If-None-Match
// comparison against the strong ETag.

import assert from "node:assert/strict";
import { byteRangeOf, etagMatches } from "../../src/http/byte_range.ts";

Deno.test("byteRangeOf() and etagMatches() follow RFC 9110 for one range and a strong ETag", () => {
  const etag = '"abc"';
  const at = (range: string, ifRange?: string) => byteRangeOf({ range, ifRange }, 100, etag);
  assert.deepEqual(at("bytes=0-0"), { kind: "part", start: 0, end: 1 });
  assert.deepEqual(at("bytes=90-"), { kind: "part", start: 90, end: 100 });
  assert.deepEqual(at("bytes=-200"), { kind: "part", start: 0, end: 100 });
  assert.deepEqual(at("bytes=100-"), { kind: "unsatisfiable" });
  assert.deepEqual(at("bytes=0-9", etag), { kind: "part", start: 0, end: 10 });
  assert.deepEqual(at("bytes=-"), { kind: "whole" });
  assert.deepEqual(byteRangeOf({ range: undefined, ifRange: undefined }, 100, etag), {
    kind: "whole",
  });
  assert.ok(etagMatches('W/"abc"', etag) && etagMatches(' "x" , "abc"', etag));
  assert.ok(!etagMatches('"abcd"', etag) && !etagMatches(undefined, etag));
});
