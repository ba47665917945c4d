/**
 * The sparse seek index of one segment (SPEC.md section 3, "Seek index"): a checkpoint
 * `(lsn, byte offset)` for every 64th record, so a read starting mid-segment scans at most 64
 * records before its first useful one.
 *
 * @module
 */

import { SEEK_INDEX_INTERVAL_RECORDS } from "../core/limits.ts";

/**
 * Checkpoints `(lsn, byte offset)` of every 64th record of a segment (ordinal 0, 64, 128 ...), so a
 * read resuming mid-segment scans at most 64 records before its first useful one. Checkpoint `i`
 * is the record `first LSN + 64·i`, so only the offsets are kept and a lookup is arithmetic.
 */
export class SeekIndex {
  /** Byte offset of checkpoint `i` (record ordinal 64·i). */
  readonly offsets: number[];
  /** LSN of checkpoint 0 (the segment's first record), once there is one. */
  #firstLsn = 0;

  /**
   * An empty index, or with `loaded` the index of a segment whose first record is `firstLsn` from
   * its checkpoint offsets (a sidecar's or a clean shutdown record's, already checked: rising
   * from 0; the array is taken, not copied).
   */
  constructor(loaded?: { firstLsn: number; offsets: number[] }) {
    this.offsets = loaded?.offsets ?? [];
    this.#firstLsn = loaded?.firstLsn ?? 0;
  }

  /** Records the frame with zero-based `ordinal` (LSN `lsn`) in its segment if it is a checkpoint. */
  note(ordinal: number, lsn: number, offset: number): void {
    if (ordinal % SEEK_INDEX_INTERVAL_RECORDS !== 0) return;
    // Each checkpoint once, in order.
    if (ordinal / SEEK_INDEX_INTERVAL_RECORDS !== this.offsets.length) return;
    if (ordinal === 0) this.#firstLsn = lsn;
    this.offsets.push(offset);
  }

  /** Byte offset of the latest checkpoint whose LSN is ≤ `lsn`, or 0 when there is none. */
  floorOffset(lsn: number): number {
    const found = this.#floorAt(lsn);
    return found < 0 ? 0 : this.offsets[found]!;
  }

  /** LSN of the latest checkpoint whose LSN is ≤ `lsn` (where `floorOffset` points), if any. */
  floorLsn(lsn: number): number | undefined {
    const found = this.#floorAt(lsn);
    return found < 0 ? undefined : this.#lsnAt(found);
  }

  #floorAt(lsn: number): number {
    if (this.offsets.length === 0 || lsn < this.#firstLsn) return -1;
    const at = Math.floor((lsn - this.#firstLsn) / SEEK_INDEX_INTERVAL_RECORDS);
    return Math.min(at, this.offsets.length - 1);
  }

  #lsnAt(i: number): number {
    return this.#firstLsn + i * SEEK_INDEX_INTERVAL_RECORDS;
  }

  /** The checkpoints as `[lsn, offset]` pairs. */
  entries(): Array<[number, number]> {
    return this.offsets.map((offset, i) => [this.#lsnAt(i), offset]);
  }
}
