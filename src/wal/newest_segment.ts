/**
 * Opening the newest segment of a timeline (SPEC.md section 3, "Repair on open"): when a clean
 * shutdown record (`clean_shutdown.ts`) still describes the file, it is taken as the record says
 * with no scan; otherwise it is scanned once, every CRC checked, and its torn tail truncated.
 *
 * @module
 */

import type { FileHandle, FileSystem } from "../core/files.ts";
import { joinPath } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import { cleanShutdownMismatch, readCleanShutdown, removeCleanShutdown } from "./clean_shutdown.ts";
import { type RepairReport, Segment, segmentFileName } from "./segment.ts";

/** The newest segment, its file open for writing, and how it was opened. */
export interface OpenedNewest {
  segment: Segment;
  file: FileHandle;
  report: RepairReport;
  /** True when the clean shutdown record was trusted (it is still on disk: remove before writes). */
  trustedCleanShutdown: boolean;
}

/**
 * Opens the newest segment `firstLsn` of `dir` for writing. With a clean shutdown record that
 * matches it, hands the record's append-time samples to `onRecord` and reads nothing more than its
 * last frame. Otherwise a record left there is removed first (durably: the repair may change the
 * file), then the segment is scanned and repaired (`Segment.repairNewest`). Needs read and write
 * access to `dir`.
 */
export async function openNewestSegment(
  fs: FileSystem,
  options: {
    dir: string;
    firstLsn: number;
    logger: Logger;
    onRecord: (lsn: number, timestampMs: number) => void;
  },
): Promise<OpenedNewest> {
  const { dir, firstLsn } = options;
  const path = joinPath(dir, segmentFileName(firstLsn));
  const file = await fs.open(path, { write: true });
  try {
    const { present, record } = await readCleanShutdown(fs, dir);
    const mismatch = record === undefined
      ? "unreadable (damaged, or too large)"
      : await cleanShutdownMismatch(file, record, firstLsn);
    if (record !== undefined && mismatch === undefined) {
      const { lsns, times } = record.samples;
      lsns.forEach((lsn, i) => options.onRecord(lsn, times[i]!));
      const { lastLsn, sizeBytes, lastFrameOffset } = record;
      const fields = { path, firstLsn, lastLsn, sizeBytes, lastFrameOffset };
      const segment = Segment.fromCleanShutdown(fields, record.offsets);
      const report = { truncatedBytes: 0, reason: undefined };
      return { segment, file, report, trustedCleanShutdown: true };
    }
    if (present) {
      options.logger.warn("spool.clean_shutdown_ignored", { dir, reason: mismatch });
      await removeCleanShutdown(fs, dir);
    }
    const repaired = await Segment.repairNewest(file, { path, firstLsn }, options.onRecord);
    return { ...repaired, file, trustedCleanShutdown: false };
  } catch (error) {
    file.close();
    throw error;
  }
}
