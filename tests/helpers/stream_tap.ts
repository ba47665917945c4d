/** Reading a streaming pull's body in tests: chunk by chunk, or item by item, carried over cuts. */

import { concatBytes } from "../../src/core/bytes.ts";
import { decodeStreamRun, type StreamItem } from "../../src/wal/stream_codec.ts";
import type { DecodedFrame } from "../../src/wal/frame.ts";
import assert from "node:assert/strict";

/** What a tap has read so far. */
export interface TapRead {
  lsns: number[];
  controls: number;
}

/** A reader of one stream body. */
export class StreamTap {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending = new Uint8Array(0);
  /** Every LSN received, in order, and how many control records. */
  readonly read: TapRead = { lsns: [], controls: 0 };
  /** True once the body ended (cleanly). */
  done = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  /** The next chunk as the server handed it, or undefined at the end. */
  async chunk(): Promise<Uint8Array | undefined> {
    const { done, value } = await this.#reader.read();
    if (done) {
      this.done = true;
      return undefined;
    }
    this.#note(value);
    return value;
  }

  /** Reads until `until(read)` holds or the body ends; returns what was read. */
  async readUntil(until: (read: TapRead) => boolean): Promise<TapRead> {
    while (!until(this.read) && (await this.chunk()) !== undefined) {
      // Each chunk was noted by chunk().
    }
    return this.read;
  }

  /** Reads to the end of the body. */
  rest(): Promise<TapRead> {
    return this.readUntil(() => false);
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }

  #note(chunk: Uint8Array): void {
    const bytes = concatBytes([this.#pending, chunk]);
    const run = decodeStreamRun(bytes);
    if (run.stop?.status === "corrupt") throw new Error(`corrupt stream: ${run.stop.reason}`);
    for (const item of run.items) this.#noteItem(item);
    this.#pending = bytes.slice(run.offset);
  }

  #noteItem(item: StreamItem): void {
    if (item.kind === "control") this.read.controls += 1;
    else this.read.lsns.push(...item.frames.map((frame) => frame.lsn));
  }
}

/** 1..n. */
export function lsnsThrough(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** Polls `check` every few ms until it holds (a guard fails a hung test; nothing is timed). */
export async function eventually(what: string, check: () => boolean): Promise<void> {
  const guardMs = 30_000;
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > guardMs) throw new Error(`never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The whole frames in the first `length` bytes of a stream's `chunks` (a cut loses the rest). */
export function wholeFrames(chunks: readonly Uint8Array[], length: number): DecodedFrame[] {
  const run = decodeStreamRun(concatBytes(chunks).subarray(0, length));
  assert.notEqual(run.stop?.status, "corrupt", "a cut never looks like damage");
  return run.items.flatMap((item) => item.kind === "frames" ? item.frames : []);
}

/** How long `settledWithin` waits before it calls a promise held. */
export const HELD_AFTER_MS = 10_000;

/**
 * "settled" once `promise` settles (resolved or rejected: `result` says which), or "held" when it
 * has not after `HELD_AFTER_MS`: a test of "this ends at once" fails instead of hanging. A bound,
 * not a timing: anything that ends at all ends far inside it.
 */
export async function settledWithin<T>(
  promise: Promise<T>,
): Promise<{ outcome: "settled"; result: PromiseSettledResult<T> } | { outcome: "held" }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const held = new Promise<{ outcome: "held" }>((resolve) => {
    timer = setTimeout(() => resolve({ outcome: "held" }), HELD_AFTER_MS);
  });
  const settled = Promise.allSettled([promise]).then(([result]) => ({
    outcome: "settled" as const,
    result: result!,
  }));
  try {
    return await Promise.race([settled, held]);
  } finally {
    clearTimeout(timer);
  }
}
