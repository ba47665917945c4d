/**
 * When records were appended, from memory: one `(first LSN, time)` sample per group commit (per
 * distinct millisecond), so the age of any record a replica has not acked is answered without a
 * disk read. Bounded: past `COMMIT_TIME_SAMPLES_MAX` samples every other one is dropped, so older
 * times get coarser (a record is then dated by an earlier commit: its age is over-, never
 * under-stated by more than the thinning).
 *
 * @module
 */

import { COMMIT_TIME_SAMPLES_MAX } from "../core/limits.ts";

/** Append times of recent records, oldest first. */
export class CommitTimes {
  #lsns: number[] = [];
  #times: number[] = [];
  /** What records older than every sample are dated by: when their history began to be seen. */
  #floorMs: number;

  /** `floorMs`: the time given to records older than any sample (the spool's open time). */
  constructor(floorMs: number) {
    this.#floorMs = floorMs;
  }

  /** Records from `firstLsn` on were appended at `timestampMs` (LSNs rise, times never fall). */
  note(firstLsn: number, timestampMs: number): void {
    const last = this.#times.length - 1;
    if (last >= 0 && this.#times[last]! >= timestampMs) return;
    if (this.#lsns.length >= COMMIT_TIME_SAMPLES_MAX) this.#thin();
    this.#lsns.push(firstLsn);
    this.#times.push(timestampMs);
  }

  /**
   * The append time of the record `lsn`: exact for records sampled since the spool opened (and
   * those of its newest segment at open), the earliest known time for older ones.
   */
  timeOf(lsn: number): number {
    let low = 0;
    let high = this.#lsns.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.#lsns[middle]! <= lsn) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    if (found >= 0) return this.#times[found]!;
    return Math.min(this.#floorMs, this.#times[0] ?? this.#floorMs);
  }

  /**
   * The samples that date the records from `lsn` on, oldest first: the one at or before `lsn`
   * (when there is one) and every later one. Copies.
   */
  samplesFrom(lsn: number): { lsns: number[]; times: number[] } {
    let first = this.#lsns.length;
    while (first > 0 && this.#lsns[first - 1]! > lsn) first -= 1;
    first = Math.max(0, first - 1);
    return { lsns: this.#lsns.slice(first), times: this.#times.slice(first) };
  }

  /** Forgets the samples of records after `lsn` (a truncation dropped them). */
  forgetAfter(lsn: number): void {
    let keep = this.#lsns.length;
    while (keep > 0 && this.#lsns[keep - 1]! > lsn) keep -= 1;
    this.#lsns.length = keep;
    this.#times.length = keep;
  }

  /** Samples held (for tests and the memory bound). */
  get size(): number {
    return this.#lsns.length;
  }

  #thin(): void {
    // Keep the newest sample and every other one before it.
    const keep = (_: number, i: number) => (this.#lsns.length - 1 - i) % 2 === 0;
    this.#lsns = this.#lsns.filter(keep);
    this.#times = this.#times.filter(keep);
  }
}
