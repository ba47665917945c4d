/**
 * Slot persistence (SPEC.md section 4): every slot lives in memory and in two durable places, a
 * binary catalog file (`<data>/slots.catalog`, RDSLOT01) and Deno KV (`["slots", id]` plus
 * `["slots_meta"]`), both stamped with the same generation.
 *
 * Changes apply to memory at once and are persisted coalesced (at most once per flush interval), so
 * a crash can only make a slot look older, never newer. Retention prunes against the floor of the
 * last persisted state (`persistedFloor()`), so whatever a restart reloads is still retained.
 *
 * @module
 */

import {
  CatalogFormatError,
  DiskFullError,
  FerryError,
  isDiskFullError,
  OverloadedError,
  SlotStoreCorruptError,
  UnavailableError,
} from "../core/errors.ts";
import { denoFileSystem, type FileSystem, joinPath, writeFileAtomic } from "../core/files.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { decodeCatalog, encodeCatalog } from "./catalog.ts";
import { retentionFloor, type Slot } from "./slot.ts";
import {
  KV_SLOTS_META_KEY,
  KV_SLOTS_PREFIX,
  kvSlotIds,
  type LoadedSlots,
  loadKvSlots,
  slotsMetaToKv,
  slotToKv,
} from "./slot_kv.ts";
import { REPLICAS_MAX, SLOT_TOUCH_PERSIST_MS } from "../core/limits.ts";

/** Name of the catalog file inside the data directory. */
export const CATALOG_FILE_NAME = "slots.catalog";

/** Hooks for metrics. */
export interface SlotStoreObserver {
  persisted?(generation: number): void;
  loadFallback?(source: "catalog" | "kv", problem: string): void;
}

/** Options of `SlotStore.open`. */
export interface SlotStoreOptions {
  dataDir: string;
  kv: Deno.Kv;
  timeline: number;
  flushIntervalMs: number;
  fs?: FileSystem;
  logger?: Logger;
  observer?: SlotStoreObserver;
}

/** What loading found in each place and which one won. */
export interface SlotLoadReport {
  source: "catalog" | "kv" | "none";
  generation: number;
  catalog: string;
  kv: string;
  slots: number;
}

/** Slots in memory, persisted coalesced to the catalog file and Deno KV. */
export class SlotStore {
  readonly loadReport: SlotLoadReport;
  #options: SlotStoreOptions;
  #fs: FileSystem;
  #logger: Logger;
  #slots: Map<string, Slot>;
  #persisted: Map<string, Slot>;
  #dirty = new Set<string>();
  #kvFullRewrite: boolean;
  #generation: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDueAt = 0;
  #flushing: Promise<void> = Promise.resolve();
  #persistCount = 0;
  #closed = false;

  private constructor(
    options: SlotStoreOptions,
    loaded: { generation: number; slots: Slot[]; report: SlotLoadReport; kvStale: boolean },
  ) {
    this.#options = options;
    this.#fs = options.fs ?? denoFileSystem();
    this.#logger = options.logger ?? silentLogger;
    this.#slots = new Map(loaded.slots.map((slot) => [slot.replicaId, slot]));
    this.#persisted = new Map(this.#slots);
    this.#generation = loaded.generation;
    this.#kvFullRewrite = loaded.kvStale;
    this.loadReport = loaded.report;
  }

  /**
   * Loads the slots: the source with the higher generation that decodes cleanly wins; a missing or
   * corrupt one falls back to the other (with a warning); both corrupt refuses to start. When the
   * two disagree, both are rewritten at once so they agree again. Needs read and write access to
   * the data directory.
   */
  static async open(options: SlotStoreOptions): Promise<SlotStore> {
    const fs = options.fs ?? denoFileSystem();
    const logger = options.logger ?? silentLogger;
    const catalog = await _loadCatalog(fs, joinPath(options.dataDir, CATALOG_FILE_NAME));
    const kv = await loadKvSlots(options.kv, options.timeline);
    const chosen = _choose(catalog, kv, options, logger);
    const store = new SlotStore(options, chosen);
    if (chosen.needsRewrite) {
      store.#dirty.add("*");
      await store.flushNow();
    }
    return store;
  }

  /** The current generation (of the last persist, or of what was loaded). */
  get generation(): number {
    return this.#generation;
  }

  /** How many persists completed since open (each writes the catalog and one KV commit). */
  get persistCount(): number {
    return this.#persistCount;
  }

  get size(): number {
    return this.#slots.size;
  }

  get(replicaId: string): Slot | undefined {
    return this.#slots.get(replicaId);
  }

  /** Every slot, sorted by replica id. */
  all(): Slot[] {
    return [...this.#slots.values()].sort((a, b) => (a.replicaId < b.replicaId ? -1 : 1));
  }

  /** True when another slot may be created. */
  hasRoom(): boolean {
    return this.#slots.size < REPLICAS_MAX;
  }

  /**
   * Stores `slot` in memory at once; persistence follows within the flush interval. A `lazy` change
   * (only the last-seen time moved, which matters for the idle timeout of hours) may wait up to
   * `SLOT_TOUCH_PERSIST_MS`, unless another change persists it sooner.
   */
  set(slot: Slot, options: { lazy?: boolean } = {}): void {
    if (this.#slots.get(slot.replicaId) === slot) return;
    if (!this.#slots.has(slot.replicaId) && !this.hasRoom()) {
      throw new OverloadedError(`ferry keeps at most ${REPLICAS_MAX} replication slots`);
    }
    this.#slots.set(slot.replicaId, slot);
    this.#markDirty(slot.replicaId, options.lazy ?? false);
  }

  /** Drops a slot in memory at once; persistence follows (and precedes any prune). */
  delete(replicaId: string): boolean {
    const existed = this.#slots.delete(replicaId);
    if (existed) this.#markDirty(replicaId);
    return existed;
  }

  /** True when changes wait to be persisted. */
  hasPendingChanges(): boolean {
    return this.#dirty.size > 0;
  }

  /**
   * The retention floor of the last persisted state, combined with the in-memory one: pruning
   * through it is safe even if the process dies before the next persist.
   */
  persistedFloor(): number | undefined {
    const persisted = retentionFloor(this.#persisted.values());
    const current = retentionFloor(this.#slots.values());
    if (persisted === undefined) return current;
    if (current === undefined) return persisted;
    return Math.min(persisted, current);
  }

  #markDirty(replicaId: string, lazy = false): void {
    this.#dirty.add(replicaId);
    if (this.#closed) return;
    const delayMs = lazy ? SLOT_TOUCH_PERSIST_MS : this.#options.flushIntervalMs;
    const dueAt = Date.now() + delayMs;
    // Keep the earlier of the pending flush and this change's deadline.
    if (this.#timer !== undefined && this.#timerDueAt <= dueAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDueAt = dueAt;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flushNow().catch((error) =>
        this.#logger.error("slots.persist_failed", {
          error,
          retry_in_ms: this.#options.flushIntervalMs,
        })
      );
    }, delayMs);
  }

  /**
   * Persists every pending change now (catalog file, then one KV atomic commit, one generation).
   * Resolves when they are durable; rejects, keeping them pending, when either write fails.
   */
  flushNow(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const run = this.#flushing.then(() => this.#persist());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #persist(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const dirty = new Set(this.#dirty);
    this.#dirty.clear();
    const generation = this.#generation + 1;
    const snapshot = new Map(this.#slots);
    try {
      await this.#writeCatalog(generation, [...snapshot.values()]);
      await this.#writeKv(generation, snapshot, dirty);
    } catch (error) {
      for (const id of dirty) this.#markDirty(id);
      throw _persistError(error);
    }
    this.#generation = generation;
    this.#persisted = snapshot;
    this.#persistCount += 1;
    this.#options.observer?.persisted?.(generation);
  }

  async #writeCatalog(generation: number, slots: Slot[]): Promise<void> {
    const bytes = encodeCatalog({ timeline: this.#options.timeline, generation, slots });
    await writeFileAtomic(this.#fs, joinPath(this.#options.dataDir, CATALOG_FILE_NAME), bytes);
  }

  async #writeKv(
    generation: number,
    snapshot: Map<string, Slot>,
    dirty: Set<string>,
  ): Promise<void> {
    const kv = this.#options.kv;
    const fullRewrite = this.#kvFullRewrite || dirty.has("*");
    const ids = fullRewrite ? new Set([...snapshot.keys(), ...(await kvSlotIds(kv))]) : dirty;
    const atomic = kv.atomic();
    for (const id of ids) {
      if (id === "*") continue;
      const slot = snapshot.get(id);
      if (slot) atomic.set([...KV_SLOTS_PREFIX, id], slotToKv(slot));
      else atomic.delete([...KV_SLOTS_PREFIX, id]);
    }
    atomic.set(KV_SLOTS_META_KEY, slotsMetaToKv(generation));
    const result = await atomic.commit();
    if (!result.ok) throw new Error("slot KV commit failed its checks");
    this.#kvFullRewrite = false;
  }

  /** Persists what is pending and stops the flush timer. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flushNow();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}

async function _loadCatalog(fs: FileSystem, path: string): Promise<LoadedSlots> {
  let bytes: Uint8Array;
  try {
    const file = await fs.open(path);
    try {
      bytes = new Uint8Array(await file.size());
      await file.readAt(bytes, 0);
    } finally {
      file.close();
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { missing: true };
    throw error;
  }
  try {
    const catalog = decodeCatalog(bytes);
    return { generation: catalog.generation, slots: catalog.slots };
  } catch (error) {
    if (error instanceof CatalogFormatError) return { corrupt: error.message };
    throw error;
  }
}

function _describe(loaded: LoadedSlots): string {
  if ("missing" in loaded) return "missing";
  if ("corrupt" in loaded) return `corrupt: ${loaded.corrupt}`;
  return `generation ${loaded.generation}`;
}

function _choose(
  catalog: LoadedSlots,
  kv: LoadedSlots,
  options: SlotStoreOptions,
  logger: Logger,
): {
  generation: number;
  slots: Slot[];
  report: SlotLoadReport;
  kvStale: boolean;
  needsRewrite: boolean;
} {
  const report = (source: SlotLoadReport["source"], generation: number, slots: number) => ({
    source,
    generation,
    catalog: _describe(catalog),
    kv: _describe(kv),
    slots,
  });
  const catalogOk = "generation" in catalog ? catalog : undefined;
  const kvOk = "generation" in kv ? kv : undefined;
  if (!catalogOk && !kvOk) {
    if ("missing" in catalog && "missing" in kv) {
      return {
        generation: 0,
        slots: [],
        report: report("none", 0, 0),
        kvStale: false,
        needsRewrite: false,
      };
    }
    throw new SlotStoreCorruptError(
      `no readable copy of the replication slots: catalog ${_describe(catalog)}; KV ${
        _describe(kv)
      }. ` +
        `Move ${
          joinPath(options.dataDir, CATALOG_FILE_NAME)
        } aside (and its KV copy is lost too) ` +
        `to start with no slots; replicas will then re-bootstrap.`,
    );
  }
  const useCatalog = catalogOk !== undefined &&
    (kvOk === undefined || catalogOk.generation >= kvOk.generation);
  const winner = (useCatalog ? catalogOk : kvOk)!;
  const source = useCatalog ? "catalog" : "kv";
  const loser = useCatalog ? kv : catalog;
  if (!("generation" in loser)) {
    const problem = _describe(loser);
    logger.warn("slots.load_fallback", { used: source, other: problem });
    options.observer?.loadFallback?.(source, problem);
  } else if (loser.generation !== winner.generation) {
    logger.warn("slots.load_newer", {
      used: source,
      generation: winner.generation,
      other_generation: loser.generation,
    });
  }
  const agree = "generation" in loser && loser.generation === winner.generation;
  return {
    generation: winner.generation,
    slots: winner.slots,
    report: report(source, winner.generation, winner.slots.length),
    kvStale: !agree,
    needsRewrite: !agree && !("missing" in loser && winner.slots.length === 0),
  };
}

/**
 * What a failed persist tells its caller (an admin drop, a snapshot's pin): a full disk is
 * `DiskFullError` (507), any other I/O failure `UnavailableError` (503, retry): never a bare 500.
 */
function _persistError(error: unknown): Error {
  if (error instanceof FerryError) return error;
  if (isDiskFullError(error)) {
    return new DiskFullError("the disk is full; the replication slots could not be persisted");
  }
  return new UnavailableError(
    `persisting the replication slots failed: ${(error as Error).message}; retry shortly`,
  );
}
