/**
 * The replica's live store: the one `CURRENT` names, read by every request and written by the
 * applier. A re-bootstrap swaps in a new store while reads go on; a read under way on the old store
 * when the swap closes it is read again from the new one, so a swap never fails a read.
 *
 * @module
 */

import type { Logger } from "../core/log.ts";
import type { KvState, StateEntry } from "../state/kv_state.ts";
import { removeStoreFiles, storeName } from "./store_dir.ts";

/** An opened store: its Deno KV, the state over it, and its index in the data directory. */
export interface OpenedStore {
  kv: Deno.Kv;
  store: KvState;
  index: number;
}

/** The store in use, and the swap to a new one. */
export class LiveStore {
  #current: OpenedStore;
  #dataDir: string;
  #logger: Logger;

  constructor(opened: OpenedStore, dataDir: string, logger: Logger) {
    this.#current = opened;
    this.#dataDir = dataDir;
    this.#logger = logger;
  }

  /** The state to apply to. */
  get store(): KvState {
    return this.#current.store;
  }

  /** Its index (`state-<index>.kv`). */
  get index(): number {
    return this.#current.index;
  }

  /** Reads one key from the store in use, again from the new one when a swap closed the old. */
  async get(collection: string, key: string): Promise<StateEntry | undefined> {
    for (;;) {
      const opened = this.#current;
      try {
        return await opened.store.get(collection, key);
      } catch (error) {
        if (opened === this.#current) throw error;
      }
    }
  }

  /**
   * Makes `fresh` (which `CURRENT` already names) the store in use and closes the old one. An old
   * store left behind is only disk: the next open removes it.
   */
  async swap(fresh: OpenedStore): Promise<void> {
    const old = this.#current;
    this.#current = fresh;
    old.kv.close();
    await removeStoreFiles(this.#dataDir, old.index).catch((error) => {
      this.#logger.warn("replica.store_remove_failed", {
        store: storeName(old.index),
        error: (error as Error).message,
      });
    });
  }

  close(): void {
    this.#current.kv.close();
  }
}
