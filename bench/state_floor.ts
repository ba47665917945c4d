/**
 * The floors of the state benchmark: the leanest Deno programs that apply the same records into a
 * store, durable at the end (the checkpoint that makes them so timed apart: the state needs it
 * only before a prune). No frames, no decode, no checks, no worker: what is left is the
 * store's own cost.
 *
 * - `kv` (the floor of ferry's store, SPEC.md section 8): Deno KV, each atomic commit 999 records
 *   (one `set` of the record's JSON text under `["state", collection, key]`) and the applied LSN
 *   under one meta key: Deno KV takes at most 1000 mutations per commit, and the applied LSN must
 *   move with the values it covers, as ferry's does. Ferry's apply rate over this one says how
 *   much of the gap to ingest is Deno KV's.
 * - `sqlite` (what another embedded store would give): SQLite through Deno's built-in
 *   `node:sqlite`, WAL mode with `synchronous=NORMAL` (no sync per commit: the spool replays what a
 *   lost commit held), `SQLITE_TX_RECORDS` upserts and the applied LSN per transaction, one
 *   checkpoint at the end (the sync a prune would need).
 * - `memory` (the Redis model: the state in memory over the spool, a checkpoint before a prune):
 *   one `Map` entry per key, then one checkpoint file of every entry, written as ferry writes its
 *   own files (`writeFileAtomic`: temp, fdatasync, rename, directory fsync).
 *
 * Run by `state_bench.ts` in a process of its own: `deno run --unstable-kv
 * --allow-read=<dir> --allow-write=<dir> bench/state_floor.ts <dir> <records> <order> [store]`;
 * prints `{"records", "seconds", "checkpointSeconds"}`.
 */

import { DatabaseSync } from "node:sqlite";
import { denoFileSystem, joinPath, writeFileAtomic } from "../src/core/files.ts";

/** How the run's keys are laid out in key order (distinct but for `rewrites`). */
export type KeyOrder = "sequential" | "scattered" | "rewrites";
/** The key orders the state benchmark runs, in order. */
export const KEY_ORDERS: readonly KeyOrder[] = ["sequential", "scattered", "rewrites"];
/** The keys the `rewrites` order writes again and again (scattered, like `scattered`'s). */
export const REWRITTEN_KEYS = 10_000;
/** Characters of padding in each record's value. */
const VALUE_CHARS = 100;
const PAD = "v".repeat(VALUE_CHARS);
/** Deno KV's cap on the mutations of one atomic commit. */
const KV_MUTATIONS_PER_COMMIT_MAX = 1000;
/** Records per commit: the cap less the meta key. */
const RECORDS_PER_COMMIT = KV_MUTATIONS_PER_COMMIT_MAX - 1;
/** Upserts per SQLite transaction (100 000 to 1 000 000 measured alike here). */
const SQLITE_TX_RECORDS = 100_000;
/** SQLite's page cache for the run, in KiB (negative `cache_size`): the whole state fits. */
const SQLITE_CACHE_KIB = 512 * 1024;

/** The stores the floors apply into. */
export type FloorStore = "kv" | "sqlite" | "memory";
/** The stores the state benchmark measures, in order. */
export const FLOOR_STORES: readonly FloorStore[] = ["kv", "sqlite", "memory"];

/**
 * Key `index` of the run, distinct for every index below 2^32: rising with the index (new keys
 * land past the existing ones, like time-ordered ids), or scattered over the key space (a
 * multiplicative hash: each commit touches as many B-tree pages of Deno KV's SQLite as keys);
 * `rewrites` cycles through `REWRITTEN_KEYS` scattered keys (updates of keys the state holds).
 */
export function keyOf(index: number, order: KeyOrder): string {
  if (order === "rewrites") return keyOf(index % REWRITTEN_KEYS, "scattered");
  if (order === "sequential") return `user:${String(index).padStart(10, "0")}`;
  return `user:${(Math.imul(index, 0x9e37_79b1) >>> 0).toString(16).padStart(8, "0")}`;
}

/** The value of record `index`, as the benchmark's writers send it. */
export function valueOf(index: number): { i: number; pad: string } {
  return { i: index, pad: PAD };
}

/**
 * Seconds a floor took: from the first record to the last one applied (readable, and durable but
 * for the checkpoint), and the checkpoint that makes it durable (0 where every commit syncs).
 */
export interface FloorTimes {
  seconds: number;
  checkpointSeconds: number;
}

/** What a floor applies: how many records, their keys' order, and into which store. */
export interface FloorRun {
  records: number;
  order: KeyOrder;
  store: FloorStore;
}

/**
 * Applies `run.records` records in `run.order` into a new store of kind `run.store` in `dir`.
 * Needs read and write permission on `dir`.
 */
export function applyFloor(dir: string, run: FloorRun): Promise<FloorTimes> {
  const { records, order, store } = run;
  if (store === "sqlite") return Promise.resolve(applySqlite(dir, records, order));
  if (store === "memory") return applyMemory(dir, records, order);
  return applyKv(dir, records, order);
}

function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

async function applyKv(dir: string, records: number, order: KeyOrder): Promise<FloorTimes> {
  const kv = await Deno.openKv(`${dir}/floor.kv`);
  try {
    const startMs = performance.now();
    for (let first = 0; first < records; first += RECORDS_PER_COMMIT) {
      const end = Math.min(records, first + RECORDS_PER_COMMIT);
      const commit = kv.atomic();
      for (let i = first; i < end; i++) {
        commit.set(["state", "bench", keyOf(i, order)], JSON.stringify(valueOf(i)));
      }
      commit.set(["state_meta"], { applied_lsn: end });
      const result = await commit.commit();
      if (!result.ok) throw new Error("a commit without checks was refused");
    }
    return { seconds: secondsSince(startMs), checkpointSeconds: 0 };
  } finally {
    kv.close();
  }
}

function applySqlite(dir: string, records: number, order: KeyOrder): FloorTimes {
  const db = new DatabaseSync(`${dir}/floor.sqlite`);
  try {
    db.exec(`PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;
      PRAGMA cache_size=-${SQLITE_CACHE_KIB};
      CREATE TABLE state (c TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL,
        PRIMARY KEY (c, k)) WITHOUT ROWID;
      CREATE TABLE meta (id INTEGER PRIMARY KEY, applied_lsn INTEGER NOT NULL);`);
    const put = db.prepare(
      "INSERT INTO state (c, k, v) VALUES (?, ?, ?) ON CONFLICT (c, k) DO UPDATE SET v = excluded.v",
    );
    const applied = db.prepare("INSERT OR REPLACE INTO meta (id, applied_lsn) VALUES (1, ?)");
    const startMs = performance.now();
    for (let first = 0; first < records; first += SQLITE_TX_RECORDS) {
      const end = Math.min(records, first + SQLITE_TX_RECORDS);
      db.exec("BEGIN");
      for (let i = first; i < end; i++) {
        put.run("bench", keyOf(i, order), JSON.stringify(valueOf(i)));
      }
      applied.run(end);
      db.exec("COMMIT");
    }
    const seconds = secondsSince(startMs);
    const checkpointMs = performance.now();
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return { seconds, checkpointSeconds: secondsSince(checkpointMs) };
  } finally {
    db.close();
  }
}

async function applyMemory(dir: string, records: number, order: KeyOrder): Promise<FloorTimes> {
  const startMs = performance.now();
  const state = new Map<string, string>();
  for (let i = 0; i < records; i++) state.set(keyOf(i, order), JSON.stringify(valueOf(i)));
  const seconds = secondsSince(startMs);
  const checkpointMs = performance.now();
  const lines = [JSON.stringify({ applied_lsn: records })];
  for (const [key, value] of state) lines.push(`${JSON.stringify(key)}\t${value}`);
  const bytes = new TextEncoder().encode(lines.join("\n"));
  await writeFileAtomic(denoFileSystem(), joinPath(dir, "floor.checkpoint"), bytes);
  return { seconds, checkpointSeconds: secondsSince(checkpointMs) };
}

if (import.meta.main) {
  const [dir, records, order, store] = Deno.args;
  const times = await applyFloor(dir!, {
    records: Number(records),
    order: order as KeyOrder,
    store: (store ?? "kv") as FloorStore,
  });
  console.log(JSON.stringify({ records: Number(records), ...times }));
}
