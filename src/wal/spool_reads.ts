/**
 * The spool's reads across segments and the in-memory tail (`Spool.readSince`, decoded and
 * CRC-checked, and `Spool.readRawSince`, the bytes as stored): each reads the segment files until
 * the budget is spent or the next record is in the tail, then takes the rest from the tail. The
 * spool checks the arguments first and reports corruption on the way out.
 *
 * @module
 */

import { WalRemovedError } from "../core/errors.ts";
import {
  appendFrames,
  emptyRawFrames,
  type RawBudget,
  type RawFrames,
  readSegmentRange,
} from "./range_read.ts";
import { type ReadBudget, takeIntoBudget } from "./segment.ts";
import type { SegmentSet } from "./segment_set.ts";
import type { FrameTail } from "./tail.ts";

export { emptyRawFrames, type RawFrames };

/**
 * Reads decoded frames after `sinceLsn` into `budget` from the files (every CRC checked) until the
 * budget is full or the rest is in the tail, then from the tail.
 */
export async function readFramesAcross(
  files: SegmentSet,
  tail: FrameTail,
  sinceLsn: number,
  budget: ReadBudget,
): Promise<void> {
  const since = await files.readInto(sinceLsn, budget, (next) => tail.has(next));
  if (!tail.has(since + 1)) return;
  const room = budget.maxCount - budget.out.length;
  for (const frame of tail.readSince(since, room, Infinity)) {
    if (!takeIntoBudget(budget, frame)) break;
  }
}

/**
 * The records after `sinceLsn` as stored, within `budget` (the same records `readFramesAcross`
 * takes): from the tail's buffers when it holds the next record, else one range read per segment
 * (`readSegmentRange`), then the tail. Throws `WalRemovedError` when a segment was pruned under
 * the read, `WalCorruptionError` for a damaged header or a gap.
 */
export async function readRawAcross(
  files: SegmentSet,
  tail: FrameTail,
  sinceLsn: number,
  budget: RawBudget,
): Promise<RawFrames> {
  const raw = emptyRawFrames(sinceLsn);
  const { fs, segments } = files.readersAfter(sinceLsn);
  for (const segment of segments) {
    if (tail.has(raw.lastLsn + 1)) break;
    if (segment.lastLsn <= raw.lastLsn) continue;
    try {
      if (await readSegmentRange(fs, segment, raw, budget)) return raw;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new WalRemovedError(sinceLsn, files.oldestLsn());
      }
      throw error;
    }
  }
  if (tail.has(raw.lastLsn + 1)) {
    appendFrames(raw, tail.readSince(raw.lastLsn, budget.maxCount - raw.count, Infinity), budget);
  }
  return raw;
}
