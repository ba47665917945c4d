/**
 * Where the materialised state lives in Deno KV: its keys and the shapes stored under them.
 *
 * - `["state", collection, key]` → the main entry: `{ lsn, json }` when the value's JSON text is
 *   small enough to store inline, else `{ lsn, chunks, bytes, crc32 }`; both with a `check`;
 * - `["state_chunk", collection, key, lsn, i]` → chunk `i` (a `Uint8Array`) of the UTF-8 JSON text
 *   of the value written at `lsn`;
 * - `["state_meta"]` → `{ applied_lsn, last_term, last_hash, entries, check }`.
 *
 * Kept apart from `kv_state.ts` (which re-exports the public names) because the commit plan and
 * the integrity checks need the layout too, and the store imports them: one file below all three
 * keeps the imports free of circles.
 *
 * @module
 */

/** Prefix of the main entries. */
export const KV_STATE_PREFIX = ["state"] as const;
/** Prefix of the chunks of large values. */
export const KV_STATE_CHUNK_PREFIX = ["state_chunk"] as const;
/** Key of the meta (applied LSN, last term, last hash). */
export const KV_STATE_META_KEY = ["state_meta"] as const;

/** What has been applied; `KvState` reads `applied_lsn` and keeps `entries` itself. */
export interface StateMeta {
  applied_lsn: number;
  last_term: number;
  last_hash: string | null;
  /** Main entries the state holds (kept by `KvState`; callers need not set it). */
  entries?: number;
}

/** `check` is a CRC-32 over the collection, key, LSN and content: a flipped bit anywhere shows. */
export type InlineMain = { lsn: number; json: string; check: number };
/** A main entry whose value's text is in chunks: how many, its length and its CRC-32. */
export type ChunkedMain = {
  lsn: number;
  chunks: number;
  bytes: number;
  crc32: number;
  check: number;
};
/** A stored main entry, either kind. */
export type StoredMain = InlineMain | ChunkedMain;

/**
 * What replacing a main entry must know of it: that it is inline, or which chunks it has (they
 * go stale). An absent entry has no outline (undefined).
 */
export type MainOutline = "inline" | Pick<ChunkedMain, "lsn" | "chunks">;

/** The outline of a stored main entry. */
export function outlineOf(main: StoredMain): MainOutline {
  return "json" in main ? "inline" : { lsn: main.lsn, chunks: main.chunks };
}

/** The key of the main entry of (collection, key). */
export function mainKey(collection: string, key: string): Deno.KvKey {
  // Not a spread of the prefix: this runs twice for every record applied.
  return [KV_STATE_PREFIX[0], collection, key];
}

/** The key of chunk `i` of the value a chunked main entry points at (its LSN is in the key). */
export function chunkKey(
  collection: string,
  key: string,
  main: Pick<ChunkedMain, "lsn">,
  i: number,
): Deno.KvKey {
  return [...KV_STATE_CHUNK_PREFIX, collection, key, main.lsn, i];
}

/**
 * A key's identity as a map key: the collection's length, the collection, then the key (length
 * first, so no two (collection, key) pairs share it; cheaper than JSON on the apply path).
 */
export function keyId(collection: string, key: string): string {
  return `${collection.length}:${collection}${key}`;
}
