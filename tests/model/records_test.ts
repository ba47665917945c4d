// SPEC.md section 1, change records: the encoding is compact JSON with a fixed field order, the
// same whether records are encoded one by one or many at once.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ChangeRecord,
  decodeChangeRecord,
  encodeChangeRecord,
  encodeChangeRecords,
} from "../../src/model/records.ts";

/** The obvious encoding: an object with the fields in order, through JSON.stringify. */
function reference(record: ChangeRecord): Uint8Array {
  const ordered = record.op === "put"
    ? {
      op: record.op,
      collection: record.collection,
      key: record.key,
      value: record.value,
      ts: record.ts,
    }
    : { op: record.op, collection: record.collection, key: record.key, ts: record.ts };
  return new TextEncoder().encode(JSON.stringify(ordered));
}

const wellFormed = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }).filter((s) =>
  !s.includes("\u0000")
);
const records: fc.Arbitrary<ChangeRecord> = fc.oneof(
  fc.record({
    op: fc.constant("put" as const),
    collection: fc.stringMatching(/^[A-Za-z0-9_.-]{1,10}$/),
    key: wellFormed,
    value: fc.jsonValue(),
    ts: fc.nat(),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    collection: fc.stringMatching(/^[A-Za-z0-9_.-]{1,10}$/),
    key: wellFormed,
    ts: fc.nat(),
  }),
);

Deno.test("property: encodeChangeRecord() and encodeChangeRecords() give the reference bytes", () => {
  fc.assert(
    fc.property(fc.array(records, { minLength: 1, maxLength: 20 }), (all) => {
      const batch = encodeChangeRecords(all);
      all.forEach((record, i) => {
        assert.deepEqual(encodeChangeRecord(record), reference(record));
        assert.deepEqual(batch[i]!.slice(), reference(record));
        assert.deepEqual(decodeChangeRecord(batch[i]!), JSON.parse(JSON.stringify(record)));
      });
    }),
    { numRuns: 300 },
  );
});

Deno.test("encodeChangeRecords() splits multi-byte text (accents, CJK, emoji) at the right bytes", () => {
  const all: ChangeRecord[] = [
    { op: "put", collection: "c", key: "é", value: "日本", ts: 1 },
    { op: "put", collection: "c", key: "😀", value: { "ключ": "🚀" }, ts: 2 },
    { op: "delete", collection: "c", key: "k", ts: 3 },
  ];
  const views = encodeChangeRecords(all);
  assert.deepEqual(views.map((v) => decodeChangeRecord(v).key), ["é", "😀", "k"]);
});
