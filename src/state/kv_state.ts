/**
 * The materialised state (SPEC.md section 8) in Deno KV: collection, key → value and the LSN that
 * wrote it, plus the applied LSN. The primary and every replica apply change records into it.
 *
 * Key layout:
 * - `["state", collection, key]` → the main entry: `{ lsn, json }` when the value's JSON text is
 *   small enough to store inline, else `{ lsn, chunks, bytes, crc32 }`;
 * - `["state_chunk", collection, key, lsn, i]` → chunk `i` (a `Uint8Array`) of the UTF-8 JSON text
 *   of the value written at `lsn`;
 * - `["state_meta"]` → `{ applied_lsn, last_term, last_hash }`.
 *
 * Visibility contract: every commit that changes main entries also writes the meta for the last
 * LSN it holds, so the visible state and the applied LSN always move together. Chunks are written
 * before the main entry that points at them (their keys hold the LSN, so they stay invisible until
 * then) and deleted only in or after the commit that stops pointing at them, so a reader that
 * finds a chunk missing or failing its CRC-32 knows the entry was replaced under it and reads again.
 *
 * One writer at a time (`apply`, `putEntries`, `setMeta`); readers (`get`, `scan`) may run
 * concurrently with it. Values are stored as JSON text, so what comes back equals
 * `JSON.parse(JSON.stringify(value))`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { serialize } from "node:v8";
import { crc32 } from "node:zlib";
import { KvCorruptError } from "../core/errors.ts";
import {
  DENO_KV_GET_MANY_KEYS_MAX,
  DENO_KV_LIST_BATCH_ENTRIES_MAX,
  DENO_KV_VALUE_BYTES_MAX,
  KV_CHUNK_BYTES,
  KV_COMMIT_BYTES_MAX,
  KV_COMMIT_KEY_BYTES_MAX,
  KV_COMMIT_MUTATIONS_MAX,
  KV_INLINE_VALUE_BYTES,
  KV_META_BYTES_MAX,
  KV_OBJECT_OVERHEAD_BYTES,
  KV_READ_RETRIES_MAX,
  KV_SCAN_BATCH_ENTRIES_DEFAULT,
  KV_SCAN_SLACK_ENTRIES,
  KV_SUB_BATCH_CHUNK_BYTES_MAX,
  KV_VALUE_TEXT_BYTES_MAX,
} from "../core/limits.ts";
import type { ChangeRecord } from "../model/records.ts";

// ---- Deno KV's own limits (measured on Deno 2.9) ----

// ---- how KvState stays inside them ----

/** Prefix of the main entries. */
export const KV_STATE_PREFIX = ["state"] as const;
/** Prefix of the chunks of large values. */
export const KV_STATE_CHUNK_PREFIX = ["state_chunk"] as const;
/** Key of the meta (applied LSN, last term, last hash). */
export const KV_STATE_META_KEY = ["state_meta"] as const;

/** A change record and the LSN it was logged at. */
export interface AppliedRecord {
  lsn: number;
  record: ChangeRecord;
}

/** What has been applied; only `applied_lsn` means anything to `KvState`. */
export interface StateMeta {
  applied_lsn: number;
  last_term: number;
  last_hash: string | null;
  /** Main entries the state holds (kept by `KvState`; callers need not set it). */
  entries?: number;
}

/** One key of the state: its value and the LSN that wrote it. */
export interface StateEntry {
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
}

/** Options of `KvState.scan`. */
export interface StateScanOptions {
  /** Resume strictly after this entry (which need not exist). */
  after?: { collection: string; key: string };
  /** Entries per `kv.list` batch, 1..1000. */
  batchSize?: number;
  /**
   * For a whole scan (no `after`): when nothing was applied while it ran, check that it yielded
   * exactly the entry count of the meta (SQLite keeps no checksums; a damaged page can make a
   * listing silently short).
   */
  verifyCount?: boolean;
}

/** `check` is a CRC-32 over the collection, key, LSN and content: a flipped bit anywhere shows. */
type _InlineMain = { lsn: number; json: string; check: number };
type _ChunkedMain = { lsn: number; chunks: number; bytes: number; crc32: number; check: number };
type _Main = _InlineMain | _ChunkedMain;

/** One key-level write to make: a put (`deleted` false) or a delete, with its LSN. */
interface _Item {
  collection: string;
  key: string;
  lsn: number;
  value: unknown;
  deleted: boolean;
}

type _Prepared =
  | { kind: "delete" }
  | { kind: "inline"; json: string; storedBytes: number }
  | { kind: "chunked"; text: Uint8Array; crc32: number };

/** What one mutation (or a set of them) costs against the limits of one commit. */
interface _Cost {
  mutations: number;
  bytes: number;
  keyBytes: number;
  chunkBytes: number;
}

/** The final write of one key in a sub-batch, with the main entry it replaces. */
interface _Final {
  item: _Item;
  prepared: _Prepared;
  staleChunkKeys: Deno.KvKey[];
}

const _ZERO: _Cost = { mutations: 0, bytes: 0, keyBytes: 0, chunkBytes: 0 };
const _EMPTY_META: StateMeta = Object.freeze({ applied_lsn: 0, last_term: 0, last_hash: null });
const _encoder = new TextEncoder();
const _decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The materialised state over a `Deno.Kv` that the caller opened (and closes). It needs no
 * permission of its own: it reads and writes only through that Kv, whose file the caller was
 * granted read and write access to.
 */
export class KvState {
  #kv: Deno.Kv;
  /** Main entries in the store, as the last commit left them (loaded with the meta). */
  #entries: number | undefined;

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The meta of the last apply (or `setMeta`); all zero and `last_hash: null` when absent. */
  async meta(): Promise<StateMeta> {
    const entry = await this.#kv.get<unknown>(KV_STATE_META_KEY);
    const meta = entry.value === null ? { ..._EMPTY_META } : _parseMeta(entry.value);
    this.#entries = meta.entries ?? 0;
    return meta;
  }

  /**
   * Applies records (in rising LSN order) in sub-batches. Each sub-batch is one atomic commit of
   * its main entries and `metaAfter(lastLsn)` for its last LSN, cut before it would pass the
   * commit limits; several records for one key collapse to the last. Large values are chunked,
   * their chunks committed first; the chunks of replaced versions are deleted in the same commit
   * when they fit, else right after it. Applying the same records again converges to the same
   * state.
   */
  async apply(
    records: readonly AppliedRecord[],
    metaAfter: (lastLsn: number) => StateMeta,
  ): Promise<void> {
    let previousLsn = 0;
    const items = records.map(({ lsn, record }): _Item => {
      assert(_isLsn(lsn) && lsn > previousLsn, `LSN ${lsn} does not follow ${previousLsn}`);
      previousLsn = lsn;
      const deleted = record.op === "delete";
      assert(deleted || (record.op === "put" && record.value !== undefined), "a put has a value");
      return { collection: record.collection, key: record.key, lsn, value: record.value, deleted };
    });
    await this.#writeItems(items, (lastLsn) => {
      const meta = metaAfter(lastLsn);
      assert.equal(meta.applied_lsn, lastLsn, "the meta of a sub-batch names its last LSN");
      return meta;
    });
  }

  /** Reads one key; `undefined` when it is absent. Throws a plain `Error` on corruption. */
  async get(collection: string, key: string): Promise<StateEntry | undefined> {
    const mainKey = _mainKey(collection, key);
    for (let attempt = 0; attempt <= KV_READ_RETRIES_MAX; attempt++) {
      const entry = await this.#kv.get<unknown>(mainKey);
      if (entry.value === null) return undefined;
      const main = _parseMain(entry.value, mainKey);
      const read = await this.#readValue(collection, key, main);
      if (read) return { collection, key, value: read.value, lsn: main.lsn };
    }
    throw new KvCorruptError(
      `the chunks of ${JSON.stringify(mainKey)} stayed missing or failed their CRC-32 after ` +
        `${KV_READ_RETRIES_MAX} retries: the state is corrupt`,
    );
  }

  /**
   * Writes entries with their own LSNs (loading a snapshot), chunked when large, in as few commits
   * as the limits allow. The meta does not change.
   */
  async putEntries(entries: readonly StateEntry[]): Promise<void> {
    const items = entries.map((entry): _Item => {
      assert(_isLsn(entry.lsn), `entry LSN ${entry.lsn} is not an LSN`);
      assert(entry.value !== undefined, "an entry has a value");
      return { ...entry, deleted: false };
    });
    await this.#writeItems(items, undefined);
  }

  /** Writes the meta alone (after loading a snapshot), with the entry count this store keeps. */
  async setMeta(meta: StateMeta): Promise<void> {
    if (this.#entries === undefined) await this.meta();
    await this.#kv.set(KV_STATE_META_KEY, _metaValue({ ...meta, entries: this.#entries }));
  }

  /**
   * Every entry in (collection, key) order, comparing UTF-8 bytes; with `after`, strictly after
   * that entry. Fuzzy: an entry replaced during the scan comes back in its newer version, one
   * deleted during it may be missing.
   */
  async *scan(options: StateScanOptions = {}): AsyncIterable<StateEntry> {
    const batchSize = options.batchSize ?? KV_SCAN_BATCH_ENTRIES_DEFAULT;
    assert(Number.isSafeInteger(batchSize) && batchSize >= 1);
    assert(batchSize <= DENO_KV_LIST_BATCH_ENTRIES_MAX, `batchSize ${batchSize} is too large`);
    const before = await this.meta();
    const prefix = [...KV_STATE_PREFIX];
    const selector: Deno.KvListSelector = options.after === undefined ? { prefix } : {
      prefix,
      // A 4-part key sorts right after its 3-part prefix and before the next 3-part key.
      start: [...prefix, options.after.collection, options.after.key, ""],
    };
    let listed = 0;
    for await (const entry of this.#kv.list<unknown>(selector, { batchSize })) {
      listed += 1;
      if (listed > (before.entries ?? 0) + KV_SCAN_SLACK_ENTRIES) {
        await this.#checkGrowth(before, listed);
      }
      const [, collection, key] = entry.key;
      if (entry.key.length !== 3 || typeof collection !== "string" || typeof key !== "string") {
        throw new KvCorruptError(`the state key ${JSON.stringify(entry.key)} is corrupt`);
      }
      const main = _parseMain(entry.value, entry.key);
      const read = await this.#readValue(collection, key, main);
      if (read) {
        yield { collection, key, value: read.value, lsn: main.lsn };
        continue;
      }
      // Replaced while its chunks were read: take the current version (none when deleted since).
      const current = await this.get(collection, key);
      if (current) yield current;
    }
    if (options.verifyCount && options.after === undefined) await this.#checkCount(before, listed);
  }

  /** A listing longer than the entries plus what was applied since it began is corruption. */
  async #checkGrowth(before: StateMeta, listed: number): Promise<void> {
    const now = await this.meta();
    const applied = now.applied_lsn - before.applied_lsn;
    if (
      listed > Math.max(before.entries ?? 0, now.entries ?? 0) + applied + KV_SCAN_SLACK_ENTRIES
    ) {
      throw new KvCorruptError(
        `the state listing ran past ${listed} entries (the meta counts ${now.entries}): the state is corrupt`,
      );
    }
  }

  /** With nothing applied during the scan, it must have listed exactly the counted entries. */
  async #checkCount(before: StateMeta, listed: number): Promise<void> {
    const after = await this.meta();
    if (after.applied_lsn === before.applied_lsn && listed !== (after.entries ?? 0)) {
      throw new KvCorruptError(
        `the state lists ${listed} entries but counts ${after.entries}: the state is corrupt`,
      );
    }
  }

  /** How many keys the state holds (lists every main entry). */
  async count(): Promise<number> {
    let count = 0;
    const selector = { prefix: [...KV_STATE_PREFIX] };
    const options = { batchSize: DENO_KV_LIST_BATCH_ENTRIES_MAX };
    for await (const _entry of this.#kv.list(selector, options)) count += 1;
    return count;
  }

  /**
   * Writes items in sub-batches. A first cut by the main entries' cost picks the keys whose
   * current entries are read; a second cut adds the deletes of their stale chunks.
   */
  async #writeItems(
    items: readonly _Item[],
    metaAfter: ((lastLsn: number) => StateMeta) | undefined,
  ): Promise<void> {
    const prepared = new Map<number, _Prepared>();
    const mainCosts: _Cost[] = [];
    const prepare = (index: number): _Prepared => {
      let value = prepared.get(index);
      if (value === undefined) {
        value = _prepare(items[index]!);
        prepared.set(index, value);
      }
      return value;
    };
    const mainCost = (index: number) =>
      mainCosts[index] ??= _mainCost(items[index]!, prepare(index));
    const release = (index: number) => prepared.delete(index);
    const reserve = metaAfter === undefined ? _ZERO : _metaReserve();
    let start = 0;
    while (start < items.length) {
      const rough = _cutSubBatch(items, {
        start,
        end: items.length,
        reserve,
        costOf: mainCost,
        release,
      });
      const current = await this.#readMains(items, rough.finals.values());
      const staleKeys = (index: number) =>
        _staleChunkKeys(items[index]!, mainCost(index), current.get(_itemId(items[index]!)));
      const cut = _cutSubBatch(items, {
        start,
        end: rough.end,
        reserve,
        costOf: (index) => _plus(mainCost(index), _deletesCost(staleKeys(index))),
        release,
      });
      const finals = [...cut.finals.values()].map((index): _Final => ({
        item: items[index]!,
        prepared: prepare(index),
        staleChunkKeys: staleKeys(index),
      }));
      if (this.#entries === undefined) await this.meta();
      const entries = this.#entries! + _entriesDelta(finals, current);
      const meta = metaAfter?.(items[cut.end - 1]!.lsn);
      await this.#commitSubBatch(finals, meta && { ...meta, entries });
      this.#entries = entries;
      for (let index = start; index < cut.end; index++) prepared.delete(index);
      start = cut.end;
    }
  }

  /** Reads the current main entries of the given items' keys, `DENO_KV_GET_MANY_KEYS_MAX` a call. */
  async #readMains(
    items: readonly _Item[],
    indexes: Iterable<number>,
  ): Promise<Map<string, _Main | undefined>> {
    const keys = [...indexes].map((index) => _mainKey(items[index]!.collection, items[index]!.key));
    const mains = new Map<string, _Main | undefined>();
    for (let first = 0; first < keys.length; first += DENO_KV_GET_MANY_KEYS_MAX) {
      const group = keys.slice(first, first + DENO_KV_GET_MANY_KEYS_MAX);
      const entries = await this.#kv.getMany<unknown[]>(group);
      for (const entry of entries) {
        const main = entry.value === null ? undefined : _parseMain(entry.value, entry.key);
        mains.set(JSON.stringify(entry.key.slice(1)), main);
      }
    }
    return mains;
  }

  /**
   * Chunks first (their own commits), then one commit of the main entries, the meta and as many
   * stale-chunk deletes as fit; the deletes that did not fit follow in their own commits.
   */
  async #commitSubBatch(finals: readonly _Final[], meta: StateMeta | undefined): Promise<void> {
    await this.#commitPacked(finals.flatMap(_chunkWrites));
    const atomic = this.#kv.atomic();
    let used = meta === undefined ? _ZERO : _metaReserve();
    for (const { item, prepared } of finals) {
      const key = _mainKey(item.collection, item.key);
      if (prepared.kind === "delete") atomic.delete(key);
      else atomic.set(key, _mainValue(item, prepared));
      // Chunk bytes were committed already; only this commit's own limits count here.
      used = _plus(used, { ..._mainCost(item, prepared), chunkBytes: 0 });
    }
    if (meta !== undefined) atomic.set(KV_STATE_META_KEY, _metaValue(meta));
    const stale = finals.flatMap((final) => final.staleChunkKeys);
    let fitted = 0;
    for (; fitted < stale.length; fitted++) {
      const next = _plus(used, _deletesCost([stale[fitted]!]));
      if (!_withinCommit(next)) break;
      atomic.delete(stale[fitted]!);
      used = next;
    }
    await _commit(atomic);
    await this.#commitPacked(stale.slice(fitted).map((key) => ({ key })));
  }

  /** Commits sets and deletes in as few commits as the limits allow (order does not matter). */
  async #commitPacked(
    mutations: readonly { key: Deno.KvKey; value?: Uint8Array }[],
  ): Promise<void> {
    let atomic = this.#kv.atomic();
    let used = _ZERO;
    for (const { key, value } of mutations) {
      const cost = value === undefined
        ? _deletesCost([key])
        : _setCost(_keyBytes(key), value.byteLength);
      if (used.mutations > 0 && !_withinCommit(_plus(used, cost))) {
        await _commit(atomic);
        atomic = this.#kv.atomic();
        used = _ZERO;
      }
      if (value === undefined) atomic.delete(key);
      else atomic.set(key, value);
      used = _plus(used, cost);
    }
    if (used.mutations > 0) await _commit(atomic);
  }

  /** The value of a main entry; `undefined` when its chunks are missing or torn (replaced). */
  async #readValue(
    collection: string,
    key: string,
    main: _Main,
  ): Promise<{ value: unknown } | undefined> {
    if ("json" in main) return { value: _parseJson(main.json, collection, key) };
    const text = new Uint8Array(main.bytes);
    let offset = 0;
    for (let first = 0; first < main.chunks; first += DENO_KV_GET_MANY_KEYS_MAX) {
      const count = Math.min(DENO_KV_GET_MANY_KEYS_MAX, main.chunks - first);
      const keys = Array.from(
        { length: count },
        (_, i) => _chunkKey(collection, key, main, first + i),
      );
      for (const entry of await this.#kv.getMany<unknown[]>(keys)) {
        const chunk = entry.value;
        if (!(chunk instanceof Uint8Array) || offset + chunk.byteLength > text.byteLength) {
          return undefined;
        }
        text.set(chunk, offset);
        offset += chunk.byteLength;
      }
    }
    if (offset !== main.bytes || crc32(text) !== main.crc32) return undefined;
    return { value: _parseJson(_decoder.decode(text), collection, key) };
  }
}

/**
 * Walks items from `start`, collapsing each key to its last item, and stops before the item that
 * would take the sub-batch past a commit's limits (the first item always goes). Superseded items
 * are `release`d.
 */
function _cutSubBatch(
  items: readonly _Item[],
  options: {
    start: number;
    end: number;
    reserve: _Cost;
    costOf: (index: number) => _Cost;
    release: (index: number) => void;
  },
): { end: number; finals: Map<string, number> } {
  const finals = new Map<string, { index: number; cost: _Cost }>();
  let total = options.reserve;
  let end = options.start;
  for (; end < options.end; end++) {
    const id = _itemId(items[end]!);
    const previous = finals.get(id);
    const cost = options.costOf(end);
    const next = _plus(previous === undefined ? total : _minus(total, previous.cost), cost);
    if (finals.size > 0 && !_withinCommit(next)) break;
    if (previous !== undefined) options.release(previous.index);
    finals.set(id, { index: end, cost });
    total = next;
  }
  return { end, finals: new Map([...finals].map(([id, final]) => [id, final.index])) };
}

/** Serializes a value once: inline JSON when it fits a KV value, else UTF-8 text to chunk. */
function _prepare(item: _Item): _Prepared {
  if (item.deleted) return { kind: "delete" };
  let json: string | undefined;
  try {
    json = JSON.stringify(item.value);
  } catch (error) {
    assert.fail(`the value of ${item.collection}/${item.key} is not JSON: ${error}`);
  }
  assert(typeof json === "string", `the value of ${item.collection}/${item.key} is not JSON`);
  const text = _encoder.encode(json);
  if (text.byteLength <= KV_INLINE_VALUE_BYTES) {
    const storedBytes = _serializedTextBytes(json);
    if (storedBytes + KV_OBJECT_OVERHEAD_BYTES <= DENO_KV_VALUE_BYTES_MAX) {
      return { kind: "inline", json, storedBytes };
    }
  }
  return { kind: "chunked", text, crc32: crc32(text) };
}

/**
 * The bytes V8 serialization gives a string: one per UTF-16 unit for a one-byte string, two for
 * a two-byte one (any character past U+00FF, and some ASCII strings sliced from such a one). So
 * 40 000 ASCII characters and one "€" are 40 003 bytes of UTF-8 but 80 002 serialized.
 */
function _serializedTextBytes(json: string): number {
  const twoByteBound = 2 * json.length;
  if (twoByteBound + KV_OBJECT_OVERHEAD_BYTES <= DENO_KV_VALUE_BYTES_MAX) return twoByteBound;
  return serialize(json).byteLength;
}

function _mainValue(
  item: { collection: string; key: string; lsn: number },
  prepared: _Prepared,
): _Main {
  assert(prepared.kind !== "delete");
  const { collection, key, lsn } = item;
  if (prepared.kind === "inline") {
    return { lsn, json: prepared.json, check: _check([collection, key, lsn, prepared.json]) };
  }
  const bytes = prepared.text.byteLength;
  const chunks = Math.ceil(bytes / KV_CHUNK_BYTES);
  const check = _check([collection, key, lsn, chunks, bytes, prepared.crc32]);
  return { lsn, chunks, bytes, crc32: prepared.crc32, check };
}

/** CRC-32 of a tuple's JSON text: the integrity check of main entries and of the meta. */
function _check(parts: readonly unknown[]): number {
  return crc32(_encoder.encode(JSON.stringify(parts)));
}

/** How the entry count changes when `finals` replace the `current` main entries. */
function _entriesDelta(finals: readonly _Final[], current: Map<string, _Main | undefined>): number {
  let delta = 0;
  for (const { item, prepared } of finals) {
    const existed = current.get(_itemId(item)) !== undefined;
    if (prepared.kind === "delete" && existed) delta -= 1;
    if (prepared.kind !== "delete" && !existed) delta += 1;
  }
  return delta;
}

function _chunkWrites({ item, prepared }: _Final): { key: Deno.KvKey; value: Uint8Array }[] {
  if (prepared.kind !== "chunked") return [];
  const main = _mainValue(item, prepared) as _ChunkedMain;
  return Array.from({ length: main.chunks }, (_, i) => ({
    key: _chunkKey(item.collection, item.key, main, i),
    value: prepared.text.subarray(i * KV_CHUNK_BYTES, (i + 1) * KV_CHUNK_BYTES),
  }));
}

/**
 * The chunks of the current version that the new write (of `cost`) leaves behind: all of them,
 * except those a re-applied chunked write at the same LSN rewrites.
 */
function _staleChunkKeys(item: _Item, cost: _Cost, current: _Main | undefined): Deno.KvKey[] {
  if (current === undefined || "json" in current) return [];
  let kept = 0;
  if (current.lsn === item.lsn) {
    kept = Math.min(current.chunks, Math.ceil(cost.chunkBytes / KV_CHUNK_BYTES));
  }
  const stale: Deno.KvKey[] = [];
  for (let i = kept; i < current.chunks; i++) {
    stale.push(_chunkKey(item.collection, item.key, current, i));
  }
  return stale;
}

function _mainCost(item: _Item, prepared: _Prepared): _Cost {
  const keyBytes = _keyBytes(_mainKey(item.collection, item.key));
  if (prepared.kind === "delete") return _deletesCost([_mainKey(item.collection, item.key)]);
  if (prepared.kind === "inline") {
    return _setCost(keyBytes, prepared.storedBytes + KV_OBJECT_OVERHEAD_BYTES);
  }
  const cost = _setCost(keyBytes, _objectBytes(_mainValue(item, prepared)));
  return { ...cost, chunkBytes: prepared.text.byteLength };
}

/** Deno KV counts a set's key twice against the commit size, once against the key total. */
function _setCost(keyBytes: number, valueBytes: number): _Cost {
  return { mutations: 1, bytes: 2 * keyBytes + valueBytes, keyBytes, chunkBytes: 0 };
}

function _deletesCost(keys: readonly Deno.KvKey[]): _Cost {
  let cost = _ZERO;
  for (const key of keys) cost = _plus(cost, _setCost(_keyBytes(key), 0));
  return cost;
}

function _metaReserve(): _Cost {
  return _setCost(_keyBytes(KV_STATE_META_KEY), KV_META_BYTES_MAX);
}

function _metaValue(meta: StateMeta): StateMeta & { check: number } {
  assert(_isLsn(meta.applied_lsn), `applied_lsn ${meta.applied_lsn} is not an LSN`);
  const entries = meta.entries ?? 0;
  const value = {
    applied_lsn: meta.applied_lsn,
    last_term: meta.last_term,
    last_hash: meta.last_hash,
    entries,
    check: _check([meta.applied_lsn, meta.last_term, meta.last_hash, entries]),
  };
  assert(_objectBytes(value) <= KV_META_BYTES_MAX, "the meta is too large");
  return value;
}

function _plus(a: _Cost, b: _Cost): _Cost {
  return {
    mutations: a.mutations + b.mutations,
    bytes: a.bytes + b.bytes,
    keyBytes: a.keyBytes + b.keyBytes,
    chunkBytes: a.chunkBytes + b.chunkBytes,
  };
}

function _minus(a: _Cost, b: _Cost): _Cost {
  return _plus(a, {
    mutations: -b.mutations,
    bytes: -b.bytes,
    keyBytes: -b.keyBytes,
    chunkBytes: -b.chunkBytes,
  });
}

function _withinCommit(cost: _Cost): boolean {
  return cost.mutations <= KV_COMMIT_MUTATIONS_MAX && cost.bytes <= KV_COMMIT_BYTES_MAX &&
    cost.keyBytes <= KV_COMMIT_KEY_BYTES_MAX && cost.chunkBytes <= KV_SUB_BATCH_CHUNK_BYTES_MAX;
}

/** Encoded size of a key: a string part is a tag, its UTF-8 (NUL escaped to 2 bytes) and a NUL. */
function _keyBytes(key: Deno.KvKey): number {
  let bytes = 0;
  for (const part of key) {
    if (typeof part === "number") {
      bytes += 9;
      continue;
    }
    assert(typeof part === "string", "state keys hold strings and numbers");
    const utf8 = _encoder.encode(part);
    bytes += 2 + utf8.byteLength + utf8.filter((byte) => byte === 0).length;
  }
  return bytes;
}

function _objectBytes(value: object): number {
  return JSON.stringify(value).length + KV_OBJECT_OVERHEAD_BYTES;
}

async function _commit(atomic: Deno.AtomicOperation): Promise<void> {
  const result = await atomic.commit();
  assert(result.ok, "a commit without checks cannot fail its checks");
}

function _mainKey(collection: string, key: string): Deno.KvKey {
  return [...KV_STATE_PREFIX, collection, key];
}

function _chunkKey(collection: string, key: string, main: _ChunkedMain, i: number): Deno.KvKey {
  return [...KV_STATE_CHUNK_PREFIX, collection, key, main.lsn, i];
}

function _itemId(item: _Item): string {
  return JSON.stringify([item.collection, item.key]);
}

function _isLsn(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Parses stored JSON text; text that does not parse is corruption (a plain `Error`). */
function _parseJson(json: string, collection: string, key: string): unknown {
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new KvCorruptError(
      `the value of ${JSON.stringify([collection, key])} is corrupt: ${error}`,
    );
  }
}

/** Checks a stored main entry against its key and its own check; anything else is corruption. */
function _parseMain(value: unknown, key: Deno.KvKey): _Main {
  const v = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const [, collection, name] = key;
  const { lsn, json, chunks, bytes, crc32, check } = v;
  if (_isLsn(lsn) && typeof json === "string" && check === _check([collection, name, lsn, json])) {
    return { lsn, json, check };
  }
  if (
    _isLsn(lsn) && _isLsn(bytes) && _isLsn(chunks) && _isLsn(crc32) && crc32 <= 0xffff_ffff &&
    bytes <= KV_VALUE_TEXT_BYTES_MAX && chunks >= 1 && chunks <= bytes &&
    check === _check([collection, name, lsn, chunks, bytes, crc32])
  ) {
    return { lsn, chunks, bytes, crc32, check };
  }
  throw new KvCorruptError(
    `the state entry ${JSON.stringify(key)} is corrupt (it fails its check)`,
  );
}

/** Checks the stored meta; anything else is corruption. */
function _parseMeta(value: unknown): StateMeta {
  const v = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const { applied_lsn, last_term, last_hash, entries, check } = v;
  const hashOk = last_hash === null || typeof last_hash === "string";
  if (
    _isLsn(applied_lsn) && _isLsn(last_term) && hashOk && _isLsn(entries) &&
    check === _check([applied_lsn, last_term, last_hash, entries])
  ) {
    return { applied_lsn, last_term, last_hash: last_hash as string | null, entries };
  }
  throw new KvCorruptError(
    `the state meta ${JSON.stringify(value)} is corrupt (it fails its check)`,
  );
}
