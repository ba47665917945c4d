/**
 * The options and answers of the spool (`spool.ts`): what opening one takes, the metrics hooks it
 * calls, and what an append and a prune report.
 *
 * @module
 */

import type { WalCorruptionError } from "../core/errors.ts";
import type { FileSystem } from "../core/files.ts";
import type { Logger } from "../core/log.ts";

/** Hooks for metrics; the spool imports no metrics library. */
export interface SpoolObserver {
  /** Each group commit's fdatasync: how long, and whether on the event loop's thread. */
  fsyncSeconds?(seconds: number, inline: boolean): void;
  groupCommitRecords?(records: number): void;
  corruption?(error: WalCorruptionError): void;
}

/** Options of `Spool.open`. */
export interface SpoolOptions {
  /** The `<data>/wal` directory; the timeline directory is created inside it. */
  walDir: string;
  timeline: number;
  /** Term stamped into every frame this spool writes. */
  term: number;
  segmentBytesMax?: number;
  tailBytesMax?: number;
  fs?: FileSystem;
  logger?: Logger;
  observer?: SpoolObserver;
  /** Wall clock in ms (frame timestamps). */
  clock?: () => number;
  /** Frame bytes that may wait in the append queue (default `APPEND_QUEUE_BYTES_MAX`). */
  queueBytesMax?: number;
  /** An fdatasync slower than this ends inline syncing (default `WAL_INLINE_SYNC_SLOW_MS`). */
  inlineSyncSlowMs?: number;
}

/** The LSNs one append received. */
export interface AppendResult {
  firstLsn: number;
  lastLsn: number;
  timestampMs: number;
}

/** What a prune removed. */
export interface PruneResult {
  removedSegments: number;
  removedBytes: number;
  oldestLsn: number;
}

/** Memory and queue figures of a spool, for status and metrics. */
export interface SpoolStats {
  tailRecords: number;
  tailBytes: number;
  queuedBytes: number;
  waiters: number;
  commitListeners: number;
  /** Bytes read ahead for catching-up readers (`read_ahead.ts`), held or on their way. */
  readAheadBytes: number;
}
