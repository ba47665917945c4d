// The integrity checks of what the state stores: a main entry or a meta that was changed at rest,
// or read under another key, is a `KvCorruptError`, never a value.

import assert from "node:assert/strict";
import { KvCorruptError } from "../../src/core/errors.ts";
import {
  checkedMain,
  metaValue,
  parseJson,
  parseMain,
  parseMeta,
} from "../../src/state/integrity.ts";
import { mainKey } from "../../src/state/kv_layout.ts";

Deno.test("parseMain() accepts what checkedMain() built, inline and chunked", () => {
  const inline = checkedMain("users", "u1", { lsn: 7, json: '{"a":1}' });
  assert.deepEqual(parseMain(inline, mainKey("users", "u1")), inline);
  const chunked = checkedMain("users", "u2", { lsn: 8, chunks: 2, bytes: 100_000, crc32: 123 });
  assert.deepEqual(parseMain(chunked, mainKey("users", "u2")), chunked);
});

Deno.test("parseMain() rejects a changed field, another key, or a value that is no entry", () => {
  const main = checkedMain("users", "u1", { lsn: 7, json: '{"a":1}' });
  const key = mainKey("users", "u1");
  assert.throws(() => parseMain({ ...main, lsn: 8 }, key), KvCorruptError);
  assert.throws(() => parseMain({ ...main, json: '{"a":2}' }, key), KvCorruptError);
  assert.throws(() => parseMain(main, mainKey("users", "u2")), KvCorruptError);
  assert.throws(() => parseMain(null, key), KvCorruptError);
  // A chunked entry claiming more chunks than bytes is refused even with a matching check.
  const many = checkedMain("c", "k", { lsn: 1, chunks: 5, bytes: 4, crc32: 0 });
  assert.throws(() => parseMain(many, mainKey("c", "k")), KvCorruptError);
});

Deno.test("parseMeta() accepts what metaValue() built and rejects a changed field", () => {
  const stored = metaValue({ applied_lsn: 5, last_term: 2, last_hash: "ab", entries: 3 });
  assert.deepEqual(parseMeta(stored), {
    applied_lsn: 5,
    last_term: 2,
    last_hash: "ab",
    entries: 3,
  });
  assert.throws(() => parseMeta({ ...stored, last_hash: "ac" }), KvCorruptError);
  assert.throws(() => parseMeta({ ...stored, entries: 4 }), KvCorruptError);
  assert.throws(() => parseMeta("meta"), KvCorruptError);
});

Deno.test("metaValue() counts no entries when none are given and refuses a non-LSN", () => {
  const stored = metaValue({ applied_lsn: 0, last_term: 0, last_hash: null });
  assert.equal(stored.entries, 0);
  assert.throws(
    () => metaValue({ applied_lsn: -1, last_term: 0, last_hash: null }),
    assert.AssertionError,
  );
});

Deno.test("parseJson() parses stored text and calls text that does not parse corruption", () => {
  assert.deepEqual(parseJson('{"a":[1]}', "c", "k"), { a: [1] });
  assert.throws(() => parseJson('{"a":', "c", "k"), KvCorruptError);
});
