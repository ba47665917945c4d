/**
 * A byte-bounded in-memory tail of the most recent durable frames (SPEC.md section 3).
 *
 * Pulls of the tail get the stored `DecodedFrame` objects themselves, whose `bytes` are views into
 * the group-commit buffer: N replicas reading the same records share one copy.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { DecodedFrame } from "./frame.ts";
import { TAIL_COMPACT_AFTER_SLOTS } from "../core/limits.ts";

/** Recent frames in LSN order, contiguous, bounded by the sum of their byte lengths. */
export class FrameTail {
  readonly bytesMax: number;
  #frames: DecodedFrame[] = [];
  #head = 0;
  #bytes = 0;

  constructor(bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0);
    this.bytesMax = bytesMax;
  }

  /** Number of frames held. */
  get count(): number {
    return this.#frames.length - this.#head;
  }

  /** Sum of the held frames' byte lengths. */
  get byteLength(): number {
    return this.#bytes;
  }

  /** LSN of the oldest held frame, or undefined when empty. */
  get firstLsn(): number | undefined {
    return this.#frames[this.#head]?.lsn;
  }

  /** LSN of the newest held frame, or undefined when empty. */
  get lastLsn(): number | undefined {
    return this.count === 0 ? undefined : this.#frames[this.#frames.length - 1]?.lsn;
  }

  /** Appends the next frame (its LSN must follow the newest one) and evicts to the budget. */
  push(frame: DecodedFrame): void {
    if (this.bytesMax === 0) return;
    const last = this.lastLsn;
    if (last !== undefined && frame.lsn !== last + 1) {
      // A gap would make index arithmetic lie; start over from this frame.
      this.clear();
    }
    this.#frames.push(frame);
    this.#bytes += frame.byteLength;
    this.#evictToBudget();
  }

  #evictToBudget(): void {
    while (this.#bytes > this.bytesMax && this.count > 0) {
      const evicted = this.#frames[this.#head]!;
      this.#bytes -= evicted.byteLength;
      this.#head += 1;
    }
    this.#compactIfSparse();
  }

  #compactIfSparse(): void {
    if (this.#head >= TAIL_COMPACT_AFTER_SLOTS && this.#head * 2 >= this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
  }

  /** True when the tail holds `lsn`. */
  has(lsn: number): boolean {
    const first = this.firstLsn;
    return first !== undefined && lsn >= first && lsn <= this.lastLsn!;
  }

  /** The frame with `lsn`, or undefined when it is not held. */
  get(lsn: number): DecodedFrame | undefined {
    if (!this.has(lsn)) return undefined;
    return this.#frames[this.#head + (lsn - this.firstLsn!)];
  }

  /**
   * Frames with LSN > `sinceLsn`, at most `maxCount` and `maxBytes` (always at least one frame when
   * any is available, so an oversize frame cannot stall a reader). The caller checks `has()` first.
   */
  readSince(sinceLsn: number, maxCount: number, maxBytes: number): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    const first = this.firstLsn;
    if (first === undefined || maxCount <= 0) return out;
    let index = this.#head + Math.max(0, sinceLsn + 1 - first);
    let bytes = 0;
    while (index < this.#frames.length && out.length < maxCount) {
      const frame = this.#frames[index]!;
      if (out.length > 0 && bytes + frame.byteLength > maxBytes) break;
      out.push(frame);
      bytes += frame.byteLength;
      index += 1;
    }
    return out;
  }

  /** Drops every frame with LSN ≤ `lsn` (after a prune). */
  dropThrough(lsn: number): void {
    while (this.count > 0 && this.#frames[this.#head]!.lsn <= lsn) {
      this.#bytes -= this.#frames[this.#head]!.byteLength;
      this.#head += 1;
    }
    this.#compactIfSparse();
  }

  /** Drops everything. */
  clear(): void {
    this.#frames = [];
    this.#head = 0;
    this.#bytes = 0;
  }
}
