// What a state store remembers of the main entries it wrote (src/state/known_mains.ts): a store
// that writes keys again reads none of them back, forgets the generation before last past its
// cap, and after a failed write (which may have landed) reads again, its entry count included.

import assert from "node:assert/strict";
import fc from "fast-check";
import { joinPath } from "../../src/core/files.ts";
import { KNOWN_MAIN_OVERHEAD_BYTES } from "../../src/core/limits.ts";
import { type KnownMain, KnownMains } from "../../src/state/known_mains.ts";
import { type AppliedRecord, KvState, type StateMeta } from "../../src/state/kv_state.ts";
import { countStateEntries } from "../helpers/kv_state.ts";

function put(lsn: number, key: string, value: unknown = lsn): AppliedRecord {
  return { lsn, record: { op: "put", collection: "c", key, value, ts: lsn } };
}

function del(lsn: number, key: string): AppliedRecord {
  return { lsn, record: { op: "delete", collection: "c", key, ts: lsn } };
}

function metaAt(lsn: number): StateMeta {
  return { applied_lsn: lsn, last_term: 1, last_hash: null };
}

/**
 * A Deno KV handle that counts the reads a write plans with (`getMany`, `list`) and, once armed,
 * makes the next commit land and then fail, as a commit whose answer is lost.
 */
function instrumentedKv(kv: Deno.Kv) {
  const reads = { count: 0 };
  const faults = { landThenFail: false };
  const proxy = new Proxy(kv, {
    get(target, name) {
      const member = Reflect.get(target, name, target);
      if (name === "getMany" || name === "list") {
        return (...args: unknown[]) => {
          reads.count += 1;
          return member.apply(target, args);
        };
      }
      if (name === "atomic") {
        return () => {
          const atomic = target.atomic();
          const commit = atomic.commit.bind(atomic);
          atomic.commit = async () => {
            const result = await commit();
            if (!faults.landThenFail) return result;
            faults.landThenFail = false;
            throw new Error("the commit landed but its answer was lost");
          };
          return atomic;
        };
      }
      return typeof member === "function" ? member.bind(target) : member;
    },
  });
  return { kv: proxy as Deno.Kv, reads, faults };
}

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-known-mains-" });
  const kv = await Deno.openKv(joinPath(dir, "state.kv"));
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("KnownMains remembers outlines in two generations of half its cap each, and nothing after clear()", () => {
  const entryBytes = KNOWN_MAIN_OVERHEAD_BYTES + 2 * "k1".length;
  const known = new KnownMains(4 * entryBytes); // two entries per generation
  known.set("k1", "inline");
  known.set("k2", null);
  assert.equal(known.get("k1"), "inline");
  assert.equal(known.get("k2"), null, "null: known absent");
  assert.equal(known.get("k9"), undefined, "undefined: unknown");
  known.set("k3", { lsn: 7, chunks: 2 }); // the young generation was full: it is the old one now
  assert.deepEqual([known.get("k1"), known.get("k2"), known.get("k3")], [
    "inline",
    null,
    { lsn: 7, chunks: 2 },
  ]);
  known.set("k4", "inline");
  known.set("k1", null); // written again: in the new young generation, with its new outline
  assert.equal(known.get("k2"), undefined, "the generation before last is forgotten");
  assert.deepEqual([known.get("k1"), known.get("k3"), known.get("k4")], [
    null,
    { lsn: 7, chunks: 2 },
    "inline",
  ]);
  known.clear();
  assert.equal(known.size, 0);
  assert.equal(known.get("k1"), undefined);
});

Deno.test("property: KnownMains answers every key's last outline or nothing, and stays within its cap", () => {
  const entryBytes = KNOWN_MAIN_OVERHEAD_BYTES + 2 * "k00".length;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(40), fc.constantFrom<KnownMain>("inline", null)), {
        maxLength: 300,
      }),
      fc.integer({ min: 2, max: 20 }),
      (writes, capEntries) => {
        const known = new KnownMains(capEntries * entryBytes);
        const last = new Map<string, KnownMain>();
        for (const [n, outline] of writes) {
          const id = `k${String(n).padStart(2, "0")}`;
          known.set(id, outline);
          last.set(id, outline);
          assert.ok(known.size <= capEntries, "at most the cap's entries");
        }
        for (const [id, outline] of last) {
          const answer = known.get(id);
          if (answer !== undefined) assert.equal(answer, outline, `${id}: the last outline`);
        }
        // The last writes that fill half the cap are always remembered.
        const recent = writes.slice(-Math.floor(capEntries / 2));
        for (const [n] of recent) {
          assert.notEqual(known.get(`k${String(n).padStart(2, "0")}`), undefined);
        }
      },
    ),
  );
});

Deno.test("a store that writes keys it wrote before reads none of their entries back", async () => {
  await withKv(async (raw) => {
    const { kv, reads } = instrumentedKv(raw);
    const state = new KvState(kv);
    const keys = Array.from({ length: 300 }, (_, i) => `k${(i * 7919) % 1000}`);
    await state.apply(keys.map((key, i) => put(i + 1, key)), metaAt);
    assert.ok(reads.count > 0, "new keys are read (the store cannot know they are absent)");
    reads.count = 0;
    const again = keys.map((key, i) => i % 3 === 0 ? del(301 + i, key) : put(301 + i, key));
    await state.apply(again, metaAt);
    assert.equal(reads.count, 0, "no read for keys this store wrote");
    assert.equal(await countStateEntries(raw), 200);
    assert.equal((await new KvState(raw).meta()).entries, 200);
  });
});

Deno.test("after a commit that landed but failed, the store reads again and its entry count stays exact", async () => {
  await withKv(async (raw) => {
    const { kv, reads, faults } = instrumentedKv(raw);
    const state = new KvState(kv);
    await state.apply([put(1, "a"), put(2, "b")], metaAt);
    faults.landThenFail = true;
    await assert.rejects(state.apply([del(3, "a")], metaAt), /answer was lost/);
    reads.count = 0;
    await state.apply([put(4, "a"), put(5, "c")], metaAt);
    assert.ok(reads.count > 0, "what the store remembered was dropped with the failure");
    assert.equal(await countStateEntries(raw), 3);
    assert.equal((await new KvState(raw).meta()).entries, 3, "a, b and c");
  });
});
