/**
 * Reading a streaming pull (SPEC.md 13.1): the body is v3 frames and RDLC control records,
 * decoded and CRC-checked in one pass per received chunk (`decodeStreamRun`), with the bytes of an
 * item split across chunks carried over to the next one. A stream always opens with a control
 * record: an answer that does not is a plain pull from a server that does not stream.
 *
 * @module
 */

import { FerryResponseError, StreamRefusedError } from "../core/errors.ts";
import { concatBytes } from "../core/bytes.ts";
import { STREAM_READ_BUFFER_BYTES } from "../core/client_limits.ts";
import { decodeStreamRun } from "../wal/stream_codec.ts";
import { byobReaderOf, framesPositionOf } from "./responses.ts";
import type { FrameStream, FrameStreamItem } from "./types.ts";

/**
 * The `FrameStream` of a streaming pull's 2xx answer: its media type and position headers checked,
 * and its first item read, which must be a control record; otherwise the body is cancelled and
 * `StreamRefusedError` thrown (the server answered a plain pull: it does not stream).
 */
export async function openFrameStream(response: Response): Promise<FrameStream> {
  const position = await framesPositionOf(response, "stream");
  const reader = new _StreamReader(response.body!);
  const items = reader.items();
  const first = await items.next();
  if (first.done || first.value.kind !== "control") {
    await reader.cancel();
    throw new StreamRefusedError("the server answered a plain pull, not a stream", {
      first: first.done ? "end of body" : first.value.kind,
    });
  }
  return {
    position,
    cancel: () => reader.cancel(),
    async *[Symbol.asyncIterator]() {
      yield first.value;
      yield* items;
    },
  };
}

/** The items of one stream body, and a way to stop reading it from outside the loop. */
class _StreamReader {
  #reader: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  /** Where a BYOB read lands: handed back by each read, reused by the next. */
  #buffer: ArrayBuffer | undefined;
  #cancelled = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = byobReaderOf(body) ?? body.getReader();
    if (this.#reader instanceof ReadableStreamBYOBReader) {
      this.#buffer = new ArrayBuffer(STREAM_READ_BUFFER_BYTES);
    }
  }

  /**
   * The next chunk of the body, or undefined at its end. A fetch body read by a default reader
   * allocates a fresh 64 KiB buffer per chunk, however small the chunk (a live stream's are a few
   * hundred bytes: that allocation and its GC were most of a streaming replica's CPU); a BYOB read
   * lands in one reused buffer and only the bytes received are copied out.
   */
  async #read(): Promise<Uint8Array | undefined> {
    if (this.#buffer === undefined) {
      const { done, value } = await (this.#reader as ReadableStreamDefaultReader<Uint8Array>)
        .read();
      return done ? undefined : value;
    }
    const reader = this.#reader as ReadableStreamBYOBReader;
    const { done, value } = await reader.read(new Uint8Array(this.#buffer));
    if (value === undefined) return undefined;
    this.#buffer = value.buffer as ArrayBuffer;
    return done ? undefined : value.slice();
  }

  /** Cancels the body; a read waiting for bytes ends at once. */
  async cancel(): Promise<void> {
    this.#cancelled = true;
    await this.#reader.cancel().catch(() => undefined);
  }

  /**
   * Each decoded item, in order; a damaged one is yielded as "corrupt", last. The body is
   * cancelled whenever the loop stops before its end.
   */
  async *items(): AsyncGenerator<FrameStreamItem, void, undefined> {
    let pending: Uint8Array | undefined;
    let consumed = 0;
    let finished = false;
    try {
      for (;;) {
        const value = await this.#read();
        if (value === undefined) break;
        const bytes = pending === undefined ? value : concatBytes([pending, value]);
        const run = decodeStreamRun(bytes);
        yield* run.items;
        if (run.stop?.status === "corrupt") {
          yield { kind: "corrupt", offset: consumed + run.offset, reason: run.stop.reason };
          return;
        }
        consumed += run.offset;
        pending = run.offset < bytes.byteLength ? bytes.subarray(run.offset) : undefined;
      }
      finished = true;
      if (pending !== undefined && !this.#cancelled) {
        throw new FerryResponseError(
          `stream: the body ended ${pending.byteLength} bytes into an item (cut on the way)`,
          { offset: consumed },
        );
      }
    } finally {
      if (!finished) await this.#reader.cancel().catch(() => undefined);
    }
  }
}
