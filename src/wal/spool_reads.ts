/**
 * The spool's reads across segments and the in-memory tail (`Spool.readSince`, decoded and
 * CRC-checked, and `Spool.readRawSince`, the bytes as stored): each reads the segment files until
 * the budget is spent or the next record is in the tail, then takes the rest from the tail.
 * `SpoolReads` checks the arguments first and reports corruption on the way out.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { WalCorruptionError, WalRemovedError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { DecodedFrame } from "./frame.ts";
import { emptyRawFrames, type RawBudget, type RawFrames, readSegmentRange } from "./range_read.ts";
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
  const { fs, segments, ahead } = files.readersAfter(sinceLsn);
  for (const segment of segments) {
    if (tail.has(raw.lastLsn + 1)) break;
    if (segment.lastLsn <= raw.lastLsn) continue;
    try {
      if (await readSegmentRange(fs, segment, raw, budget, ahead)) return raw;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new WalRemovedError(sinceLsn, files.oldestLsn());
      }
      throw error;
    }
  }
  tail.appendRaw(raw, budget);
  return raw;
}

/** What the reads need of their spool. */
export interface SpoolReadsHooks {
  currentLsn(): number;
  closed(): boolean;
  unavailable(): Error;
  logger: Logger;
  observer: { corruption?(error: WalCorruptionError): void };
}

/** The spool's reads, and its report of a damaged segment (once per segment). */
export class SpoolReads {
  #files: SegmentSet;
  #tail: FrameTail;
  #hooks: SpoolReadsHooks;
  /** Segments whose corruption was reported (once each: a log line and the metric). */
  #reportedCorruptions = new Set<string>();

  constructor(files: SegmentSet, tail: FrameTail, hooks: SpoolReadsHooks) {
    this.#files = files;
    this.#tail = tail;
    this.#hooks = hooks;
  }

  /**
   * Records with LSN > `sinceLsn`, in order, at most `maxCount` and about `maxBytes` (at least one
   * record when any is available). Served from the in-memory tail when it holds `sinceLsn + 1`,
   * else from the segments through the seek index, stopping as soon as the budget is spent.
   * Throws `WalRemovedError` when `sinceLsn + 1` was pruned, `WalCorruptionError` when a segment
   * fails verification.
   */
  async readSince(sinceLsn: number, maxCount: number, maxBytes: number): Promise<DecodedFrame[]> {
    if (!this.#startRead(sinceLsn, maxCount, maxBytes)) return [];
    if (this.#tail.has(sinceLsn + 1)) return this.#tail.readSince(sinceLsn, maxCount, maxBytes);
    const budget = { maxCount, maxBytes, usedBytes: 0, out: [] as DecodedFrame[] };
    await readFramesAcross(this.#files, this.#tail, sinceLsn, budget).catch(this.#readError);
    const first = budget.out[0];
    if (first !== undefined && first.lsn !== sinceLsn + 1) {
      throw this.reportCorruption(
        new WalCorruptionError(`expected LSN ${sinceLsn + 1} first, read ${first.lsn}`),
      );
    }
    return budget.out;
  }

  /**
   * The records `readSince` returns (same budget, same errors) as the bytes stored, read with one
   * read per segment (`readRawAcross`; CRCs left to the receiver).
   */
  async readRawSince(sinceLsn: number, maxCount: number, maxBytes: number): Promise<RawFrames> {
    if (!this.#startRead(sinceLsn, maxCount, maxBytes)) return emptyRawFrames(sinceLsn);
    return await readRawAcross(this.#files, this.#tail, sinceLsn, { maxCount, maxBytes })
      .catch(this.#readError);
  }

  /** Logs and counts a corruption once per damaged segment; every read still gets the error. */
  reportCorruption(error: WalCorruptionError): WalCorruptionError {
    const where = String(error.details.path ?? error.message);
    if (!this.#reportedCorruptions.has(where)) {
      this.#reportedCorruptions.add(where);
      this.#hooks.logger.error("spool.corruption", { message: error.message, ...error.details });
      this.#hooks.observer.corruption?.(error);
    }
    return error;
  }

  /** Checks a read's arguments and start; false when there is nothing to read. */
  #startRead(sinceLsn: number, maxCount: number, maxBytes: number): boolean {
    assert(Number.isSafeInteger(sinceLsn) && sinceLsn >= 0);
    assert(Number.isSafeInteger(maxCount) && maxCount >= 0 && maxBytes >= 0);
    if (this.#hooks.closed()) throw this.#hooks.unavailable();
    if (sinceLsn >= this.#hooks.currentLsn() || maxCount === 0) return false;
    const oldest = this.#files.oldestLsn();
    if (sinceLsn + 1 < oldest) throw new WalRemovedError(sinceLsn, oldest);
    return true;
  }

  /** Rethrows a failed read's error; a corruption is reported (once per segment) on its way. */
  #readError = (error: unknown): never => {
    throw error instanceof WalCorruptionError ? this.reportCorruption(error) : error;
  };
}
