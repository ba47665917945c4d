/**
 * A byte-bounded in-memory tail of the most recent durable frames (SPEC.md section 3).
 *
 * It keeps the group-commit buffers themselves and, per buffer, where each frame ends: no object
 * per frame. At batch rates a frame object (and its two views) per record outlived the young
 * generation and churned the old one: the collector's threads took a fifth of a core, and a
 * 1 MiB tail ingested a fifth faster than the default 64 MiB one. Raw reads (pulls, streams' catch-up)
 * take views of the buffers, no copy and no decode; decoded reads (`readSince`, `get`) build each
 * frame they return, its views into the same buffer.
 *
 * The budget bounds memory, not frame bytes: a view keeps its whole underlying buffer alive. So the
 * tail counts each buffer once (`buffer.byteLength`), evicts whole oldest buffers, and lets go of
 * evicted frames at once. A group commit's buffer holds exactly its frames, so keeping it costs
 * nothing extra; only a frame whose buffer is larger than the whole budget (a group commit or read
 * chunk bigger than a small tail) is copied out, because its buffer could never fit.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { type DecodedFrame, decodeFrame } from "./frame.ts";
import { TAIL_COMPACT_AFTER_SLOTS } from "../core/limits.ts";
import { appendRawRun, type RawBudget, type RawFrames } from "./range_read.ts";

/**
 * Consecutive frames stored back to back in one buffer. Frame `i` (LSN `firstLsn + i`) spans
 * `ends[skip + i - 1]` (or `start` when that is the first kept one) to `ends[skip + i]`.
 */
interface _Run {
  /** A view of the whole buffer (made once: decoded and raw reads take their views from it). */
  bytes: Uint8Array;
  firstLsn: number;
  /** Offset in the buffer where the first kept frame starts. */
  start: number;
  /** Offset in the buffer where each frame ends, dropped ones included (`skip` of them). */
  ends: number[];
  skip: number;
}

function _count(run: _Run): number {
  return run.ends.length - run.skip;
}

function _lastLsn(run: _Run): number {
  return run.firstLsn + _count(run) - 1;
}

/** Where frame `index` (from the first kept one) of `run` starts. */
function _startOf(run: _Run, index: number): number {
  return index === 0 ? run.start : run.ends[run.skip + index - 1]!;
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
  #runs = new _Queue<_Run>();
  #count = 0;
  #bytes = 0;

  constructor(bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0);
    this.bytesMax = bytesMax;
  }

  /** Number of frames held. */
  get count(): number {
    return this.#count;
  }

  /** Memory the held frames keep alive: each buffer they view, counted once. At most `bytesMax`. */
  get byteLength(): number {
    return this.#bytes;
  }

  /** LSN of the oldest held frame, or undefined when empty. */
  get firstLsn(): number | undefined {
    return this.#runs.at(0)?.firstLsn;
  }

  /** LSN of the newest held frame, or undefined when empty. */
  get lastLsn(): number | undefined {
    const newest = this.#runs.at(this.#runs.length - 1);
    return newest === undefined ? undefined : _lastLsn(newest);
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
    const { bytes } = frame;
    const end = bytes.byteOffset + bytes.byteLength;
    const newest = this.#runs.at(this.#runs.length - 1);
    if (newest !== undefined && newest.bytes.buffer === bytes.buffer) {
      if (newest.ends[newest.ends.length - 1] === bytes.byteOffset) {
        newest.ends.push(end);
        this.#count += 1;
        return;
      }
      // The same buffer again, not right after: its own copy keeps the count of buffers exact.
      this.#pushRun(bytes.slice(), frame.lsn);
    } else if (bytes.buffer.byteLength > this.bytesMax) {
      this.#pushRun(bytes.slice(), frame.lsn);
    } else {
      this.#pushRun(bytes, frame.lsn);
    }
    while (this.#bytes > this.bytesMax) this.#evictOldestRun();
  }

  /**
   * Appends a whole group commit: `bytes` (a buffer of its own) holds frames `firstLsn`... back to
   * back, ending at `ends` (the tail keeps that array). The same as pushing each frame.
   */
  pushRun(bytes: Uint8Array, firstLsn: number, ends: number[]): void {
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const last = this.lastLsn;
    const follows = last === undefined || firstLsn === last + 1;
    if (this.bytesMax === 0 || !whole || !follows || bytes.byteLength > this.bytesMax) {
      // The rare cases (a gap, a buffer larger than the budget) go frame by frame.
      for (let i = 0; i < ends.length; i++) {
        const frame = decodeFrame(bytes.subarray(0, ends[i]), i === 0 ? 0 : ends[i - 1]);
        assert(frame.status === "ok", "a group commit holds whole frames");
        this.push(frame.frame);
      }
      return;
    }
    this.#runs.push({ bytes, firstLsn, start: 0, ends, skip: 0 });
    this.#count += ends.length;
    this.#bytes += bytes.byteLength;
    while (this.#bytes > this.bytesMax) this.#evictOldestRun();
  }

  /** Starts a run with the one frame `bytes`. */
  #pushRun(bytes: Uint8Array, lsn: number): void {
    const { buffer } = bytes;
    this.#runs.push({
      bytes: new Uint8Array(buffer),
      firstLsn: lsn,
      start: bytes.byteOffset,
      ends: [bytes.byteOffset + bytes.byteLength],
      skip: 0,
    });
    this.#count += 1;
    this.#bytes += buffer.byteLength;
  }

  /** Drops every frame of the oldest buffer. */
  #evictOldestRun(): void {
    const run = this.#runs.shift()!;
    this.#count -= _count(run);
    this.#bytes -= run.bytes.byteLength;
  }

  /** True when the tail holds `lsn`. */
  has(lsn: number): boolean {
    const first = this.firstLsn;
    return first !== undefined && lsn >= first && lsn <= this.lastLsn!;
  }

  /** The frame with `lsn`, or undefined when it is not held. */
  get(lsn: number): DecodedFrame | undefined {
    if (!this.has(lsn)) return undefined;
    const run = this.#runs.at(this.#runIndexOf(lsn))!;
    return _frameAt(run, lsn - run.firstLsn);
  }

  /** Index in `#runs` of the run holding `lsn` (which the tail holds). */
  #runIndexOf(lsn: number): number {
    let low = 0;
    let high = this.#runs.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.#runs.at(middle)!.firstLsn <= lsn) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /**
   * Frames with LSN > `sinceLsn`, at most `maxCount` and `maxBytes` (always at least one frame when
   * any is available, so an oversize frame cannot stall a reader), each built from its bytes (no
   * copy: its views are of the tail's buffer). The caller checks `has()` first.
   */
  readSince(sinceLsn: number, maxCount: number, maxBytes: number): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    const first = this.firstLsn;
    if (maxCount <= 0 || first === undefined) return out;
    let lsn = Math.max(sinceLsn + 1, first);
    if (lsn > this.lastLsn!) return out;
    let bytes = 0;
    for (let r = this.#runIndexOf(lsn); r < this.#runs.length; r++) {
      const run = this.#runs.at(r)!;
      for (let index = lsn - run.firstLsn; index < _count(run); index++) {
        const frame = _frameAt(run, index);
        if (out.length >= maxCount || (out.length > 0 && bytes + frame.byteLength > maxBytes)) {
          return out;
        }
        out.push(frame);
        bytes += frame.byteLength;
      }
      lsn = _lastLsn(run) + 1;
    }
    return out;
  }

  /**
   * Appends the stored bytes of the frames after `raw.lastLsn` to `raw` while `budget` allows (the
   * same bounds as `readSince`): one view per buffer, no frame built. Returns true when the budget
   * stopped it before the frames ran out.
   */
  appendRaw(raw: RawFrames, budget: RawBudget): boolean {
    let lsn = raw.lastLsn + 1;
    if (!this.has(lsn)) return false;
    for (let r = this.#runIndexOf(lsn); r < this.#runs.length; r++) {
      const run = this.#runs.at(r)!;
      const first = lsn - run.firstLsn;
      const from = _startOf(run, first);
      let index = first;
      for (; index < _count(run); index++) {
        // Before taking frame `index`: the frames and bytes taken, then whether it still fits.
        const count = raw.count + index - first;
        const bytesWith = raw.byteLength + run.ends[run.skip + index]! - from;
        if (count >= budget.maxCount || (count > 0 && bytesWith > budget.maxBytes)) break;
      }
      if (index > first) {
        const to = run.ends[run.skip + index - 1]!;
        appendRawRun(raw, run.bytes.subarray(from, to), index - first, run.firstLsn + index - 1);
      }
      if (index < _count(run)) return true;
      lsn = _lastLsn(run) + 1;
    }
    return false;
  }

  /** Drops every frame with LSN ≤ `lsn` (after a prune). */
  dropThrough(lsn: number): void {
    while (this.#count > 0 && this.firstLsn! <= lsn) {
      const oldest = this.#runs.at(0)!;
      if (_lastLsn(oldest) <= lsn) {
        this.#evictOldestRun();
        continue;
      }
      const dropped = lsn - oldest.firstLsn + 1;
      oldest.start = oldest.ends[oldest.skip + dropped - 1]!;
      oldest.skip += dropped;
      oldest.firstLsn += dropped;
      this.#count -= dropped;
    }
  }

  /** Drops every frame with LSN > `lsn` (after a truncation), newest first. */
  dropAfter(lsn: number): void {
    while (this.#count > 0 && this.lastLsn! > lsn) {
      const newest = this.#runs.at(this.#runs.length - 1)!;
      const keep = Math.max(0, lsn - newest.firstLsn + 1);
      this.#count -= _count(newest) - keep;
      if (keep > 0) {
        newest.ends.length = newest.skip + keep;
      } else {
        this.#runs.pop();
        this.#bytes -= newest.bytes.byteLength;
      }
    }
  }

  /** Drops everything. */
  clear(): void {
    this.#runs = new _Queue();
    this.#count = 0;
    this.#bytes = 0;
  }
}

/** Frame `index` of `run`, built from its stored bytes (CRC checked: a damaged buffer shows). */
function _frameAt(run: _Run, index: number): DecodedFrame {
  const start = _startOf(run, index);
  const end = run.ends[run.skip + index]!;
  const result = decodeFrame(run.bytes.subarray(0, end), start);
  assert(result.status === "ok", "the tail holds whole, intact frames");
  assert.equal(result.frame.byteLength, end - start, "the tail's frame ends where it was noted");
  return result.frame;
}
