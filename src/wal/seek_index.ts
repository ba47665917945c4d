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
 * read resuming mid-segment scans at most 64 records before its first useful one.
 */
export class SeekIndex {
  readonly lsns: number[] = [];
  readonly offsets: number[] = [];

  /** Records the frame with zero-based `ordinal` in its segment if it is a checkpoint. */
  note(ordinal: number, lsn: number, offset: number): void {
    if (ordinal % SEEK_INDEX_INTERVAL_RECORDS !== 0) return;
    if (this.lsns.length > 0 && this.lsns[this.lsns.length - 1]! >= lsn) return;
    this.lsns.push(lsn);
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
    return found < 0 ? undefined : this.lsns[found]!;
  }

  #floorAt(lsn: number): number {
    let low = 0;
    let high = this.lsns.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.lsns[mid]! <= lsn) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }

  /** The checkpoints as `[lsn, offset]` pairs. */
  entries(): Array<[number, number]> {
    return this.lsns.map((lsn, i) => [lsn, this.offsets[i]!]);
  }
}
