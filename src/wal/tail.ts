/**
 * A byte-bounded in-memory tail of the most recent durable frames (SPEC.md section 3).
 *
 * Pulls of the tail get the stored `DecodedFrame` objects themselves, whose `bytes` are views into
 * the group-commit buffer: N replicas reading the same records share one copy.
 *
 * The budget bounds memory, not frame bytes: a view keeps its whole underlying buffer alive. So the
 * tail counts each distinct buffer its frames view once (`buffer.byteLength`), evicts whole oldest
 * buffers, and lets go of evicted frames at once. A group commit's buffer holds exactly its frames,
 * so keeping the views costs nothing extra and pulls stay zero-copy; only a frame whose buffer is
 * larger than the whole budget (a group commit or read chunk bigger than a small tail) is copied
 * out, because its view could never fit.
 *
 * @module
 */

import assert from "../core/assert.ts";
import type { DecodedFrame } from "./frame.ts";
import { TAIL_COMPACT_AFTER_SLOTS } from "../core/limits.ts";

/** A run of consecutive held frames that view one buffer, counted once. */
interface _BufferRun {
  buffer: ArrayBufferLike;
  frames: number;
}

/**
 * A FIFO whose removed items are released at once (their slot is emptied); the slot array itself
 * is compacted only now and then, which keeps `shift` O(1) amortised.
 */
class _Queue<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  /** The item `index` places from the front, or undefined. */
  at(index: number): T | undefined {
    return index < 0 ? undefined : this.#items[this.#head + index];
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head += 1;
    if (this.#head >= TAIL_COMPACT_AFTER_SLOTS && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes the newest item. */
  pop(): T | undefined {
    if (this.length === 0) return undefined;
    return this.#items.pop();
  }
}

/** Recent frames in LSN order, contiguous, bounded by the bytes of the buffers they keep alive. */
export class FrameTail {
  readonly bytesMax: number;
  #frames = new _Queue<DecodedFrame>();
  #runs = new _Queue<_BufferRun>();
  #bytes = 0;

  constructor(bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0);
    this.bytesMax = bytesMax;
  }

  /** Number of frames held. */
  get count(): number {
    return this.#frames.length;
  }

  /** Memory the held frames keep alive: each buffer they view, counted once. At most `bytesMax`. */
  get byteLength(): number {
    return this.#bytes;
  }

  /** LSN of the oldest held frame, or undefined when empty. */
  get firstLsn(): number | undefined {
    return this.#frames.at(0)?.lsn;
  }

  /** LSN of the newest held frame, or undefined when empty. */
  get lastLsn(): number | undefined {
    return this.#frames.at(this.#frames.length - 1)?.lsn;
  }

  /** Appends the next frame (its LSN must follow the newest one) and evicts to the budget. */
  push(frame: DecodedFrame): void {
    if (this.bytesMax === 0) return;
    const last = this.lastLsn;
    if (last !== undefined && frame.lsn !== last + 1) {
      // A gap would make index arithmetic lie; start over from this frame.
      this.clear();
    }
    if (frame.byteLength > this.bytesMax) {
      // It can never fit, and the frames before it could not follow a hole.
      this.clear();
      return;
    }
    const kept = frame.bytes.buffer.byteLength > this.bytesMax ? _copied(frame) : frame;
    const buffer = kept.bytes.buffer;
    const newest = this.#runs.at(this.#runs.length - 1);
    if (newest !== undefined && newest.buffer === buffer) {
      newest.frames += 1;
    } else {
      this.#runs.push({ buffer, frames: 1 });
      this.#bytes += buffer.byteLength;
    }
    this.#frames.push(kept);
    while (this.#bytes > this.bytesMax) this.#evictOldestRun();
  }

  /** Drops every frame viewing the oldest buffer. */
  #evictOldestRun(): void {
    const run = this.#runs.shift()!;
    for (let i = 0; i < run.frames; i++) this.#frames.shift();
    this.#bytes -= run.buffer.byteLength;
  }

  /** True when the tail holds `lsn`. */
  has(lsn: number): boolean {
    const first = this.firstLsn;
    return first !== undefined && lsn >= first && lsn <= this.lastLsn!;
  }

  /** The frame with `lsn`, or undefined when it is not held. */
  get(lsn: number): DecodedFrame | undefined {
    if (!this.has(lsn)) return undefined;
    return this.#frames.at(lsn - this.firstLsn!);
  }

  /**
   * Frames with LSN > `sinceLsn`, at most `maxCount` and `maxBytes` (always at least one frame when
   * any is available, so an oversize frame cannot stall a reader). The caller checks `has()` first.
   */
  readSince(sinceLsn: number, maxCount: number, maxBytes: number): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    const first = this.firstLsn;
    if (first === undefined || maxCount <= 0) return out;
    let index = Math.max(0, sinceLsn + 1 - first);
    let bytes = 0;
    while (index < this.#frames.length && out.length < maxCount) {
      const frame = this.#frames.at(index)!;
      if (out.length > 0 && bytes + frame.byteLength > maxBytes) break;
      out.push(frame);
      bytes += frame.byteLength;
      index += 1;
    }
    return out;
  }

  /** Drops every frame with LSN ≤ `lsn` (after a prune). */
  dropThrough(lsn: number): void {
    while (this.count > 0 && this.#frames.at(0)!.lsn <= lsn) {
      this.#frames.shift();
      const oldest = this.#runs.at(0)!;
      oldest.frames -= 1;
      if (oldest.frames === 0) {
        this.#runs.shift();
        this.#bytes -= oldest.buffer.byteLength;
      }
    }
  }

  /** Drops every frame with LSN > `lsn` (after a truncation), newest first. */
  dropAfter(lsn: number): void {
    while (this.count > 0 && this.lastLsn! > lsn) {
      this.#frames.pop();
      const newest = this.#runs.at(this.#runs.length - 1)!;
      newest.frames -= 1;
      if (newest.frames === 0) {
        this.#runs.pop();
        this.#bytes -= newest.buffer.byteLength;
      }
    }
  }

  /** Drops everything. */
  clear(): void {
    this.#frames = new _Queue();
    this.#runs = new _Queue();
    this.#bytes = 0;
  }
}

/** A copy of `frame` in a buffer of its own size, its payload a view into that copy. */
function _copied(frame: DecodedFrame): DecodedFrame {
  const bytes = frame.bytes.slice();
  const start = frame.payload.byteOffset - frame.bytes.byteOffset;
  const inside = frame.payload.buffer === frame.bytes.buffer && start >= 0 &&
    start + frame.payload.byteLength <= bytes.byteLength;
  const payload = inside
    ? bytes.subarray(start, start + frame.payload.byteLength)
    : frame.payload.slice();
  return { ...frame, bytes, payload };
}
