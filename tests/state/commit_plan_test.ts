// How the state's writes are cut into commits: sizes are estimated the way Deno KV counts them,
// a sub-batch stops before a commit's limits, and only the chunks a write leaves behind go stale.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import {
  cutSubBatch,
  keyBytesOf,
  mainCost,
  metaToWrite,
  prepare,
  setCost,
  staleChunkKeys,
  withinCommit,
  type WriteItem,
  ZERO_COST,
} from "../../src/state/commit_plan.ts";
import { checkedMain } from "../../src/state/integrity.ts";
import { type ChunkedMain, keyId, mainKey } from "../../src/state/kv_layout.ts";
import {
  KV_CHUNK_BYTES,
  KV_COMMIT_MUTATIONS_MAX,
  KV_INLINE_VALUE_BYTES,
} from "../../src/core/limits.ts";

function item(lsn: number, key: string, value: unknown = 1): WriteItem {
  return { collection: "c", key, id: keyId("c", key), lsn, value, deleted: false };
}

Deno.test("keyBytesOf() counts a tag and a NUL per string, NULs twice, 9 bytes a number", () => {
  // "state": 2 + 5; "a\0b": 2 + 3 + 1 (the escaped NUL); 3: 9.
  assert.equal(keyBytesOf(["state", "a\0b", 3]), 22);
  assert.equal(keyBytesOf(["é"]), 4);
});

Deno.test("property: mainCost() counts a main key's bytes as keyBytesOf() counts the key itself", () => {
  // NUL (escaped to two bytes), 2-, 3- and 4-byte characters and a lone surrogate, or anything.
  const units = fc.constantFrom("a", "\0", "é", "日", "😀", "\ud800", "\udc00");
  const text = fc.oneof(
    fc.string({ unit: units, maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 40 }),
  );
  fc.assert(
    fc.property(text, text, fc.boolean(), (collection, key, deleted) => {
      const write: WriteItem = { ...item(1, key), collection, deleted };
      const cost = mainCost(write, prepare(write));
      assert.equal(cost.keyBytes, keyBytesOf(mainKey(collection, key)));
    }),
  );
});

Deno.test("prepare() stores small values inline and chunks the ones V8 would store too large", () => {
  assert.deepEqual(prepare({ ...item(1, "k"), deleted: true, value: undefined }), {
    kind: "delete",
  });
  assert.deepEqual(prepare(item(1, "k", { a: 1 })), {
    kind: "inline",
    json: '{"a":1}',
    storedBytes: 14,
  });
  const big = "x".repeat(KV_INLINE_VALUE_BYTES);
  const text = new TextEncoder().encode(JSON.stringify(big));
  assert.deepEqual(prepare(item(1, "k", big)), { kind: "chunked", text, crc32: crc32(text) });
  // 40 003 bytes of UTF-8, under the inline bound, but V8 stores two bytes per character.
  const wide = prepare(item(1, "k", "x".repeat(40_000) + "€"));
  assert.equal(wide.kind, "chunked");
});

Deno.test("cutSubBatch() collapses a key to its last item and stops before the limits", () => {
  const released: number[] = [];
  const items = [item(1, "a"), item(2, "b"), item(3, "a")];
  const costOf = () => setCost(10, 10);
  const whole = cutSubBatch(items, {
    start: 0,
    end: items.length,
    reserve: ZERO_COST,
    costOf,
    release: (index) => released.push(index),
  });
  assert.equal(whole.end, 3);
  assert.deepEqual([...whole.finals.values()].sort(), [1, 2]);
  assert.deepEqual(released, [0]);
  const many = Array.from({ length: KV_COMMIT_MUTATIONS_MAX + 5 }, (_, i) => item(i + 1, `k${i}`));
  const cut = cutSubBatch(many, {
    start: 0,
    end: many.length,
    reserve: setCost(10, 10),
    costOf,
    release: () => {},
  });
  assert.equal(cut.end, KV_COMMIT_MUTATIONS_MAX - 1, "the reserve takes one mutation");
  assert.ok(!withinCommit({ ...ZERO_COST, mutations: KV_COMMIT_MUTATIONS_MAX + 1 }));
});

Deno.test("staleChunkKeys() keeps only the chunks a re-applied write at the same LSN rewrites", () => {
  const chunked = (lsn: number) =>
    checkedMain("c", "k", { lsn, chunks: 3, bytes: 3 * KV_CHUNK_BYTES, crc32: 0 }) as ChunkedMain;
  const oneChunk = { ...ZERO_COST, chunkBytes: KV_CHUNK_BYTES };
  assert.equal(staleChunkKeys(item(9, "k"), oneChunk, chunked(4)).length, 3);
  assert.deepEqual(staleChunkKeys(item(4, "k"), oneChunk, chunked(4)), [
    ["state_chunk", "c", "k", 4, 1],
    ["state_chunk", "c", "k", 4, 2],
  ]);
  assert.deepEqual(staleChunkKeys(item(9, "k"), ZERO_COST, "inline"), []);
  assert.deepEqual(staleChunkKeys(item(9, "k"), ZERO_COST, undefined), []);
});

Deno.test("metaToWrite() refuses a meta larger than the room every commit keeps for it", () => {
  assert.equal(metaToWrite({ applied_lsn: 1, last_term: 1, last_hash: "ab" }).entries, 0);
  assert.throws(
    () => metaToWrite({ applied_lsn: 1, last_term: 1, last_hash: "x".repeat(5000) }),
    assert.AssertionError,
  );
});
