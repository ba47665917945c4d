/**
 * How `KvState` cuts its writes into commits that stay inside Deno KV's limits (mutations, bytes
 * and key bytes per commit, values per set): what each write costs, where a sub-batch ends, how a
 * value is stored (inline or in chunks) and which chunks a write leaves stale. Pure: no I/O.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { serialize } from "node:v8";
import { crc32 } from "node:zlib";
import {
  DENO_KV_VALUE_BYTES_MAX,
  KV_CHUNK_BYTES,
  KV_COMMIT_BYTES_MAX,
  KV_COMMIT_KEY_BYTES_MAX,
  KV_COMMIT_MUTATIONS_MAX,
  KV_INLINE_VALUE_BYTES,
  KV_META_BYTES_MAX,
  KV_OBJECT_OVERHEAD_BYTES,
  KV_SUB_BATCH_CHUNK_BYTES_MAX,
} from "../core/limits.ts";
import { checkedMain, metaValue } from "./integrity.ts";
import {
  type ChunkedMain,
  chunkKey,
  KV_STATE_META_KEY,
  KV_STATE_PREFIX,
  type MainOutline,
  type StateMeta,
  type StoredMain,
} from "./kv_layout.ts";

/** One key-level write to make: a put (`deleted` false) or a delete, with its LSN. */
export interface WriteItem {
  collection: string;
  key: string;
  /**
   * Which key the item writes, as a map key (`keyId(collection, key)`, built once: the plan and
   * the store look items up by it often); items of one key collapse to the last.
   */
  id: string;
  lsn: number;
  value: unknown;
  deleted: boolean;
}

/** A write serialized once: a delete, inline JSON, or UTF-8 text to chunk. */
export type PreparedWrite =
  | { kind: "delete" }
  | { kind: "inline"; json: string; storedBytes: number }
  | { kind: "chunked"; text: Uint8Array; crc32: number };

/** What one mutation (or a set of them) costs against the limits of one commit. */
export interface CommitCost {
  mutations: number;
  bytes: number;
  keyBytes: number;
  chunkBytes: number;
}

/** The final write of one key in a sub-batch, with the chunks of the main entry it replaces. */
export interface FinalWrite {
  item: WriteItem;
  prepared: PreparedWrite;
  staleChunkKeys: Deno.KvKey[];
}

/** The cost of nothing. */
export const ZERO_COST: CommitCost = { mutations: 0, bytes: 0, keyBytes: 0, chunkBytes: 0 };
const _encoder = new TextEncoder();
const _MAIN_PREFIX_BYTES = keyBytesOf(KV_STATE_PREFIX);

/**
 * Walks items from `start`, collapsing each key to its last item, and stops before the item that
 * would take the sub-batch past a commit's limits (the first item always goes). Superseded items
 * are `release`d.
 */
export function cutSubBatch(
  items: readonly WriteItem[],
  options: {
    start: number;
    end: number;
    reserve: CommitCost;
    costOf: (index: number) => CommitCost;
    release: (index: number) => void;
  },
): { end: number; finals: Map<string, number> } {
  const { start, reserve, costOf } = options;
  const finals = new Map<string, number>();
  // Each item's cost, by its offset from `start` (a superseded item's cost leaves the total).
  const costs: CommitCost[] = [];
  // Plain numbers, not a CommitCost per item: this runs for every record applied.
  let mutations = reserve.mutations, bytes = reserve.bytes;
  let keyBytes = reserve.keyBytes, chunkBytes = reserve.chunkBytes;
  let end = start;
  for (; end < options.end; end++) {
    const id = items[end]!.id;
    const previous = finals.get(id);
    const cost = costOf(end);
    const gone = previous === undefined ? ZERO_COST : costs[previous - start]!;
    const nextMutations = mutations + cost.mutations - gone.mutations;
    const nextBytes = bytes + cost.bytes - gone.bytes;
    const nextKeyBytes = keyBytes + cost.keyBytes - gone.keyBytes;
    const nextChunkBytes = chunkBytes + cost.chunkBytes - gone.chunkBytes;
    const fits = _fits(nextMutations, nextBytes, nextKeyBytes, nextChunkBytes);
    if (finals.size > 0 && !fits) break;
    if (previous !== undefined) options.release(previous);
    // A key keeps the place of its first item (Map order); its last item is what is written.
    finals.set(id, end);
    costs.push(cost);
    mutations = nextMutations;
    bytes = nextBytes;
    keyBytes = nextKeyBytes;
    chunkBytes = nextChunkBytes;
  }
  return { end, finals };
}

/** Serializes a value once: inline JSON when it fits a KV value, else UTF-8 text to chunk. */
export function prepare(item: WriteItem): PreparedWrite {
  if (item.deleted) return { kind: "delete" };
  let json: string | undefined;
  try {
    json = JSON.stringify(item.value);
  } catch (error) {
    assert.fail(`the value of ${item.collection}/${item.key} is not JSON: ${error}`);
  }
  if (typeof json !== "string") {
    assert.fail(`the value of ${item.collection}/${item.key} is not JSON`);
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit: most values are inline without being encoded.
  if (3 * json.length <= KV_INLINE_VALUE_BYTES) {
    return { kind: "inline", json, storedBytes: _serializedTextBytes(json) };
  }
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

/** The main entry a prepared put stores (a delete stores none). */
export function mainValue(
  item: { collection: string; key: string; lsn: number },
  prepared: PreparedWrite,
): StoredMain {
  assert(prepared.kind !== "delete");
  const { collection, key, lsn } = item;
  if (prepared.kind === "inline") return checkedMain(collection, key, { lsn, json: prepared.json });
  const bytes = prepared.text.byteLength;
  const chunks = Math.ceil(bytes / KV_CHUNK_BYTES);
  return checkedMain(collection, key, { lsn, chunks, bytes, crc32: prepared.crc32 });
}

/** How the entry count changes when `finals` replace the `current` main entries. */
export function entriesDelta(
  finals: readonly FinalWrite[],
  current: Map<string, MainOutline | undefined>,
): number {
  let delta = 0;
  for (const { item, prepared } of finals) {
    const existed = current.get(item.id) !== undefined;
    if (prepared.kind === "delete" && existed) delta -= 1;
    if (prepared.kind !== "delete" && !existed) delta += 1;
  }
  return delta;
}

/** The chunk sets of a chunked write (none for the others). */
export function chunkWrites(
  { item, prepared }: FinalWrite,
): { key: Deno.KvKey; value: Uint8Array }[] {
  if (prepared.kind !== "chunked") return [];
  const main = mainValue(item, prepared) as ChunkedMain;
  return Array.from({ length: main.chunks }, (_, i) => ({
    key: chunkKey(item.collection, item.key, main, i),
    value: prepared.text.subarray(i * KV_CHUNK_BYTES, (i + 1) * KV_CHUNK_BYTES),
  }));
}

/**
 * The chunks of the current version that the new write (of `cost`) leaves behind: all of them,
 * except those a re-applied chunked write at the same LSN rewrites.
 */
export function staleChunkKeys(
  item: WriteItem,
  cost: CommitCost,
  current: MainOutline | undefined,
): Deno.KvKey[] {
  if (current === undefined || current === "inline") return [];
  let kept = 0;
  if (current.lsn === item.lsn) {
    kept = Math.min(current.chunks, Math.ceil(cost.chunkBytes / KV_CHUNK_BYTES));
  }
  const stale: Deno.KvKey[] = [];
  for (let i = kept; i < current.chunks; i++) {
    stale.push(chunkKey(item.collection, item.key, current, i));
  }
  return stale;
}

/** The cost of a write's main entry; a chunked one also counts its chunks' bytes. */
export function mainCost(item: WriteItem, prepared: PreparedWrite): CommitCost {
  // A main key's size without building it: its prefix, then two string parts.
  const keyBytes = _MAIN_PREFIX_BYTES + _stringPartBytes(item.collection) +
    _stringPartBytes(item.key);
  if (prepared.kind === "delete") return setCost(keyBytes, 0);
  if (prepared.kind === "inline") {
    return setCost(keyBytes, prepared.storedBytes + KV_OBJECT_OVERHEAD_BYTES);
  }
  const cost = setCost(keyBytes, _objectBytes(mainValue(item, prepared)));
  return { ...cost, chunkBytes: prepared.text.byteLength };
}

/** Deno KV counts a set's key twice against the commit size, once against the key total. */
export function setCost(keyBytes: number, valueBytes: number): CommitCost {
  return { mutations: 1, bytes: 2 * keyBytes + valueBytes, keyBytes, chunkBytes: 0 };
}

/** The cost of deleting `keys`. */
export function deletesCost(keys: readonly Deno.KvKey[]): CommitCost {
  let cost = ZERO_COST;
  for (const key of keys) cost = plus(cost, setCost(keyBytesOf(key), 0));
  return cost;
}

/** The room every commit that writes the meta keeps for it. */
export function metaReserve(): CommitCost {
  return setCost(keyBytesOf(KV_STATE_META_KEY), KV_META_BYTES_MAX);
}

/** The meta value to store, asserted to fit the room `metaReserve` keeps for it. */
export function metaToWrite(meta: StateMeta): ReturnType<typeof metaValue> {
  const value = metaValue(meta);
  assert(_objectBytes(value) <= KV_META_BYTES_MAX, "the meta is too large");
  return value;
}

/** The cost of both. */
export function plus(a: CommitCost, b: CommitCost): CommitCost {
  return {
    mutations: a.mutations + b.mutations,
    bytes: a.bytes + b.bytes,
    keyBytes: a.keyBytes + b.keyBytes,
    chunkBytes: a.chunkBytes + b.chunkBytes,
  };
}

/** Whether a commit (or sub-batch) of this cost stays inside every limit. */
export function withinCommit(cost: CommitCost): boolean {
  return _fits(cost.mutations, cost.bytes, cost.keyBytes, cost.chunkBytes);
}

function _fits(mutations: number, bytes: number, keyBytes: number, chunkBytes: number): boolean {
  return mutations <= KV_COMMIT_MUTATIONS_MAX && bytes <= KV_COMMIT_BYTES_MAX &&
    keyBytes <= KV_COMMIT_KEY_BYTES_MAX && chunkBytes <= KV_SUB_BATCH_CHUNK_BYTES_MAX;
}

/** Encoded size of a key: a string part is a tag, its UTF-8 (NUL escaped to 2 bytes) and a NUL. */
export function keyBytesOf(key: Deno.KvKey): number {
  let bytes = 0;
  for (const part of key) {
    if (typeof part === "number") {
      bytes += 9;
      continue;
    }
    if (typeof part !== "string") assert.fail("state keys hold strings and numbers");
    bytes += _stringPartBytes(part);
  }
  return bytes;
}

/** A string part of a key: a tag, its escaped UTF-8 and a NUL. */
function _stringPartBytes(part: string): number {
  return 2 + _escapedUtf8Bytes(part);
}

/**
 * UTF-8 bytes of `text` with each NUL counted twice, without encoding it (this runs for every key
 * applied). A lone surrogate counts 3, as `TextEncoder` writes U+FFFD for it.
 */
function _escapedUtf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += unit === 0 ? 2 : 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && _isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

function _isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** A stored object's size, estimated from its JSON text plus V8's overhead. */
function _objectBytes(value: object): number {
  return JSON.stringify(value).length + KV_OBJECT_OVERHEAD_BYTES;
}
