// SPEC.md sections 1 and 8: the materialised state in Deno KV. Change records apply in sub-batches
// whose visible mutations and applied LSN commit together; large values are chunked; reapplying
// converges; scans come in (collection, key) order and resume strictly after a cursor.

import assert from "node:assert/strict";
import fc from "fast-check";
import { crc32 } from "node:zlib";
import {
  type AppliedRecord,
  KV_STATE_CHUNK_PREFIX,
  KV_STATE_META_KEY,
  KV_STATE_PREFIX,
  KvState,
  type StateEntry,
  type StateMeta,
} from "../../src/state/kv_state.ts";
import { joinPath } from "../../src/core/files.ts";
import { countStateEntries } from "../helpers/kv_state.ts";
import { KV_INLINE_VALUE_BYTES, KV_READ_RETRIES_MAX } from "../../src/core/limits.ts";

const utf8 = new TextEncoder();

/** Runs `fn` on a fresh KV in a fresh temporary directory, closed and removed afterwards. */
async function withKv(fn: (kv: Deno.Kv, state: KvState) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-kv-state-" });
  const kv = await Deno.openKv(joinPath(dir, "state.kv"));
  try {
    await fn(kv, new KvState(kv));
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function put(lsn: number, collection: string, key: string, value: unknown): AppliedRecord {
  return { lsn, record: { op: "put", collection, key, value, ts: lsn } };
}

function del(lsn: number, collection: string, key: string): AppliedRecord {
  return { lsn, record: { op: "delete", collection, key, ts: lsn } };
}

/** The caller's part of a stored meta (KvState adds its entry count and check). */
function callerMeta(meta: unknown): StateMeta {
  const { applied_lsn, last_term, last_hash } = meta as StateMeta;
  return { applied_lsn, last_term, last_hash };
}

function metaAt(lsn: number): StateMeta {
  return { applied_lsn: lsn, last_term: 1, last_hash: `hash-${lsn}` };
}

/** A JSON value of about `bytes` bytes of JSON text, distinct per `seed`. */
function bigString(bytes: number, seed: number): string {
  return `${seed}:`.padEnd(bytes, "x");
}

/**
 * A short stand-in for a value: comparing megabytes of values directly would make a failure's
 * diff unreadable, and slow enough to look like a hang.
 */
function digestValue(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.byteLength} bytes, crc32 ${crc32(value)}`;
  const json = JSON.stringify(value);
  return json.length <= 80
    ? json
    : `${json.slice(0, 40)}… (${json.length} chars, crc32 ${crc32(json)})`;
}

function digest(entries: readonly (StateEntry | undefined)[]): string[] {
  return entries.map((entry) =>
    entry === undefined
      ? "absent"
      : `${entry.collection}/${entry.key} @${entry.lsn} = ${digestValue(entry.value)}`
  );
}

/** Every key and value in the KV (main entries, chunks, meta), in key order, as digests. */
async function dump(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of kv.list({ prefix: [] })) {
    out.push(`${JSON.stringify(entry.key)} = ${digestValue(entry.value)}`);
  }
  return out;
}

async function chunkKeys(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const keys: Deno.KvKey[] = [];
  for await (const entry of kv.list({ prefix: [...KV_STATE_CHUNK_PREFIX] })) keys.push(entry.key);
  return keys;
}

async function mainEntry(kv: Deno.Kv, collection: string, key: string) {
  return (await kv.get<Record<string, unknown>>([...KV_STATE_PREFIX, collection, key])).value;
}

/** Compares like Deno KV does: UTF-8 bytes, then length. */
function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

function compareEntries(a: StateEntry, b: StateEntry): number {
  return compareUtf8(a.collection, b.collection) || compareUtf8(a.key, b.key);
}

/** The state a plain Map model reaches after `records`, as sorted entries. */
function modelEntries(records: readonly AppliedRecord[]): StateEntry[] {
  const model = new Map<string, StateEntry>();
  for (const { lsn, record } of records) {
    const id = JSON.stringify([record.collection, record.key]);
    if (record.op === "delete") model.delete(id);
    else {
      const value = JSON.parse(JSON.stringify(record.value));
      model.set(id, { collection: record.collection, key: record.key, value, lsn });
    }
  }
  return [...model.values()].sort(compareEntries);
}

/** One commit as seen through the spy. */
interface CommitLog {
  sets: Array<{ key: Deno.KvKey; value: unknown }>;
  deletes: Deno.KvKey[];
}

/**
 * Wraps a Kv so that every atomic commit is logged (and `afterCommit` runs once it is durable,
 * before the caller continues); other methods go to the real Kv.
 */
function spyKv(
  kv: Deno.Kv,
  afterCommit: (log: CommitLog) => Promise<void> = () => Promise.resolve(),
): { kv: Deno.Kv; commits: CommitLog[] } {
  const commits: CommitLog[] = [];
  const atomic = () => {
    const inner = kv.atomic();
    const log: CommitLog = { sets: [], deletes: [] };
    const wrapped = new Proxy(inner, {
      get(target, property) {
        if (property === "set") {
          return (key: Deno.KvKey, value: unknown) => {
            log.sets.push({ key, value });
            target.set(key, value);
            return wrapped;
          };
        }
        if (property === "delete") {
          return (key: Deno.KvKey) => {
            log.deletes.push(key);
            target.delete(key);
            return wrapped;
          };
        }
        if (property === "commit") {
          return async () => {
            const result = await target.commit();
            commits.push(log);
            await afterCommit(log);
            return result;
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return wrapped;
  };
  const proxy = new Proxy(kv, {
    get(target, property) {
      if (property === "atomic") return atomic;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, commits };
}

const isMain = (key: Deno.KvKey) => key[0] === KV_STATE_PREFIX[0];
const isChunk = (key: Deno.KvKey) => key[0] === KV_STATE_CHUNK_PREFIX[0];
const isMeta = (key: Deno.KvKey) => key[0] === KV_STATE_META_KEY[0];

Deno.test("KvState.meta() is all zero when nothing was applied", async () => {
  await withKv(async (kv, state) => {
    assert.deepEqual(await state.meta(), { applied_lsn: 0, last_term: 0, last_hash: null });
    assert.equal(await countStateEntries(kv), 0);
    assert.equal(await state.get("c", "k"), undefined);
  });
});

Deno.test("KvState.apply() puts, get() reads, a delete removes, deleting a missing key is fine", async () => {
  await withKv(async (kv, state) => {
    await state.apply([put(1, "users", "u1", { name: "Ada", tags: ["x"] })], metaAt);
    assert.deepEqual(await state.get("users", "u1"), {
      collection: "users",
      key: "u1",
      value: { name: "Ada", tags: ["x"] },
      lsn: 1,
    });
    await state.apply([put(2, "users", "u2", null), del(3, "users", "u1")], metaAt);
    assert.equal(await state.get("users", "u1"), undefined);
    assert.deepEqual(await state.get("users", "u2"), {
      collection: "users",
      key: "u2",
      value: null,
      lsn: 2,
    });
    await state.apply([del(4, "users", "nobody")], metaAt);
    assert.equal(await countStateEntries(kv), 1);
    assert.equal((await state.meta()).applied_lsn, 4);
  });
});

Deno.test("KvState.apply() moves the meta with each call, to the last LSN", async () => {
  await withKv(async (_kv, state) => {
    const asked: number[] = [];
    const metaAfter = (lsn: number) => (asked.push(lsn), metaAt(lsn));
    await state.apply([put(1, "c", "a", 1), put(2, "c", "b", 2), put(3, "c", "a", 3)], metaAfter);
    assert.deepEqual(callerMeta(await state.meta()), metaAt(3));
    assert.equal((await state.meta()).entries, 2, "a and b");
    await state.apply([del(4, "c", "b")], metaAfter);
    assert.deepEqual(callerMeta(await state.meta()), metaAt(4));
    assert.equal((await state.meta()).entries, 1);
    await state.apply([], metaAfter);
    assert.deepEqual(callerMeta(await state.meta()), metaAt(4), "an empty apply changes nothing");
    assert.deepEqual(asked, [3, 4]);
    await state.setMeta({ applied_lsn: 9, last_term: 2, last_hash: null });
    assert.deepEqual(await state.meta(), {
      applied_lsn: 9,
      last_term: 2,
      last_hash: null,
      entries: 1,
    });
  });
});

Deno.test("KvState.apply() refuses records out of LSN order and values that are not JSON", async () => {
  await withKv(async (kv, state) => {
    await assert.rejects(
      () => state.apply([put(2, "c", "a", 1), put(2, "c", "b", 1)], metaAt),
      assert.AssertionError,
    );
    await assert.rejects(() => state.apply([put(1, "c", "a", 1n)], metaAt), assert.AssertionError);
    await assert.rejects(
      () => state.apply([put(1, "c", "a", () => 1)], metaAt),
      assert.AssertionError,
    );
    assert.deepEqual(await dump(kv), [], "nothing was written");
  });
});

Deno.test("values of 1 MiB round-trip through chunks", async () => {
  await withKv(async (kv, state) => {
    const text = "s".repeat(1_000_000);
    const wide = Object.fromEntries(
      Array.from({ length: 20_000 }, (_, i) => [`field_${i}`, { i, s: "v".repeat(30) }]),
    );
    // Multi-byte characters straddle chunk boundaries.
    const multiByte = "日本😀é".repeat(90_000);
    await state.apply([
      put(1, "big", "text", text),
      put(2, "big", "wide", wide),
      put(3, "big", "multi", multiByte),
    ], metaAt);
    const read = await Promise.all(["text", "wide", "multi"].map((key) => state.get("big", key)));
    assert.deepEqual(
      digest(read),
      digest([
        { collection: "big", key: "text", value: text, lsn: 1 },
        { collection: "big", key: "wide", value: wide, lsn: 2 },
        { collection: "big", key: "multi", value: multiByte, lsn: 3 },
      ]),
    );
    assert.ok(read[0]!.value === text && read[2]!.value === multiByte);
    const textMain = await mainEntry(kv, "big", "text");
    assert.equal(textMain!.chunks, Math.ceil(1_000_002 / 60_000));
    assert.equal(textMain!.bytes, 1_000_002);
    assert.equal(textMain!.json, undefined);
    const chunks = await chunkKeys(kv);
    const expected = ["text", "wide", "multi"].map((key) => mainEntry(kv, "big", key));
    const totalChunks = (await Promise.all(expected)).reduce((n, m) => n + Number(m!.chunks), 0);
    assert.equal(chunks.length, totalChunks);
    const scanned = await Array.fromAsync(state.scan());
    assert.deepEqual(scanned.map((entry) => entry.key), ["multi", "text", "wide"]);
    assert.ok(scanned[1]!.value === text);
  });
});

Deno.test("a small text with a character past U+00FF is chunked when V8 would store it too large", async () => {
  await withKv(async (kv, state) => {
    // 40 003 bytes of UTF-8, but 80 004 bytes as V8 serializes it (two bytes per UTF-16 unit):
    // more than a Deno KV value may hold, so storing it inline would fail the commit.
    const twoByte = "x".repeat(40_000) + "€";
    const ascii = "y".repeat(KV_INLINE_VALUE_BYTES - 2);
    await state.apply([put(1, "c", "two", twoByte), put(2, "c", "one", ascii)], metaAt);
    assert.ok((await state.get("c", "two"))!.value === twoByte);
    assert.ok((await state.get("c", "one"))!.value === ascii);
    assert.equal(typeof (await mainEntry(kv, "c", "one"))!.json, "string", "ASCII stays inline");
    assert.equal((await mainEntry(kv, "c", "two"))!.chunks, 1);
  });
});

Deno.test("replacing or deleting a chunked value deletes its chunks", async () => {
  await withKv(async (kv, state) => {
    await state.apply([put(1, "c", "k", bigString(299_000, 1))], metaAt);
    assert.equal((await chunkKeys(kv)).length, 5);
    await state.apply([put(2, "c", "k", { small: true })], metaAt);
    assert.deepEqual(await chunkKeys(kv), [], "a small value replaced the chunked one");
    await state.apply([put(3, "c", "k", bigString(200_000, 3))], metaAt);
    await state.apply([put(4, "c", "k", bigString(130_000, 4))], metaAt);
    const keys = await chunkKeys(kv);
    assert.deepEqual(keys, [0, 1, 2].map((i) => [...KV_STATE_CHUNK_PREFIX, "c", "k", 4, i]));
    assert.ok((await state.get("c", "k"))!.value === bigString(130_000, 4));
    await state.apply([del(5, "c", "k")], metaAt);
    assert.deepEqual(await chunkKeys(kv), []);
    assert.equal(await state.get("c", "k"), undefined);
  });
});

Deno.test("stale chunks that do not fit the sub-batch commit are deleted right after it", async () => {
  await withKv(async (raw) => {
    // 67 chunks under a 1000-byte key: their deletes pass one commit's 64 KiB of keys.
    const key = "long/".padEnd(1000, "k");
    await new KvState(raw).apply([put(1, "c", key, bigString(4_000_000, 1))], metaAt);
    const stale = (await chunkKeys(raw)).length;
    assert.equal(stale, 67);
    const { kv, commits } = spyKv(raw);
    await new KvState(kv).apply([put(2, "c", key, "small"), put(3, "c", "other", 1)], metaAt);
    assert.deepEqual(await chunkKeys(raw), []);
    const first = commits[0]!;
    assert.deepEqual(callerMeta(first.sets.find((s) => isMeta(s.key))!.value), metaAt(2));
    assert.ok(first.sets.some((s) => isMain(s.key)), "the main entry moves first");
    const inFirst = first.deletes.filter(isChunk).length;
    assert.ok(inFirst > 0 && inFirst < stale, `${inFirst} of ${stale} deletes fit`);
    const followUps = commits.slice(1, -1);
    assert.ok(followUps.length > 0);
    assert.ok(followUps.every((c) => c.sets.length === 0 && c.deletes.every(isChunk)));
    assert.equal(inFirst + followUps.reduce((n, c) => n + c.deletes.length, 0), stale);
    assert.deepEqual(callerMeta(commits.at(-1)!.sets.find((s) => isMeta(s.key))!.value), metaAt(3));
    assert.equal((await new KvState(raw).get("c", key))!.value, "small");
  });
});

Deno.test("several records for one key in a batch collapse to the last one", async () => {
  await withKv(async (raw) => {
    const { kv, commits } = spyKv(raw);
    const state = new KvState(kv);
    const records = Array.from({ length: 1000 }, (_, i) => put(i + 1, "c", "hot", { n: i + 1 }));
    records.push(put(1001, "c", "other", 1), del(1002, "c", "hot"), put(1003, "c", "hot", "end"));
    await state.apply(records, metaAt);
    assert.equal(commits.length, 1, "one commit: 1000 puts of one key are one mutation");
    assert.deepEqual(commits[0]!.sets.filter((s) => isMain(s.key)).length, 2);
    assert.deepEqual(await state.get("c", "hot"), {
      collection: "c",
      key: "hot",
      value: "end",
      lsn: 1003,
    });
    // Chunked versions superseded inside one batch are never written at all.
    commits.length = 0;
    await state.apply([
      put(1004, "c", "hot", bigString(200_000, 1)),
      put(1005, "c", "hot", bigString(200_000, 2)),
      put(1006, "c", "hot", [1, 2, 3]),
    ], metaAt);
    assert.equal(commits.length, 1);
    assert.deepEqual(commits.flatMap((c) => c.sets).filter((s) => isChunk(s.key)), []);
    assert.deepEqual((await state.get("c", "hot"))!.value, [1, 2, 3]);
    assert.deepEqual(await chunkKeys(raw), []);
  });
});

/** 5000 records over a few thousand keys, with deletes, repeats and some chunked values. */
function manyRecords(): AppliedRecord[] {
  return Array.from({ length: 5000 }, (_, i) => {
    const lsn = i + 1;
    const collection = lsn % 2 === 0 ? "even" : "odd";
    const key = `k/${lsn % 3001}`;
    // Three chunked keys, each replaced every 750 records (and one deleted now and then).
    if (lsn % 250 === 0) return put(lsn, "big", `b${lsn % 750}`, bigString(130_000, lsn));
    if (lsn % 1000 === 999) return del(lsn, "big", "b250");
    if (lsn % 7 === 0) return del(lsn, collection, key);
    if (lsn % 100 === 50) return put(lsn, collection, key, bigString(20_000, lsn));
    return put(lsn, collection, key, { lsn, note: "é日" });
  });
}

Deno.test("5000 records commit in sub-batches whose visible state and applied LSN move together", async () => {
  await withKv(async (raw) => {
    const records = manyRecords();
    const observer = new KvState(raw);
    const written = new Set<string>();
    let previousLsn = 0;
    let subBatches = 0;
    let chunkDeletes = 0;
    const { kv, commits } = spyKv(raw, async (log) => {
      const mains = [...log.sets.map((s) => s.key), ...log.deletes].filter(isMain);
      const metas = log.sets.filter((s) => isMeta(s.key));
      for (const s of log.sets.filter((s) => isChunk(s.key))) written.add(JSON.stringify(s.key));
      chunkDeletes += log.deletes.filter(isChunk).length;
      if (mains.length === 0) {
        // A chunk-only commit: nothing visible changes and the meta stays.
        assert.equal(metas.length, 0);
        assert.ok(log.sets.every((s) => isChunk(s.key)) && log.deletes.every(isChunk));
      } else {
        assert.equal(metas.length, 1, "a commit with main entries also writes the meta");
        const appliedLsn = (metas[0]!.value as StateMeta).applied_lsn;
        checkSubBatch(log, records.filter(({ lsn }) => lsn > previousLsn && lsn <= appliedLsn));
        for (const { key, value } of log.sets.filter((s) => isMain(s.key))) {
          const main = value as { lsn: number; chunks?: number };
          for (let i = 0; i < (main.chunks ?? 0); i++) {
            const chunk = [...KV_STATE_CHUNK_PREFIX, key[1]!, key[2]!, main.lsn, i];
            assert.ok(written.has(JSON.stringify(chunk)), "chunks commit before their main entry");
          }
        }
        previousLsn = appliedLsn;
        subBatches += 1;
      }
      // After every commit, what a reader sees is the model at the applied LSN it reads.
      const appliedLsn = (await observer.meta()).applied_lsn;
      assert.equal(appliedLsn, previousLsn);
      const visible = await Array.fromAsync(observer.scan({ batchSize: 1000 }));
      assert.deepEqual(digest(visible), digest(modelEntries(records.slice(0, appliedLsn))));
    });
    await new KvState(kv).apply(records, metaAt);
    assert.equal(previousLsn, 5000);
    assert.ok(subBatches >= 6, `${subBatches} sub-batch commits`);
    assert.ok(commits.length > subBatches, "the chunked values had commits of their own");
    assert.ok(chunkDeletes > 0, "replaced chunked values had their chunks deleted");
  });
});

Deno.test("a key written again in the next sub-batch replaces what the commit before it leaves", async () => {
  // The keys are read once, before the first commit: a key written again in a later sub-batch
  // must take what the earlier one left (chunks to delete, an entry that exists), not what was read.
  await withKv(async (raw) => {
    const records = Array.from({ length: 1500 }, (_, i): AppliedRecord => {
      const lsn = i + 1;
      if (lsn === 5 || lsn === 1200) return put(lsn, "big", "b", bigString(130_000, lsn));
      if (lsn === 6) return put(lsn, "c", "gone", { lsn });
      if (lsn === 1300) return del(lsn, "c", "gone");
      if (lsn === 7) return put(lsn, "c", "twice", { lsn });
      if (lsn === 1400) return put(lsn, "c", "twice", { lsn });
      return put(lsn, "c", `k${lsn}`, { lsn });
    });
    const { kv, commits } = spyKv(raw);
    await new KvState(kv).apply(records, metaAt);
    const metas = commits.flatMap((log) => log.sets.filter((s) => isMeta(s.key)));
    assert.ok(metas.length >= 2, `${metas.length} sub-batches: the keys span two of them`);
    const bigWrites = commits.filter((log) =>
      log.sets.some((s) => isMain(s.key) && s.key[1] === "big")
    );
    assert.equal(bigWrites.length, 2, "the chunked key is in two sub-batch commits");
    const expected = modelEntries(records);
    const meta = await new KvState(raw).meta();
    assert.equal(meta.entries, expected.length, "the entry count is exact");
    const owned = Number((await mainEntry(raw, "big", "b"))!.chunks);
    assert.deepEqual(
      (await chunkKeys(raw)).map((key) => key[3]),
      Array.from({ length: owned }, () => 1200),
      "only the last version's chunks are left",
    );
  });
});

Deno.test("a sub-batch commit that fails ends the apply with its error; applying again converges", async () => {
  await withKv(async (raw) => {
    // The first commit lands, the next ones fail (a full disk).
    let commits = 0;
    const failing = new Proxy(raw, {
      get(target, property) {
        if (property === "atomic") {
          return () => {
            const atomic = target.atomic();
            const commit = atomic.commit.bind(atomic);
            atomic.commit = () => {
              commits += 1;
              return commits === 1 ? commit() : Promise.reject(new Error("disk full"));
            };
            return atomic;
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const records = Array.from({ length: 3000 }, (_, i) => put(i + 1, "c", `k${i % 2000}`, i));
    await assert.rejects(new KvState(failing).apply(records, metaAt), /disk full/);
    const landed = (await new KvState(raw).meta()).applied_lsn;
    assert.ok(landed > 0 && landed < records.length, `the first sub-batch landed (${landed})`);
    const state = new KvState(raw);
    await state.apply(records.slice(landed), metaAt);
    const expected = modelEntries(records);
    assert.deepEqual(digest(await Array.fromAsync(state.scan())), digest(expected));
    assert.equal((await state.meta()).entries, expected.length, "the entry count is exact");
  });
});

/**
 * A sub-batch commit holds exactly the keys its records touched, each with the last of those
 * records, and its meta names the last record.
 */
function checkSubBatch(log: CommitLog, slice: readonly AppliedRecord[]): void {
  const meta = log.sets.find((s) => isMeta(s.key))!.value as StateMeta;
  assert.equal(slice.at(-1)!.lsn, meta.applied_lsn, "the meta names the commit's last record");
  const lastByKey = new Map(slice.map((r) => [`${r.record.collection}/${r.record.key}`, r]));
  const mains = [...log.sets.map((s) => s.key), ...log.deletes].filter(isMain);
  const id = (key: Deno.KvKey) => `${String(key[1])}/${String(key[2])}`;
  assert.deepEqual(new Set(mains.map(id)), new Set(lastByKey.keys()));
  assert.equal(mains.length, lastByKey.size, "one mutation per key");
  for (const { key, value } of log.sets.filter((s) => isMain(s.key))) {
    assert.equal((value as { lsn: number }).lsn, lastByKey.get(id(key))!.lsn);
  }
  for (const key of log.deletes.filter(isMain)) {
    assert.equal(lastByKey.get(id(key))!.record.op, "delete");
  }
}

Deno.test("sub-batches are cut by bytes and by key size, not only by count", async () => {
  await withKv(async (raw) => {
    const { kv, commits } = spyKv(raw);
    const state = new KvState(kv);
    // 40 inline values of ~59 KB: about 2.3 MB, far beyond one commit's 800 KiB.
    const heavy = Array.from(
      { length: 40 },
      (_, i) => put(i + 1, "c", `v${i}`, bigString(59_000, i)),
    );
    await state.apply(heavy, metaAt);
    assert.ok(commits.length >= 4, `${commits.length} commits`);
    // 300 keys of 1000 bytes: 300 KB of keys, beyond Deno KV's 80 KiB of keys per commit.
    commits.length = 0;
    const longKeys = Array.from(
      { length: 300 },
      (_, i) => put(41 + i, "c", `${i}`.padEnd(1000, "k"), i),
    );
    await state.apply(longKeys, metaAt);
    assert.ok(commits.length >= 4, `${commits.length} commits`);
    assert.ok(commits.every((c) => c.sets.some((s) => isMeta(s.key))));
    assert.equal(await countStateEntries(raw), 340);
    assert.equal((await state.get("c", "299".padEnd(1000, "k")))!.value, 299);
    assert.deepEqual(callerMeta(await state.meta()), metaAt(340));
  });
});

/** Records with repeats, deletes and chunked values, for convergence tests. */
function mixedRecords(): AppliedRecord[] {
  return Array.from({ length: 300 }, (_, i) => {
    const lsn = i + 1;
    const key = `k${lsn % 17}`;
    if (lsn % 5 === 0) return del(lsn, "c", key);
    if (lsn % 3 === 0) return put(lsn, "c", key, bigString(70_000 + lsn * 1000, lsn));
    return put(lsn, lsn % 2 === 0 ? "c" : "d", key, { lsn });
  });
}

Deno.test("applying the same records twice, or a prefix then all, converges to the same state", async () => {
  const records = mixedRecords();
  let once: string[] = [];
  await withKv(async (kv, state) => {
    await state.apply(records, metaAt);
    once = await dump(kv);
  });
  assert.ok(once.some((line) => line.startsWith('["state_chunk"')), "some values are chunked");
  await withKv(async (kv, state) => {
    await state.apply(records, metaAt);
    await state.apply(records, metaAt);
    assert.deepEqual(await dump(kv), once, "twice");
  });
  await withKv(async (kv, state) => {
    await state.apply(records.slice(0, 150), metaAt);
    await state.apply(records, metaAt);
    assert.deepEqual(await dump(kv), once, "a prefix, then all");
  });
  await withKv(async (kv, state) => {
    for (const record of records) await state.apply([record], metaAt);
    assert.deepEqual(await dump(kv), once, "one record at a time");
  });
  await withKv(async (_kv, state) => {
    await state.apply(records, metaAt);
    assert.deepEqual(digest(await Array.fromAsync(state.scan())), digest(modelEntries(records)));
  });
});

Deno.test("KvState.putEntries() loads entries with their LSNs and leaves the meta alone", async () => {
  await withKv(async (kv, state) => {
    const entries: StateEntry[] = [
      { collection: "a", key: "1", value: { x: 1 }, lsn: 7 },
      { collection: "a", key: "2", value: bigString(500_000, 2), lsn: 9 },
      { collection: "b", key: "1", value: [true], lsn: 3 },
    ];
    await state.putEntries(entries);
    assert.deepEqual(digest(await Array.fromAsync(state.scan())), digest(entries));
    assert.deepEqual(await state.meta(), { applied_lsn: 0, last_term: 0, last_hash: null });
    await state.putEntries([{ collection: "a", key: "2", value: bigString(100_000, 3), lsn: 11 }]);
    assert.equal((await chunkKeys(kv)).length, 2, "the chunks of the older entry are gone");
    assert.deepEqual(
      digest([await state.get("a", "2")]),
      digest([{ collection: "a", key: "2", value: bigString(100_000, 3), lsn: 11 }]),
    );
  });
});

Deno.test("KvState.get() reads again when a chunked value is replaced while it reads", async () => {
  await withKv(async (raw) => {
    const writer = new KvState(raw);
    await writer.apply([put(1, "c", "k", bigString(200_000, 1))], metaAt);
    let mainReads = 0;
    let replaced = false;
    const kv = new Proxy(raw, {
      get(target, property) {
        if (property === "get") {
          return (key: Deno.KvKey) => (mainReads += 1, target.get(key));
        }
        if (property === "getMany") {
          return async (keys: Deno.KvKey[]) => {
            // Between the reader's main entry and its chunks, the writer replaces the value.
            if (!replaced) {
              replaced = true;
              await writer.apply([put(2, "c", "k", bigString(150_000, 2))], metaAt);
            }
            return target.getMany(keys);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const entry = await new KvState(kv).get("c", "k");
    assert.deepEqual(
      digest([entry]),
      digest([{ collection: "c", key: "k", value: bigString(150_000, 2), lsn: 2 }]),
    );
    assert.equal(mainReads, 2);
  });
});

Deno.test("KvState.get() gives up with an error when chunks stay missing or torn", async () => {
  await withKv(async (raw, state) => {
    await state.apply([
      put(1, "c", "torn", bigString(200_000, 1)),
      put(2, "c", "gone", bigString(200_000, 2)),
    ], metaAt);
    const chunk = (await raw.get<Uint8Array>([...KV_STATE_CHUNK_PREFIX, "c", "torn", 1, 1])).value!;
    const flipped = chunk.slice();
    flipped[10]! ^= 1;
    await raw.set([...KV_STATE_CHUNK_PREFIX, "c", "torn", 1, 1], flipped);
    await raw.delete([...KV_STATE_CHUNK_PREFIX, "c", "gone", 2, 3]);
    let mainReads = 0;
    const kv = new Proxy(raw, {
      get(target, property) {
        if (property === "get") return (key: Deno.KvKey) => (mainReads += 1, target.get(key));
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const reader = new KvState(kv);
    await assert.rejects(() => reader.get("c", "torn"), /corrupt/);
    assert.equal(mainReads, 1 + KV_READ_RETRIES_MAX, "bounded retries");
    await assert.rejects(() => reader.get("c", "gone"), /corrupt/);
    await assert.rejects(() => Array.fromAsync(reader.scan()), /corrupt/);
  });
});

const SCAN_COLLECTIONS = ["a", "a.b", "a-1", "B", "b", "_x"];
const SCAN_KEYS = [
  "a",
  "a/b",
  "a/",
  "ab",
  "a b",
  "/",
  "é",
  "e",
  "z",
  "日本",
  "😀",
  "\uFFFD",
  "\uE000",
];

async function seedScan(state: KvState): Promise<StateEntry[]> {
  const records: AppliedRecord[] = [];
  for (const collection of SCAN_COLLECTIONS) {
    for (const key of SCAN_KEYS) {
      const lsn = records.length + 1;
      const value = lsn === 40 ? bigString(100_000, lsn) : { collection, key };
      records.push(put(lsn, collection, key, value));
    }
  }
  await state.apply(records, metaAt);
  return modelEntries(records);
}

Deno.test("KvState.scan() lists entries in (collection, key) order of UTF-8 bytes", async () => {
  await withKv(async (kv, state) => {
    const expected = await seedScan(state);
    const scanned = await Array.fromAsync(state.scan({ batchSize: 7 }));
    assert.deepEqual(digest(scanned), digest(expected));
    // Byte order, not UTF-16 order: U+E000 and U+FFFD come before an astral character.
    const keys = scanned.filter((e) => e.collection === "a").map((e) => e.key);
    assert.deepEqual(keys.slice(-3), ["\uE000", "\uFFFD", "😀"]);
    assert.equal(await countStateEntries(kv), expected.length);
  });
});

Deno.test("KvState.scan({after}) resumes strictly after the cursor, across collections", async () => {
  await withKv(async (_kv, state) => {
    const expected = await seedScan(state);
    for (let n = 0; n < expected.length; n++) {
      const { collection, key } = expected[n]!;
      const rest = await Array.fromAsync(state.scan({ after: { collection, key }, batchSize: 5 }));
      assert.deepEqual(digest(rest), digest(expected.slice(n + 1)), `after entry ${n}`);
    }
    // A cursor that is not an entry resumes at the next entry after it.
    const between = await Array.fromAsync(state.scan({ after: { collection: "a", key: "a/a" } }));
    assert.deepEqual(between[0]!.key, "a/b");
    const past = await Array.fromAsync(state.scan({ after: { collection: "zzz", key: "" } }));
    assert.deepEqual(past, []);
  });
});

Deno.test("KvState.scan() in two halves cut after entry N equals one full scan", async () => {
  await withKv(async (_kv, state) => {
    const full = await seedScan(state);
    for (const n of [0, 1, 12, 13, 39, 40, full.length - 2, full.length - 1]) {
      const first: StateEntry[] = [];
      for await (const entry of state.scan({ batchSize: 3 })) {
        first.push(entry);
        if (first.length === n + 1) break;
      }
      const cursor = first.at(-1)!;
      const second = await Array.fromAsync(
        state.scan({ after: { collection: cursor.collection, key: cursor.key } }),
      );
      assert.deepEqual(digest([...first, ...second]), digest(full), `cut after entry ${n}`);
    }
  });
});

const opArbitrary = fc.record({
  op: fc.constantFrom("put", "put", "delete"),
  collection: fc.constantFrom("x", "y"),
  key: fc.constantFrom("a", "b", "c/d", "é", "😀"),
  value: fc.oneof(
    { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: 1, arbitrary: fc.nat(3).map((seed) => bigString(61_000 + seed * 30_000, seed)) },
  ),
});

Deno.test("property: random puts and deletes in random batches, through one store or fresh ones, end in the Map model's state", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArbitrary, { maxLength: 40 }),
      fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
      async (ops, sizes, freshStores) => {
        const records = ops.map((op, i): AppliedRecord =>
          op.op === "put"
            ? put(i + 1, op.collection, op.key, op.value)
            : del(i + 1, op.collection, op.key)
        );
        await withKv(async (kv, first) => {
          let state = first;
          for (let start = 0, turn = 0; start < records.length; turn++) {
            const size = sizes[turn % sizes.length]!;
            // A fresh store knows none of the entries: it reads what the last one remembered.
            if (freshStores[turn % freshStores.length]) state = new KvState(kv);
            await state.apply(records.slice(start, start + size), metaAt);
            start += size;
          }
          const expected = modelEntries(records);
          assert.deepEqual(digest(await Array.fromAsync(state.scan())), digest(expected));
          const meta = await new KvState(kv).meta();
          assert.equal(meta.applied_lsn, records.length);
          assert.equal(meta.entries ?? 0, expected.length, "the entry count is exact");
          // No chunk outlives the version that owns it.
          let owned = 0;
          for (const { collection, key } of expected) {
            owned += Number((await mainEntry(kv, collection, key))!.chunks ?? 0);
          }
          assert.equal((await chunkKeys(kv)).length, owned);
        });
      },
    ),
    { numRuns: 60 },
  );
});
