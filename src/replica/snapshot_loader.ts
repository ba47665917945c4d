/**
 * Loads a snapshot from the primary into a fresh store, for a re-bootstrap (SPEC.md 8). A cut
 * stream is resumed after the last entry stored whole; each response's trailer carries the count and
 * CRC-32 of that response's entry lines, and is checked against them.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { FerryHttpError, SnapshotFormatError } from "../core/errors.ts";
import {
  REPLICA_SNAPSHOT_ATTEMPTS_MAX,
  REPLICA_SNAPSHOT_BATCH_BYTES_MAX,
  SNAPSHOT_PAGE_ENTRIES,
} from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import { KvState, type StateEntry } from "../state/kv_state.ts";
import type { FileSystem } from "../core/files.ts";
import { removeStoreFiles, storePath, writeCurrent } from "./store_dir.ts";
import type { FerryClient } from "../client/client.ts";
import type { SnapshotHeader } from "../client/types.ts";

/** What `loadSnapshot` needs from the runtime. */
export interface SnapshotLoaderOptions {
  client: FerryClient;
  replicaId: string;
  /** Aborts the stream being read; once aborted, a failed part is not retried. */
  signal: AbortSignal;
  logger: Logger;
  /** Waits before a resume, at least `atLeastMs` (the primary's Retry-After) when given. */
  backoff: (atLeastMs?: number) => Promise<void>;
  /** Responses to try (resuming after cuts) before giving up; `REPLICA_SNAPSHOT_ATTEMPTS_MAX`. */
  attemptsMax?: number;
  /** Told each response's header as it arrives (the primary's position at that moment). */
  onHeader?: (header: SnapshotHeader) => void;
  /** Told each batch stored: its entries and the bytes of their lines. */
  onStored?: (entries: number, bytes: number) => void;
}

/** A snapshot loaded whole: where the log resumes after it, and how many entries it held. */
export interface LoadedSnapshot {
  startLsn: number;
  term: number;
  entries: number;
}

/**
 * Loads a snapshot into a new store `index` of `dataDir` (removed first if a crash left one),
 * stamps its applied LSN with the snapshot's start, and makes `CURRENT` name it. Until then a
 * failure removes it and throws, so the store in use stays the only one. Needs read and write
 * access to `dataDir`.
 */
export async function loadIntoNewStore(
  fs: FileSystem,
  target: { dataDir: string; index: number },
  options: SnapshotLoaderOptions,
): Promise<{ kv: Deno.Kv; store: KvState; loaded: LoadedSnapshot }> {
  const { dataDir, index } = target;
  await removeStoreFiles(dataDir, index);
  const kv = await Deno.openKv(storePath(dataDir, index));
  try {
    const store = new KvState(kv);
    const loaded = await loadSnapshot(store, options);
    await store.setMeta({ applied_lsn: loaded.startLsn, last_term: loaded.term, last_hash: null });
    await writeCurrent(fs, dataDir, index);
    return { kv, store, loaded };
  } catch (error) {
    kv.close();
    await removeStoreFiles(dataDir, index);
    throw error;
  }
}

/** How far a (possibly cut and resumed) snapshot got. */
interface _SnapshotProgress {
  after: { collection: string; key: string } | undefined;
  entries: number;
  first: { startLsn: number; term: number } | undefined;
}

const _utf8 = new TextEncoder();

/**
 * Streams the snapshot into `store`, resuming after cuts, up to `attemptsMax` attempts. A
 * `rebootstrap_required` answer is not retried: the runtime starts over.
 */
export async function loadSnapshot(
  store: KvState,
  options: SnapshotLoaderOptions,
): Promise<LoadedSnapshot> {
  const progress: _SnapshotProgress = { after: undefined, entries: 0, first: undefined };
  const attemptsMax = options.attemptsMax ?? REPLICA_SNAPSHOT_ATTEMPTS_MAX;
  for (let attempt = 1;; attempt++) {
    try {
      if (await _loadSnapshotPart(store, progress, options)) {
        return {
          startLsn: progress.first!.startLsn,
          term: progress.first!.term,
          entries: progress.entries,
        };
      }
    } catch (error) {
      if (options.signal.aborted || attempt >= attemptsMax) throw error;
      if (error instanceof FerryHttpError && error.code === "rebootstrap_required") throw error;
      options.logger.warn("replica.snapshot_cut", {
        error: (error as Error).message,
        resume_after: progress.after,
        attempt,
      });
      await options.backoff(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
    }
  }
}

/**
 * Streams one response of a snapshot into `store`, resuming after `progress.after`. Returns true
 * once a trailer checked out; false when the stream ended early (resume from `progress.after`).
 * A trailer that disagrees with the entries throws `SnapshotFormatError`. Entries are stored in
 * batches of at most `SNAPSHOT_PAGE_ENTRIES` entries and `REPLICA_SNAPSHOT_BATCH_BYTES_MAX` bytes of
 * lines (a single longer line goes alone).
 */
async function _loadSnapshotPart(
  store: KvState,
  progress: _SnapshotProgress,
  options: SnapshotLoaderOptions,
): Promise<boolean> {
  let batch: StateEntry[] = [];
  let batchBytes = 0;
  let count = 0;
  let crc = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await store.putEntries(batch);
    const last = batch[batch.length - 1]!;
    progress.after = { collection: last.collection, key: last.key };
    progress.entries += batch.length;
    options.onStored?.(batch.length, batchBytes);
    batch = [];
    batchBytes = 0;
  };
  try {
    const lines = options.client.snapshot(options.replicaId, {
      after: progress.after,
      signal: options.signal,
    });
    for await (const line of lines) {
      if (line.type === "header") {
        progress.first ??= { startLsn: line.startLsn, term: line.term };
        options.onHeader?.(line);
      } else if (line.type === "entry") {
        const lineBytes = _utf8.encode(line.raw.endsWith("\n") ? line.raw : line.raw + "\n");
        crc = crc32(lineBytes, crc);
        count += 1;
        // Values may be large: store what is gathered before the batch would pass its byte bound.
        if (batchBytes + lineBytes.byteLength > REPLICA_SNAPSHOT_BATCH_BYTES_MAX) await flush();
        batchBytes += lineBytes.byteLength;
        batch.push({
          collection: line.collection,
          key: line.key,
          value: line.value,
          lsn: line.lsn,
        });
        if (batch.length >= SNAPSHOT_PAGE_ENTRIES) await flush();
      } else {
        if (line.count !== count || line.crc32 !== crc) {
          throw new SnapshotFormatError(
            `snapshot trailer mismatch: got ${count} entries / crc ${crc}, trailer says ${line.count} / ${line.crc32}`,
            { count, crc32: crc, trailer_count: line.count, trailer_crc32: line.crc32 },
          );
        }
        await flush();
        return true;
      }
    }
    await flush();
    return false;
  } catch (error) {
    // Entries that arrived whole are kept: the resume starts after the last stored one.
    await flush().catch(() => undefined);
    throw error;
  }
}
