/**
 * Cutting a timeline's segments back to a fork point (SPEC.md 13.4, "Divergence by (lsn, term)";
 * `Spool.truncateAfter`): the plan (which segments go, where the one that stays is cut), and the
 * file work in the one order that leaves, after a crash at any step, a log that reopens to a
 * contiguous prefix of the old one: the old log, the truncated one, or one in between whose
 * records are all intact and gap-free (the caller then truncates again).
 *
 * 1. Nothing from the kept segment on may stay described as sealed: their sidecars (with their
 *    digests) are deleted and the manifest rewritten to list only the segments before it, then
 *    one directory fsync. The records are untouched; a sealed segment without a sidecar gets one
 *    again from its next verifying scan, and a manifest that lists fewer segments than the
 *    directory holds is ignored at open (sizes come from metadata).
 * 2. The segments wholly after the fork go newest first, each deletion made durable (directory
 *    fsync) before the next: the directory never holds a segment whose predecessor is gone, so an
 *    open (which dates each segment's end by the next one's name) never sees a hole.
 * 3. The kept segment is cut at the end of the fork record's frame and fdatasynced (the new size
 *    is metadata a data sync carries). Until then it holds its old records, all whole.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { WalCorruptionError, WalTruncateError } from "../core/errors.ts";
import type { FileHandle, FileSystem } from "../core/files.ts";
import { Segment } from "./segment.ts";
import { sidecarPath } from "./seek_sidecar.ts";
import { writeManifest } from "./segment_manifest.ts";

/** What a truncation dropped (`Spool.truncateAfter`). */
export interface TruncateResult {
  droppedRecords: number;
  droppedBytes: number;
  /** The spool's current LSN afterwards: the fork LSN. */
  currentLsn: number;
}

/** Where a truncation cuts, worked out before anything is changed. */
export interface TruncationPlan {
  /** The fork LSN: every record after it goes. */
  lsn: number;
  /** Index of the kept segment: the last whose first LSN is ≤ `lsn + 1` (it holds `lsn + 1`). */
  keptIndex: number;
  kept: Segment;
  /** Byte offset of the frame `lsn + 1` in the kept segment: its new size. */
  cutOffset: number;
  /** The segments after the kept one, newest first. */
  removed: Segment[];
  droppedRecords: number;
  droppedBytes: number;
}

/**
 * Works out the truncation of `segments` (oldest first, the last active) after `lsn`, which must
 * be below the last record. Throws `WalTruncateError` when `lsn` is below `oldestLsn - 1` (records
 * up to it are gone). Changes nothing but may build the kept segment's seek index (reading it).
 * Needs read access.
 */
export async function planTruncation(
  fs: FileSystem,
  segments: readonly Segment[],
  range: { lsn: number; oldestLsn: number },
): Promise<TruncationPlan> {
  const { lsn, oldestLsn } = range;
  const currentLsn = segments[segments.length - 1]!.lastLsn;
  assert(lsn < currentLsn, "a truncation drops at least one record");
  if (lsn < oldestLsn - 1) throw new WalTruncateError(lsn, oldestLsn);
  let keptIndex = segments.length - 1;
  while (keptIndex > 0 && segments[keptIndex]!.firstLsn > lsn + 1) keptIndex -= 1;
  const kept = segments[keptIndex]!;
  assert(kept.firstLsn <= lsn + 1 && lsn + 1 <= kept.lastLsn, "the kept segment holds lsn + 1");
  const cutOffset = await kept.offsetOf(fs, lsn + 1);
  const removed = segments.slice(keptIndex + 1).reverse();
  let droppedBytes = kept.sizeBytes - cutOffset;
  for (const segment of removed) droppedBytes += segment.sizeBytes;
  return {
    lsn,
    keptIndex,
    kept,
    cutOffset,
    removed,
    droppedRecords: currentLsn - lsn,
    droppedBytes,
  };
}

/** The fields of the `spool.truncated` log line. Pure. */
export function truncationLogFields(plan: TruncationPlan): Record<string, number> {
  return {
    after_lsn: plan.lsn,
    dropped_records: plan.droppedRecords,
    dropped_bytes: plan.droppedBytes,
    removed_segments: plan.removed.length,
  };
}

/**
 * Carries out `plan` in `dir` in the order of the module comment; `sealedBefore` are the segments
 * before the kept one (untouched, listed in the new manifest). Returns the kept segment scanned
 * afresh as the active segment (index, record count; its digest catches up on the bytes kept) and
 * its file, open for writing. Throws on any I/O error, leaving the files in one of the states the
 * module comment lists. Needs read and write access to `dir`.
 */
export async function truncateFiles(
  fs: FileSystem,
  dir: string,
  plan: TruncationPlan,
  sealedBefore: readonly Segment[],
): Promise<{ segment: Segment; file: FileHandle }> {
  const changed = [plan.kept, ...plan.removed];
  // No listing describes them from now on, and no index build writes their sidecars again.
  for (const segment of changed) await segment.retire();
  for (const segment of changed) await _removeIfExists(fs, sidecarPath(segment.path));
  const entries = sealedBefore.map((s) => ({ firstLsn: s.firstLsn, sizeBytes: s.sizeBytes }));
  await writeManifest(fs, dir, entries, { syncDir: false });
  await fs.syncDir(dir);
  for (const segment of plan.removed) {
    await _removeIfExists(fs, segment.path);
    await fs.syncDir(dir);
  }
  const file = await fs.open(plan.kept.path, { write: true });
  try {
    await file.truncate(plan.cutOffset);
    await file.syncData();
    const fields = { path: plan.kept.path, firstLsn: plan.kept.firstLsn };
    const { segment, report } = await Segment.repairNewest(file, fields, () => {});
    if (segment.lastLsn !== plan.lsn || report.truncatedBytes !== 0) {
      throw new WalCorruptionError(
        `segment ${plan.kept.path} ends at LSN ${segment.lastLsn} after its cut at LSN ${plan.lsn}`,
        { path: plan.kept.path },
      );
    }
    return { segment, file };
  } catch (error) {
    file.close();
    throw error;
  }
}

async function _removeIfExists(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
