// The state's writes read the current entry of every key they write (the meta's entry count and
// stale chunks depend on it). Range listings must answer exactly what point reads answer, whatever
// the keys: clustered or scattered, present or absent, in any Unicode.

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compareUtf8,
  lookupId,
  type LookupStats,
  readCurrentMains,
} from "../../src/state/current_mains.ts";
import { KvState } from "../../src/state/kv_state.ts";

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}

/** Writes `present` through KvState, then checks `readCurrentMains(wanted)` against point reads. */
async function agrees(kv: Deno.Kv, present: string[], wanted: string[]): Promise<LookupStats> {
  const state = new KvState(kv);
  const records = present.map((key, i) => ({
    lsn: i + 1,
    record: { op: "put" as const, collection: "c", key, value: i, ts: 1 },
  }));
  if (records.length > 0) {
    await state.apply(records, (lsn) => ({ applied_lsn: lsn, last_term: 1, last_hash: null }));
  }
  const stats = { rangeReads: 0, pointReads: 0 };
  const lookups = [...new Set(wanted)].map((key) => ({ collection: "c", key }));
  const mains = await readCurrentMains(kv, lookups, stats);
  assert.equal(mains.size, lookups.length);
  for (const lookup of lookups) {
    const entry = await kv.get<{ lsn: number }>(["state", "c", lookup.key]);
    assert.equal(mains.get(lookupId(lookup))?.lsn, entry.value?.lsn, lookup.key);
  }
  return stats;
}

const pad = (i: number) => String(i).padStart(6, "0");

Deno.test("readCurrentMains() answers new keys past the existing ones with one listing", async () => {
  await withKv(async (kv) => {
    const present = Array.from({ length: 300 }, (_, i) => `k${pad(i)}`);
    const wanted = Array.from({ length: 400 }, (_, i) => `k${pad(200 + i)}`);
    const stats = await agrees(kv, present, wanted);
    assert.equal(stats.pointReads, 0);
    assert.ok(stats.rangeReads <= 4, JSON.stringify(stats));
  });
});

Deno.test("readCurrentMains() falls back to point reads for keys scattered among many others", async () => {
  await withKv(async (kv) => {
    // More than a listing's worth of other keys between any two wanted ones.
    const present = Array.from({ length: 9000 }, (_, i) => `k${pad(i * 7)}`);
    const wanted = Array.from({ length: 60 }, (_, i) => `k${pad(i * 997 + 3)}`);
    const stats = await agrees(kv, present, [...wanted, "k000007", "k000700"]);
    assert.equal(stats.rangeReads, 1, "one listing showed the keys are scattered");
    assert.ok(stats.pointReads > 0);
  });
});

Deno.test("property: readCurrentMains() equals point reads for any keys", async () => {
  const key = fc.string({ unit: "binary", minLength: 1, maxLength: 4 });
  await fc.assert(
    fc.asyncProperty(
      fc.array(key, { maxLength: 60 }),
      fc.array(key, { maxLength: 80 }),
      async (present, wanted) => {
        await withKv(async (kv) => {
          await agrees(kv, [...new Set(present)], [...wanted, ...present.slice(0, 10)]);
        });
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("compareUtf8() orders strings by their UTF-8 bytes", () => {
  const strings = ["a", "ab", "\u0000", "\uffff", "\u{10000}", "é", "\ue000", "b", ""];
  const bytes = (s: string) => Array.from(new TextEncoder().encode(s));
  const byBytes = [...strings].sort((x, y) => {
    const a = bytes(x);
    const b = bytes(y);
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
    return a.length - b.length;
  });
  assert.deepEqual([...strings].sort(compareUtf8), byBytes);
});
