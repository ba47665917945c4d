/**
 * Deno KV's own limits (what its API refuses), re-exported by `limits.ts`, which keeps ferry's
 * bounds below them and asserts so at load.
 *
 * @module
 */

/** Largest value, as serialized (V8 serialization; a `Uint8Array` counts its length). */
export const DENO_KV_VALUE_BYTES_MAX = 65_536;
/** Most mutations in one atomic commit. */
export const DENO_KV_COMMIT_MUTATIONS_MAX = 1000;
/** Largest total size of one atomic commit (keys and values; a set's key counts twice). */
export const DENO_KV_COMMIT_BYTES_MAX = 800 * 1024;
/** Largest total size of the keys set in one atomic commit. */
export const DENO_KV_COMMIT_KEY_BYTES_MAX = 80 * 1024;
/** Most keys one `kv.getMany` call reads. */
export const DENO_KV_GET_MANY_KEYS_MAX = 10;
/** Most entries one `kv.list` batch reads. */
export const DENO_KV_LIST_BATCH_ENTRIES_MAX = 1000;
