/**
 * Reads the current main entries of the keys a sub-batch writes (whether each exists keeps the
 * meta's entry count exact; a chunked one's chunks go stale). Point reads cost Deno KV a call per
 * 10 keys, so keys that cluster in key order (new keys past the end of a collection, runs of
 * neighbours) are read with range listings instead: one listing of a run answers every key in it,
 * present or absent. Where the listing meets mostly other keys (writes scattered over a populated
 * key space), the rest falls back to point reads. Either way every key gets an exact answer.
 *
 * @module
 */

import { DENO_KV_GET_MANY_KEYS_MAX, STATE_RANGE_READ_ENTRIES } from "../core/limits.ts";
import { parseMain } from "./integrity.ts";
import { keyId, KV_STATE_PREFIX, mainKey, type StoredMain } from "./kv_layout.ts";

/** A key to look up; `id` is its `keyId` when the caller has it (a `WriteItem` does). */
export interface MainLookup {
  collection: string;
  key: string;
  id?: string;
}

/** What the reads cost (for tests and profiles). */
export interface LookupStats {
  rangeReads: number;
  pointReads: number;
}

/** The id of a key in the answer of `readCurrentMains` (`keyId`, as a `WriteItem`'s `id`). */
export function lookupId(lookup: MainLookup): string {
  return lookup.id ?? keyId(lookup.collection, lookup.key);
}

/**
 * The current main entry of each lookup (undefined when absent), by `lookupId`. Keys are sorted in
 * Deno KV's order; listings walk the runs while each answers more keys than one point read would.
 */
export async function readCurrentMains(
  kv: Deno.Kv,
  lookups: readonly MainLookup[],
  stats?: LookupStats,
): Promise<Map<string, StoredMain | undefined>> {
  const sorted = [...lookups].sort(_compareLookups);
  const mains = new Map<string, StoredMain | undefined>();
  const wanted = new Set(sorted.map(lookupId));
  let next = 0;
  while (sorted.length - next > DENO_KV_GET_MANY_KEYS_MAX) {
    const answered = await _listFrom(kv, { sorted, wanted, from: next }, mains);
    if (stats) stats.rangeReads += 1;
    next += answered;
    // A listing that answered no more keys than a point read would: the keys are scattered.
    if (answered <= DENO_KV_GET_MANY_KEYS_MAX) break;
  }
  const groups: MainLookup[][] = [];
  for (let first = next; first < sorted.length; first += DENO_KV_GET_MANY_KEYS_MAX) {
    groups.push(sorted.slice(first, first + DENO_KV_GET_MANY_KEYS_MAX));
  }
  // Independent reads, all issued at once: one round trip to Deno KV's thread, not one per group.
  const answers = await Promise.all(
    groups.map((group) => kv.getMany<unknown[]>(group.map((l) => mainKey(l.collection, l.key)))),
  );
  answers.forEach((entries, g) => {
    if (stats) stats.pointReads += 1;
    entries.forEach((entry, i) => {
      const main = entry.value === null ? undefined : parseMain(entry.value, entry.key);
      mains.set(lookupId(groups[g]![i]!), main);
    });
  });
  return mains;
}

/**
 * Lists main entries from `sorted[from]` up to the last lookup, at most
 * `STATE_RANGE_READ_ENTRIES`; records every lookup the listing covered (found or absent) and
 * returns how many that was (at least one: the listing starts at the first key).
 */
async function _listFrom(
  kv: Deno.Kv,
  run: { sorted: readonly MainLookup[]; wanted: ReadonlySet<string>; from: number },
  mains: Map<string, StoredMain | undefined>,
): Promise<number> {
  const { sorted, wanted, from } = run;
  const first = sorted[from]!;
  const last = sorted[sorted.length - 1]!;
  const found = new Map<string, StoredMain>();
  const selector = {
    start: mainKey(first.collection, first.key),
    // A 4-part key sorts right after its 3-part prefix: the range ends just past the last key.
    end: [...KV_STATE_PREFIX, last.collection, last.key, ""],
  };
  const options = { limit: STATE_RANGE_READ_ENTRIES, batchSize: STATE_RANGE_READ_ENTRIES };
  let count = 0;
  let reached: MainLookup | undefined;
  for await (const entry of kv.list<unknown>(selector, options)) {
    count += 1;
    const [, collection, key] = entry.key;
    const plain = entry.key.length === 3 && typeof collection === "string" &&
      typeof key === "string";
    // Only this batch's keys are checked here; `scan` and `get` check the others when read.
    reached = plain ? { collection, key } : undefined;
    if (!plain) continue;
    const id = lookupId({ collection, key });
    if (wanted.has(id)) found.set(id, parseMain(entry.value, entry.key));
  }
  // Cut by the limit: only the keys up to the last one listed are answered (at least the first).
  const complete = count < STATE_RANGE_READ_ENTRIES;
  let answered = 0;
  for (let i = from; i < sorted.length; i++) {
    const lookup = sorted[i]!;
    if (!complete && i > from && (!reached || _compareLookups(lookup, reached) > 0)) break;
    const id = lookupId(lookup);
    mains.set(id, found.get(id));
    answered += 1;
  }
  return answered;
}

/** Deno KV's order of main keys: by collection, then key, each by UTF-8 bytes. */
function _compareLookups(a: MainLookup, b: MainLookup): number {
  return compareUtf8(a.collection, b.collection) || compareUtf8(a.key, b.key);
}

/**
 * Compares strings by their UTF-8 bytes (= by code points), which is how Deno KV orders string
 * key parts. UTF-16 order differs only where a surrogate meets a unit at or above U+E000.
 */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    return _codePointRank(x) - _codePointRank(y);
  }
  return a.length - b.length;
}

/** Ranks a UTF-16 unit so that surrogates (code points past U+FFFF) sort after U+E000..U+FFFF. */
function _codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
