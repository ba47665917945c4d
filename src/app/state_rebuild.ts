/**
 * A cluster member's state rebuild after a truncation (SPEC.md 13.4, "Divergence by (lsn, term)"):
 * a cut log that still starts at LSN 1 rebuilds the state by itself (the state applier re-applies
 * it at the next open); one that no longer does needs a snapshot of the leader first, then the log
 * does the rest. Until that snapshot is loaded, `<data>/state_rebuild_needed` says so (written
 * atomically before the node answers anything about its new position), so a crash in between
 * starts the rebuild over rather than opening an empty state over a pruned log.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { FerryHttpError } from "../core/errors.ts";
import { denoFileSystem, joinPath, writeFileAtomic } from "../core/files.ts";
import {
  REPLICA_BACKOFF_MS_MAX,
  REPLICA_BACKOFF_MS_MIN,
  REPLICA_SNAPSHOT_ATTEMPTS_MAX,
} from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import { Backoff } from "../core/backoff.ts";
import { FerryClient } from "../client/client.ts";
import { loadSnapshot } from "../replica/snapshot_loader.ts";
import { KvState } from "../state/kv_state.ts";
import { Spool } from "../wal/spool.ts";

/** The marker of a state that must be rebuilt from the leader's snapshot before the node serves. */
export const STATE_REBUILD_MARKER_FILE = "state_rebuild_needed";

/** What a truncation left: the records dropped and where the log now stands. */
export interface TruncatedLog {
  dropped: { dropped_records: number; dropped_bytes: number };
  /** The oldest LSN the log still holds (> 1: the state cannot be re-applied from it). */
  oldestLsn: number;
  currentLsn: number;
  /** The term of the record at `currentLsn` (0 when the log is empty). */
  lastTerm: number;
}

/** What a rebuild loaded. */
export interface RebuiltState {
  snapshot_start_lsn: number;
  entries: number;
}

/**
 * Cuts the node's log (stopped) back to `forkLsn` and discards its materialised state. Returns
 * what was dropped and where the log stands; the caller decides how the state comes back (see
 * the module comment). Needs read and write access to the data directory.
 */
export async function truncateNodeLog(
  config: Config,
  forkLsn: number,
  logger: Logger,
): Promise<TruncatedLog> {
  const spool = await _openSpool(config, logger);
  try {
    const dropped = await spool.truncateAfter(forkLsn);
    return {
      dropped: { dropped_records: dropped.droppedRecords, dropped_bytes: dropped.droppedBytes },
      ...await _logPosition(spool),
    };
  } finally {
    await spool.close();
    await discardState(config.dataDir);
  }
}

/** Where the node's log (stopped) stands: its oldest and newest LSN and the newest record's term. */
export async function readLogPosition(
  config: Config,
  logger: Logger,
): Promise<Omit<TruncatedLog, "dropped">> {
  const spool = await _openSpool(config, logger);
  try {
    return await _logPosition(spool);
  } finally {
    await spool.close();
  }
}

/** Writes the rebuild marker, durably (temp, fsync, rename, fsync the directory). */
export async function markStateRebuildNeeded(dataDir: string): Promise<void> {
  const path = joinPath(dataDir, STATE_REBUILD_MARKER_FILE);
  await writeFileAtomic(denoFileSystem(), path, new TextEncoder().encode("snapshot\n"));
}

/** True when the rebuild marker is present. Needs read access to the data directory. */
export async function stateRebuildNeeded(dataDir: string): Promise<boolean> {
  try {
    await Deno.stat(joinPath(dataDir, STATE_REBUILD_MARKER_FILE));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Rebuilds `<data>/ferry.kv` from the leader's snapshot: a fresh store, the snapshot loaded into
 * it (resumed after cuts, up to `REPLICA_SNAPSHOT_ATTEMPTS_MAX` responses), its meta stamped with
 * the snapshot's start, closed; only then is the marker removed. A failure discards the partial
 * store and throws, the marker staying. Needs network access to the leader and read and write
 * access to the data directory.
 */
export async function rebuildStateFromLeader(
  config: Config,
  leaderUrl: string,
  options: { logger: Logger; signal: AbortSignal },
): Promise<RebuiltState> {
  await discardState(config.dataDir);
  const kv = await Deno.openKv(joinPath(config.dataDir, "ferry.kv"));
  const backoff = new Backoff(REPLICA_BACKOFF_MS_MIN, REPLICA_BACKOFF_MS_MAX);
  try {
    const store = new KvState(kv);
    const loaded = await loadSnapshot(store, {
      client: new FerryClient(leaderUrl, { token: config.replicaToken }),
      replicaId: config.nodeId!,
      signal: options.signal,
      logger: options.logger,
      attemptsMax: REPLICA_SNAPSHOT_ATTEMPTS_MAX,
      backoff: (atLeastMs) => backoff.wait(options.signal, atLeastMs),
    });
    await store.setMeta({ applied_lsn: loaded.startLsn, last_term: loaded.term, last_hash: null });
    kv.close();
  } catch (error) {
    kv.close();
    await discardState(config.dataDir);
    throw error;
  }
  const meta = await _readBack(config.dataDir);
  await Deno.remove(joinPath(config.dataDir, STATE_REBUILD_MARKER_FILE)).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return meta;
}

/** True when `error` is the leader saying it no longer holds what a snapshot of it needs. */
export function isRebootstrapRequired(error: unknown): boolean {
  return error instanceof FerryHttpError && error.code === "rebootstrap_required";
}

/** Removes the materialised state's store (`ferry.kv` and its SQLite side files). */
export async function discardState(dataDir: string): Promise<void> {
  for (const suffix of ["", "-shm", "-wal"]) {
    await Deno.remove(joinPath(dataDir, `ferry.kv${suffix}`)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

/** Reads back what the rebuilt store holds (validated after writing, as the disk rules say). */
async function _readBack(dataDir: string): Promise<RebuiltState> {
  const kv = await Deno.openKv(joinPath(dataDir, "ferry.kv"));
  try {
    const meta = await new KvState(kv).meta();
    return { snapshot_start_lsn: meta.applied_lsn, entries: meta.entries ?? 0 };
  } finally {
    kv.close();
  }
}

function _openSpool(config: Config, logger: Logger): Promise<Spool> {
  return Spool.open({
    walDir: joinPath(config.dataDir, "wal"),
    timeline: config.timeline,
    term: config.term,
    logger,
  });
}

async function _logPosition(spool: Spool): Promise<Omit<TruncatedLog, "dropped">> {
  const currentLsn = spool.currentLsn();
  const oldestLsn = spool.oldestLsn();
  if (currentLsn === 0 || oldestLsn > currentLsn) return { oldestLsn, currentLsn, lastTerm: 0 };
  const [last] = await spool.readSince(currentLsn - 1, 1, Number.MAX_SAFE_INTEGER);
  return { oldestLsn, currentLsn, lastTerm: last?.term ?? 0 };
}
