/**
 * The materialised state (SPEC.md section 8) in Deno KV: collection, key → value and the LSN that
 * wrote it, plus the applied LSN. The primary and every replica apply change records into it.
 * The key layout is in `kv_layout.ts` (its public names are re-exported here), how writes are cut
 * into commits in `commit_plan.ts`, and the checks of what is read back in `integrity.ts`.
 *
 * Visibility contract: every commit that changes main entries also writes the meta for the last
 * LSN it holds, so the visible state and the applied LSN always move together. Chunks are written
 * before the main entry that points at them (their keys hold the LSN, so they stay invisible until
 * then) and deleted only in or after the commit that stops pointing at them, so a reader that
 * finds a chunk missing or failing its CRC-32 knows the entry was replaced under it and reads again.
 *
 * One writer at a time (`apply`, `putEntries`, `setMeta`), and the store that writes must be the
 * only one writing its Deno KV file: it remembers what it wrote instead of reading it back
 * (`known_mains.ts`). Readers (`get`, `scan`, other stores) may run concurrently with it. Values
 * are stored as JSON text, so what comes back equals `JSON.parse(JSON.stringify(value))`.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { crc32 } from "node:zlib";
import { KvCorruptError } from "../core/errors.ts";
import {
  DENO_KV_GET_MANY_KEYS_MAX,
  DENO_KV_LIST_BATCH_ENTRIES_MAX,
  KNOWN_MAINS_BYTES_MAX,
  KV_READ_RETRIES_MAX,
  KV_SCAN_BATCH_ENTRIES_DEFAULT,
  KV_SCAN_SLACK_ENTRIES,
} from "../core/limits.ts";
import type { ChangeRecord } from "../model/records.ts";
import {
  chunkWrites,
  type CommitCost,
  cutSubBatch,
  deletesCost,
  entriesDelta,
  type FinalWrite,
  keyBytesOf,
  mainCost,
  mainValue,
  metaReserve,
  metaToWrite,
  plus,
  prepare,
  type PreparedWrite,
  setCost,
  staleChunkKeys,
  withinCommit,
  type WriteItem,
  ZERO_COST,
} from "./commit_plan.ts";
import { isLsn, parseJson, parseMain, parseMeta } from "./integrity.ts";
import { readCurrentMains } from "./current_mains.ts";
import { type KnownMain, KnownMains } from "./known_mains.ts";
import {
  chunkKey,
  keyId,
  KV_STATE_META_KEY,
  KV_STATE_PREFIX,
  mainKey,
  type MainOutline,
  outlineOf,
  type StateMeta,
  type StoredMain,
} from "./kv_layout.ts";

export { KV_STATE_CHUNK_PREFIX, KV_STATE_META_KEY, KV_STATE_PREFIX } from "./kv_layout.ts";
export type { StateMeta } from "./kv_layout.ts";

/** A change record and the LSN it was logged at. */
export interface AppliedRecord {
  lsn: number;
  record: ChangeRecord;
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

const _EMPTY_META: StateMeta = Object.freeze({ applied_lsn: 0, last_term: 0, last_hash: null });
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
  /** Commits of main entries so far, and whether one is under way (see `meta`). */
  #writes = 0;
  #writing = false;
  /** The main entries this store wrote: what the next writes of those keys replace. */
  #known = new KnownMains(KNOWN_MAINS_BYTES_MAX);

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The meta of the last apply (or `setMeta`); all zero and `last_hash: null` when absent. */
  async meta(): Promise<StateMeta> {
    const writes = this.#writes;
    const entry = await this.#kv.get<unknown>(KV_STATE_META_KEY);
    const meta = entry.value === null ? { ..._EMPTY_META } : parseMeta(entry.value);
    // A read that raced a commit of this store's writer may be older than what it counts now.
    const current = writes === this.#writes && !this.#writing;
    if (current || this.#entries === undefined) this.#entries = meta.entries ?? 0;
    return meta;
  }

  /**
   * Applies records (in rising LSN order) in sub-batches. Each sub-batch is one atomic commit of
   * its main entries and `metaAfter(lastLsn)` for its last LSN, cut before it would pass the
   * commit limits; several records for one key collapse to the last. Large values are chunked,
   * their chunks committed first; the chunks of replaced versions are deleted in the same commit
   * when they fit, else right after it. Applying the same records again converges to the same
   * state. `onCommitted(lastLsn)` is called after each sub-batch is committed (visible).
   */
  async apply(
    records: readonly AppliedRecord[],
    metaAfter: (lastLsn: number) => StateMeta,
    options: { onCommitted?: (lastLsn: number) => void } = {},
  ): Promise<void> {
    let previousLsn = 0;
    const items = records.map(({ lsn, record }): WriteItem => {
      // `assert.fail` only on failure: a message built per record costs the apply path.
      if (!isLsn(lsn) || lsn <= previousLsn) {
        assert.fail(`LSN ${lsn} does not follow ${previousLsn}`);
      }
      previousLsn = lsn;
      const deleted = record.op === "delete";
      if (!deleted && (record.op !== "put" || record.value === undefined)) {
        assert.fail("a put has a value");
      }
      const { collection, key, value } = record;
      return { collection, key, id: keyId(collection, key), lsn, value, deleted };
    });
    await this.#writeItems(items, (lastLsn) => {
      const meta = metaAfter(lastLsn);
      assert.equal(meta.applied_lsn, lastLsn, "the meta of a sub-batch names its last LSN");
      return meta;
    }, options.onCommitted);
  }

  /** Reads one key; `undefined` when it is absent. Throws `KvCorruptError` on corruption. */
  async get(collection: string, key: string): Promise<StateEntry | undefined> {
    const entryKey = mainKey(collection, key);
    for (let attempt = 0; attempt <= KV_READ_RETRIES_MAX; attempt++) {
      const entry = await this.#kv.get<unknown>(entryKey);
      if (entry.value === null) return undefined;
      const main = parseMain(entry.value, entryKey);
      const read = await this.#readValue(collection, key, main);
      if (read) return { collection, key, value: read.value, lsn: main.lsn };
    }
    throw new KvCorruptError(
      `the chunks of ${JSON.stringify(entryKey)} stayed missing or failed their CRC-32 after ` +
        `${KV_READ_RETRIES_MAX} retries: the state is corrupt`,
    );
  }

  /**
   * Writes entries with their own LSNs (loading a snapshot), chunked when large, in as few commits
   * as the limits allow. The meta does not change.
   */
  async putEntries(entries: readonly StateEntry[]): Promise<void> {
    const items = entries.map((entry): WriteItem => {
      assert(isLsn(entry.lsn), `entry LSN ${entry.lsn} is not an LSN`);
      assert(entry.value !== undefined, "an entry has a value");
      return { ...entry, id: keyId(entry.collection, entry.key), deleted: false };
    });
    await this.#writeItems(items, undefined);
  }

  /** Writes the meta alone (after loading a snapshot), with the entry count this store keeps. */
  async setMeta(meta: StateMeta): Promise<void> {
    if (this.#entries === undefined) await this.meta();
    await this.#kv.set(KV_STATE_META_KEY, metaToWrite({ ...meta, entries: this.#entries }));
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
      const main = parseMain(entry.value, entry.key);
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

  /**
   * Writes items in sub-batches. What their keys hold now is read (or remembered) once, first:
   * this store is the only writer, so it stays true except where this call writes, which
   * `current` follows. Each sub-batch is cut by its main entries' cost, and again with the deletes
   * of the chunks it leaves stale when there are any; the next one is cut while this one commits.
   */
  async #writeItems(
    items: readonly WriteItem[],
    metaAfter: ((lastLsn: number) => StateMeta) | undefined,
    onCommitted?: (lastLsn: number) => void,
  ): Promise<void> {
    const plan = _planner(items, metaAfter === undefined ? ZERO_COST : metaReserve());
    let committing: Promise<void> | undefined;
    this.#writing = true;
    try {
      const current = await this.#currentOutlines(items);
      for (let start = 0; start < items.length;) {
        const { end, finals } = _nextSubBatch(plan, items, start, current);
        const delta = entriesDelta(finals, current);
        const after = finals.map(_knownAfter);
        finals.forEach((final, i) => current.set(final.item.id, after[i] ?? undefined));
        plan.forget(start, end);
        start = end;
        await committing;
        if (this.#entries === undefined) await this.meta();
        const entries = this.#entries! + delta;
        const lastLsn = items[end - 1]!.lsn;
        const meta = metaAfter?.(lastLsn);
        committing = this.#commitSubBatch(finals, meta && { ...meta, entries }).then(() => {
          finals.forEach((final, i) => this.#known.set(final.item.id, after[i]!));
          this.#entries = entries;
          this.#writes += 1;
          onCommitted?.(lastLsn);
        });
      }
      await committing;
    } catch (error) {
      await committing?.catch(() => undefined);
      // Which commits landed is unknown (one may have landed and still failed): read again.
      this.#known.clear();
      this.#entries = undefined;
      throw error;
    } finally {
      this.#writes += 1;
      this.#writing = false;
    }
  }

  /**
   * The outline of each item's current main entry, by `WriteItem.id`: remembered, else read (each
   * key once, however many items write it).
   */
  async #currentOutlines(
    items: readonly WriteItem[],
  ): Promise<Map<string, MainOutline | undefined>> {
    const outlines = new Map<string, MainOutline | undefined>();
    const unknown: WriteItem[] = [];
    for (const item of items) {
      const id = item.id;
      if (outlines.has(id)) continue;
      const known = this.#known.get(id);
      if (known === undefined) unknown.push(item);
      outlines.set(id, known ?? undefined);
    }
    if (unknown.length === 0) return outlines;
    const read = await readCurrentMains(this.#kv, unknown);
    for (const [id, main] of read) outlines.set(id, main && outlineOf(main));
    return outlines;
  }

  /**
   * Chunks first (their own commits), then one commit of the main entries, the meta and as many
   * stale-chunk deletes as fit; the deletes that did not fit follow in their own commits.
   */
  async #commitSubBatch(finals: readonly FinalWrite[], meta: StateMeta | undefined): Promise<void> {
    await this.#commitPacked(finals.flatMap(chunkWrites));
    const atomic = this.#kv.atomic();
    let used = meta === undefined ? ZERO_COST : metaReserve();
    for (const { item, prepared } of finals) {
      const key = mainKey(item.collection, item.key);
      if (prepared.kind === "delete") atomic.delete(key);
      else atomic.set(key, mainValue(item, prepared));
      // Chunk bytes were committed already; only this commit's own limits count here.
      used = plus(used, { ...mainCost(item, prepared), chunkBytes: 0 });
    }
    if (meta !== undefined) atomic.set(KV_STATE_META_KEY, metaToWrite(meta));
    const stale = finals.flatMap((final) => final.staleChunkKeys);
    let fitted = 0;
    for (; fitted < stale.length; fitted++) {
      const next = plus(used, deletesCost([stale[fitted]!]));
      if (!withinCommit(next)) break;
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
    let used = ZERO_COST;
    for (const { key, value } of mutations) {
      const cost = value === undefined
        ? deletesCost([key])
        : setCost(keyBytesOf(key), value.byteLength);
      if (used.mutations > 0 && !withinCommit(plus(used, cost))) {
        await _commit(atomic);
        atomic = this.#kv.atomic();
        used = ZERO_COST;
      }
      if (value === undefined) atomic.delete(key);
      else atomic.set(key, value);
      used = plus(used, cost);
    }
    if (used.mutations > 0) await _commit(atomic);
  }

  /** The value of a main entry; `undefined` when its chunks are missing or torn (replaced). */
  async #readValue(
    collection: string,
    key: string,
    main: StoredMain,
  ): Promise<{ value: unknown } | undefined> {
    if ("json" in main) return { value: parseJson(main.json, collection, key) };
    const text = new Uint8Array(main.bytes);
    let offset = 0;
    for (let first = 0; first < main.chunks; first += DENO_KV_GET_MANY_KEYS_MAX) {
      const count = Math.min(DENO_KV_GET_MANY_KEYS_MAX, main.chunks - first);
      const keys = Array.from(
        { length: count },
        (_, i) => chunkKey(collection, key, main, first + i),
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
    return { value: parseJson(_decoder.decode(text), collection, key) };
  }
}

/**
 * The sub-batch from `start`: cut by its main entries' cost, then, when a key it writes has chunks
 * that its write leaves stale (per `current`), cut again with their deletes counted.
 */
function _nextSubBatch(
  plan: ReturnType<typeof _planner>,
  items: readonly WriteItem[],
  start: number,
  current: ReadonlyMap<string, MainOutline | undefined>,
): { end: number; finals: FinalWrite[] } {
  const rough = plan.cut(start, items.length, plan.mainCostAt);
  const staleKeys = (index: number) =>
    staleChunkKeys(items[index]!, plan.mainCostAt(index), current.get(items[index]!.id));
  const stale = [...rough.finals.values()].some((index) => staleKeys(index).length > 0);
  const cut = !stale ? rough : plan.cut(start, rough.end, (index) => {
    return plus(plan.mainCostAt(index), deletesCost(staleKeys(index)));
  });
  const finals = [...cut.finals.values()].map((index): FinalWrite => ({
    item: items[index]!,
    prepared: plan.prepareAt(index),
    staleChunkKeys: staleKeys(index),
  }));
  return { end: cut.end, finals };
}

/** Sub-batch cuts over `items`, each item prepared (serialized) once and costed once. */
function _planner(items: readonly WriteItem[], reserve: CommitCost) {
  const prepared = new Map<number, PreparedWrite>();
  const mainCosts: CommitCost[] = [];
  const prepareAt = (index: number): PreparedWrite => {
    let value = prepared.get(index);
    if (value === undefined) {
      value = prepare(items[index]!);
      prepared.set(index, value);
    }
    return value;
  };
  const mainCostAt = (index: number) =>
    mainCosts[index] ??= mainCost(items[index]!, prepareAt(index));
  const release = (index: number) => prepared.delete(index);
  return {
    prepareAt,
    mainCostAt,
    cut: (start: number, end: number, costOf: (index: number) => CommitCost) =>
      cutSubBatch(items, { start, end, reserve, costOf, release }),
    /** Drops what was kept for items before `end` (committed or superseded). */
    forget(start: number, end: number): void {
      for (let index = start; index < end; index++) prepared.delete(index);
    },
  };
}

async function _commit(atomic: Deno.AtomicOperation): Promise<void> {
  const result = await atomic.commit();
  assert(result.ok, "a commit without checks cannot fail its checks");
}

/** What a committed final write leaves under its key. */
function _knownAfter({ item, prepared }: FinalWrite): KnownMain {
  if (prepared.kind === "delete") return null;
  if (prepared.kind === "inline") return "inline";
  return outlineOf(mainValue(item, prepared));
}
