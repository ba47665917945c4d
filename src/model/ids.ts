/**
 * Names that travel in URLs, tokens files, slots and records: replica ids, regions, collections
 * and record keys. One pattern each, shared by the server, the client and the stores.
 *
 * @module
 */

import {
  COLLECTION_BYTES_MAX,
  KEY_BYTES_MAX,
  REGION_BYTES_MAX,
  REPLICA_ID_BYTES_MAX,
} from "../core/limits.ts";

/** Replica ids: 1..128 characters of `[A-Za-z0-9_.-]`, but not `.` or `..` (unusable in a path). */
export const REPLICA_ID_PATTERN = new RegExp(
  `^(?!\\.\\.?$)[A-Za-z0-9_.-]{1,${REPLICA_ID_BYTES_MAX}}$`,
);
/** Region names: 1..64 characters of `[A-Za-z0-9_.-]`. */
export const REGION_PATTERN = new RegExp(`^[A-Za-z0-9_.-]{1,${REGION_BYTES_MAX}}$`);
/** Collection names: 1..128 bytes of `[A-Za-z0-9_.-]`. */
export const COLLECTION_PATTERN = new RegExp(`^[A-Za-z0-9_.-]{1,${COLLECTION_BYTES_MAX}}$`);

const _utf8 = new TextEncoder();

/**
 * True for a key a record may have: 1..{@link KEY_BYTES_MAX} bytes of well-formed UTF-8 without
 * NUL. Reads and snapshot cursors name keys by the same rule, so none can reach Deno KV with a key
 * it refuses (KV escapes NUL, so 1024 NULs would not fit a KV key).
 */
export function isRecordKey(key: string): boolean {
  return key.length > 0 && key.isWellFormed() && !key.includes("\u0000") &&
    _utf8.encode(key).byteLength <= KEY_BYTES_MAX;
}
