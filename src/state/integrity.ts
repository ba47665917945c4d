/**
 * The integrity checks of what the state stores. SQLite keeps no page checksums, so every main
 * entry and the meta carry a CRC-32 `check` over their fields (and, for a main entry, its key's
 * collection and name). Whatever is read back is parsed and checked here; anything that fails is
 * a `KvCorruptError`.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { crc32 } from "node:zlib";
import { KvCorruptError } from "../core/errors.ts";
import { KV_VALUE_TEXT_BYTES_MAX } from "../core/limits.ts";
import type { ChunkedMain, InlineMain, StateMeta, StoredMain } from "./kv_layout.ts";

/** The fields of a main entry before its check is added. */
export type UncheckedMain = Omit<InlineMain, "check"> | Omit<ChunkedMain, "check">;

/** Whether `value` can be an LSN (or a count, length or CRC-32: a safe integer, not negative). */
export function isLsn(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * CRC-32 of a tuple's JSON text (as UTF-8): the integrity check of main entries and of the meta.
 * `crc32` encodes the string itself, which saves an allocation per entry on the apply path; the
 * JSON text holds no lone surrogate, so its UTF-8 is the same as `TextEncoder`'s.
 */
function _check(parts: readonly unknown[]): number {
  return crc32(JSON.stringify(parts));
}

/** A main entry to store under (collection, key), with its check; `parseMain` verifies it. */
export function checkedMain(collection: string, key: string, main: UncheckedMain): StoredMain {
  if ("json" in main) {
    const { lsn, json } = main;
    return { lsn, json, check: _check([collection, key, lsn, json]) };
  }
  const { lsn, chunks, bytes, crc32 } = main;
  return { lsn, chunks, bytes, crc32, check: _check([collection, key, lsn, chunks, bytes, crc32]) };
}

/** The meta to store, with its check; `parseMeta` verifies it. */
export function metaValue(meta: StateMeta): Required<StateMeta> & { check: number } {
  assert(isLsn(meta.applied_lsn), `applied_lsn ${meta.applied_lsn} is not an LSN`);
  const entries = meta.entries ?? 0;
  return {
    applied_lsn: meta.applied_lsn,
    last_term: meta.last_term,
    last_hash: meta.last_hash,
    entries,
    check: _check([meta.applied_lsn, meta.last_term, meta.last_hash, entries]),
  };
}

/** Parses stored JSON text; text that does not parse is corruption (a `KvCorruptError`). */
export function parseJson(json: string, collection: string, key: string): unknown {
  try {
    return JSON.parse(json);
  } catch (error) {
    throw new KvCorruptError(
      `the value of ${JSON.stringify([collection, key])} is corrupt: ${error}`,
    );
  }
}

/** Checks a stored main entry against its key and its own check; anything else is corruption. */
export function parseMain(value: unknown, key: Deno.KvKey): StoredMain {
  const v = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const [, collection, name] = key;
  const { lsn, json, chunks, bytes, crc32, check } = v;
  if (isLsn(lsn) && typeof json === "string" && check === _check([collection, name, lsn, json])) {
    return { lsn, json, check };
  }
  if (
    isLsn(lsn) && isLsn(bytes) && isLsn(chunks) && isLsn(crc32) && crc32 <= 0xffff_ffff &&
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
export function parseMeta(value: unknown): StateMeta {
  const v = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const { applied_lsn, last_term, last_hash, entries, check } = v;
  const hashOk = last_hash === null || typeof last_hash === "string";
  if (
    isLsn(applied_lsn) && isLsn(last_term) && hashOk && isLsn(entries) &&
    check === _check([applied_lsn, last_term, last_hash, entries])
  ) {
    return { applied_lsn, last_term, last_hash: last_hash as string | null, entries };
  }
  throw new KvCorruptError(
    `the state meta ${JSON.stringify(value)} is corrupt (it fails its check)`,
  );
}
