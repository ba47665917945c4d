/**
 * The replica's store directory. `CURRENT` names the active store; `state-<n>.kv` are stores (Deno
 * KV files, each with SQLite's journal files next to it). A re-bootstrap loads store n+1 and then
 * replaces `CURRENT`, so a crash at any point leaves one store `CURRENT` names and, at most,
 * leftovers that `clearOtherStores` removes at the next open.
 *
 * Every function here needs read and write access to the data directory.
 *
 * @module
 */

import { type FileSystem, joinPath, writeFileAtomic } from "../core/files.ts";
import { isKvDamageError, KvCorruptError } from "../core/errors.ts";
import { KvState, type StateMeta } from "../state/kv_state.ts";
import type { Logger } from "../core/log.ts";
import type { ApplierPosition } from "./apply_plan.ts";

/** The store `CURRENT` names, and whether `CURRENT` could be trusted to name it. */
export interface CurrentStore {
  index: number;
  /** False when `CURRENT` is missing or garbled. */
  trusted: boolean;
}

/** An open store: its KV, the state over it, and the meta read at open. */
export interface OpenedStore {
  kv: Deno.Kv;
  store: KvState;
  meta: StateMeta;
}

const _CURRENT_FILE = "CURRENT";
const _STORE_PATTERN = /^state-(\d{6})\.kv(-wal|-shm|-journal)?$/;
/** The files of one store: SQLite's database and the journal files next to it. */
const _STORE_FILE_SUFFIXES = ["", "-wal", "-shm", "-journal"] as const;
const _utf8 = new TextEncoder();

/** The file name of store `index`: `state-NNNNNN.kv`. */
export function storeName(index: number): string {
  return `state-${String(index).padStart(6, "0")}.kv`;
}

/** The path of store `index` in `dataDir`. */
export function storePath(dataDir: string, index: number): string {
  return joinPath(dataDir, storeName(index));
}

/**
 * Opens store `index` and reads its meta. When SQLite refuses the file at open or on that read
 * (`isKvDamageError`), the replica logs `replica.store_corrupt`, renames the store's files to
 * `<name>.corrupt-<unix ms>` (kept for inspection; nothing deletes them) and opens a fresh empty
 * store under the same name: it then starts from LSN 0 and catches up from the primary, replaying
 * from LSN 1 if that is retained, else re-bootstrapping from a snapshot.
 */
export async function openStore(
  fs: FileSystem,
  options: { dataDir: string; index: number; logger: Logger },
): Promise<OpenedStore> {
  const path = storePath(options.dataDir, options.index);
  try {
    return await _openStoreAt(path);
  } catch (error) {
    if (!isKvDamageError(error) && !(error instanceof KvCorruptError)) throw error;
    const suffix = `.corrupt-${Date.now()}`;
    options.logger.error("replica.store_corrupt", {
      path,
      error: error.message,
      moved_to: path + suffix,
      message: `the store ${path} cannot be opened or read (${error.message}); it is moved ` +
        `aside and the replica starts empty, catching up from the primary`,
    });
    for (const extension of _STORE_FILE_SUFFIXES) {
      await fs.rename(path + extension, path + extension + suffix).catch((renameError) => {
        if (!(renameError instanceof Deno.errors.NotFound)) throw renameError;
      });
    }
    await fs.syncDir(options.dataDir);
    return await _openStoreAt(path);
  }
}

async function _openStoreAt(path: string): Promise<OpenedStore> {
  const kv = await Deno.openKv(path);
  try {
    const store = new KvState(kv);
    return { kv, store, meta: await store.meta() };
  } catch (error) {
    kv.close();
    throw error;
  }
}

/**
 * The store `CURRENT` names; `trusted` is false when `CURRENT` is missing or garbled (then which
 * store is live is unknown, and other stores are set aside, not deleted).
 */
export async function readCurrent(dataDir: string): Promise<CurrentStore> {
  try {
    const text = (await Deno.readTextFile(joinPath(dataDir, _CURRENT_FILE))).trim();
    const match = _STORE_PATTERN.exec(text);
    if (match && match[2] === undefined) return { index: Number(match[1]), trusted: true };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { index: 0, trusted: false };
}

/** Replaces CURRENT atomically (`writeFileAtomic`). */
export async function writeCurrent(fs: FileSystem, dataDir: string, index: number): Promise<void> {
  const text = _utf8.encode(storeName(index) + "\n");
  await writeFileAtomic(fs, joinPath(dataDir, _CURRENT_FILE), text);
}

/** Deletes store `index`: its database and journal files, those that exist. */
export async function removeStoreFiles(dataDir: string, index: number): Promise<void> {
  for (const suffix of _STORE_FILE_SUFFIXES) {
    await Deno.remove(storePath(dataDir, index) + suffix).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

/**
 * Clears stores other than the current one. With a trusted `CURRENT` they are leftovers of an
 * interrupted re-bootstrap and are deleted; without one they are renamed `<name>.corrupt-<ms>`
 * (kept for the operator) and logged, since which store was live cannot be known.
 */
export async function clearOtherStores(
  dataDir: string,
  current: CurrentStore,
  logger: Logger,
): Promise<void> {
  const suffix = `.corrupt-${Date.now()}`;
  for await (const entry of Deno.readDir(dataDir)) {
    const match = _STORE_PATTERN.exec(entry.name);
    if (!match || Number(match[1]) === current.index) continue;
    const path = joinPath(dataDir, entry.name);
    if (current.trusted) {
      await Deno.remove(path);
    } else {
      await Deno.rename(path, path + suffix);
      logger.error("replica.store_set_aside", {
        path,
        moved_to: path + suffix,
        reason: "CURRENT is missing or garbled",
      });
    }
  }
}

/**
 * Opens the store `CURRENT` names (creating the first), removes stores a crash left behind, and
 * reads the applied position (logged as `replica.recovered`).
 */
export async function openCurrentStore(
  fs: FileSystem,
  options: { dataDir: string; logger: Logger },
): Promise<{ kv: Deno.Kv; store: KvState; index: number; position: ApplierPosition }> {
  await fs.mkdirp(options.dataDir);
  const current = await readCurrent(options.dataDir);
  await clearOtherStores(options.dataDir, current, options.logger);
  const index = current.index;
  const { kv, store, meta } = await openStore(fs, { ...options, index });
  const position = {
    lastLsn: meta.applied_lsn,
    lastTerm: meta.last_term,
    lastHash: meta.last_hash,
  };
  options.logger.info("replica.recovered", {
    data_dir: options.dataDir,
    store: storeName(index),
    applied_lsn: position.lastLsn,
    term: position.lastTerm,
  });
  return { kv, store, index, position };
}
