/**
 * One streaming pull (SPEC.md 13.1): an opening control record, the records after the start
 * position read from the spool (catch-up), then each later group commit's frames as the one buffer
 * the appender wrote (live), in LSN order, never a frame twice; control records while idle.
 *
 * The stream keeps its own queue of unsent chunks and hands Deno one chunk per read (a body with
 * no queue of its own; queued chunks go together, up to `STREAM_COALESCE_BYTES_MAX`), so that it
 * always knows its unsent bytes, and so that ending it drops them at once and closes the body
 * cleanly at a frame boundary. A body that errors would be printed by Deno's server as an
 * unstructured line, and bytes queued inside the body could not be dropped; closing cleanly costs
 * nothing since the client resumes from its last LSN either way.
 *
 * A stream sends nothing past its servable LSN: the current LSN, or for an edge in a cluster the
 * commit LSN (SPEC.md 13.4). A group commit that goes past it is not sent as delivered: the
 * stream reads from the spool up to the servable LSN (the committed prefix of the group commit),
 * and reads on each time `advance()` says the commit LSN rose, so still never a frame twice.
 *
 * @module
 */

import { concatBytes } from "../core/bytes.ts";
import { STREAM_COALESCE_BYTES_MAX } from "../core/limits.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import { encodeControlRecord } from "../wal/stream_codec.ts";
import type { GroupCommit } from "../wal/commit_feed.ts";
import type { RawFrames } from "../wal/range_read.ts";

/** Why a stream ended (the `reason` of `stream.ended`). */
export type StreamEndReason =
  | "unsent_bytes_cap"
  | "max_age"
  | "shutdown"
  | "fenced"
  | "slot_invalidated"
  | "slot_dropped"
  | "client_gone"
  | "read_failed";

/** What one stream needs from its hub. */
export interface WalStreamOptions {
  id: number;
  replicaId: string | undefined;
  startLsn: number;
  /**
   * The last LSN the stream may send now: the spool's current LSN, or for an edge in a cluster the
   * commit LSN (a stream is live once it has sent everything through it).
   */
  servableLsn: () => number;
  /** Records after `sinceLsn` through at most `throughLsn`, as stored (errors as a pull's). */
  read: (sinceLsn: number, throughLsn: number) => Promise<RawFrames>;
  control: () => ControlRecord;
  /** Unsent bytes past which the stream ends (a reader that does not keep up resumes later). */
  unsentBytesMax: number;
  /** Fencing (SPEC.md 13.4): checked before frames are served; false ends the stream. */
  mayServe: () => boolean;
  /** Frames through `lsn` were queued for the client. */
  onSent: (lsn: number) => void;
  onEnd: (stream: WalStream, reason: StreamEndReason, error?: unknown) => void;
  clock: () => number;
}

type _Mode = "catchup" | "live" | "ended";

/** One open stream: its body, and what the hub tells it. */
export class WalStream {
  readonly id: number;
  readonly replicaId: string | undefined;
  readonly startLsn: number;
  readonly openedAtMs: number;
  readonly body: ReadableStream<Uint8Array>;
  #options: WalStreamOptions;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #mode: _Mode = "catchup";
  #sentLsn: number;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Deno asked for a chunk and has not got one yet. */
  #wanted = false;
  #reading = false;
  #lastPushMs: number;
  #lastControlMs = -Infinity;
  #sentBytes = 0;

  constructor(options: WalStreamOptions) {
    this.#options = options;
    this.id = options.id;
    this.replicaId = options.replicaId;
    this.startLsn = options.startLsn;
    this.#sentLsn = options.startLsn;
    this.openedAtMs = this.#lastPushMs = options.clock();
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        this.#wanted = true;
        this.#flush();
      },
      cancel: () => this.end("client_gone"),
    }, { highWaterMark: 0 });
  }

  /** LSN of the last frame queued for the client. */
  get sentLsn(): number {
    return this.#sentLsn;
  }

  /** Bytes queued and not yet handed to the server. */
  get unsentBytes(): number {
    return this.#queuedBytes;
  }

  /** Bytes handed to the server so far. */
  get sentBytes(): number {
    return this.#sentBytes;
  }

  get ended(): boolean {
    return this.#mode === "ended";
  }

  /**
   * Queues the opening control record and the first catch-up read. A failed first read throws
   * (the request is answered with its error instead of a stream).
   */
  async begin(): Promise<void> {
    this.#pushControl();
    const error = await this.#readMore();
    if (error !== undefined) throw error;
  }

  /**
   * A group commit is durable: queue its buffer when it is the next one and may be served whole,
   * as one chunk; otherwise read what may be served from the spool.
   */
  deliver(commit: GroupCommit): void {
    if (this.#mode !== "live" || commit.lastLsn <= this.#sentLsn) return;
    if (!this.#options.mayServe()) return this.end("fenced");
    if (commit.firstLsn !== this.#sentLsn + 1 || commit.lastLsn > this.#options.servableLsn()) {
      // Never a gap, never past the commit LSN: read from the spool, as when catching up.
      return this.#catchUp();
    }
    const bytes = commit.bytes.byteLength;
    if (this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.#options.unsentBytesMax) {
      return this.end("unsent_bytes_cap");
    }
    this.#push(commit.bytes);
    this.#noteSent(commit.lastLsn);
    this.#flush();
  }

  /** The servable LSN may have risen (an edge's commit LSN): send what it now covers. */
  advance(): void {
    if (this.#mode === "live" && this.#sentLsn < this.#options.servableLsn()) this.#catchUp();
  }

  /**
   * Sends a control record when nothing was queued for `idleMs`, or when the last control record
   * went `controlEveryMs` ago (a cluster leader's carry the failover slots).
   */
  keepAlive(idleMs: number, controlEveryMs = Infinity): void {
    if (this.#mode === "ended") return;
    const nowMs = this.#options.clock();
    if (nowMs - this.#lastPushMs < idleMs && nowMs - this.#lastControlMs < controlEveryMs) return;
    this.#pushControl();
    this.#flush();
  }

  /** Ends the stream (idempotent): drops what is unsent and closes the body at a frame boundary. */
  end(reason: StreamEndReason, error?: unknown): void {
    if (this.#mode === "ended") return;
    this.#mode = "ended";
    this.#queue = [];
    this.#queuedBytes = 0;
    try {
      this.#controller.close();
    } catch (closeError) {
      // Already closed or cancelled by the server: nothing left to close.
      if (!(closeError instanceof TypeError)) throw closeError;
    }
    this.#options.onEnd(this, reason, error);
  }

  /** Reads from the spool (now, or once the queue runs dry) until live again. */
  #catchUp(): void {
    this.#mode = "catchup";
    if (this.#queue.length === 0) void this.#readMore();
  }

  #pushControl(): void {
    this.#push(encodeControlRecord(this.#options.control()));
    this.#lastControlMs = this.#lastPushMs;
  }

  #push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.byteLength;
    this.#lastPushMs = this.#options.clock();
  }

  #noteSent(lsn: number): void {
    this.#sentLsn = lsn;
    this.#options.onSent(lsn);
  }

  /** Hands the server the next chunk when it asked for one; reads on when the queue runs dry. */
  #flush(): void {
    if (this.#wanted && this.#queue.length > 0) {
      const chunk = this.#takeChunk();
      this.#queuedBytes -= chunk.byteLength;
      this.#sentBytes += chunk.byteLength;
      this.#wanted = false;
      this.#controller.enqueue(chunk);
    }
    if (this.#queue.length === 0 && this.#mode === "catchup") void this.#readMore();
  }

  /**
   * The queue's head, or its first chunks as one copy of at most `STREAM_COALESCE_BYTES_MAX`:
   * each chunk handed over costs a turn of the server's body pump and a frame of the response,
   * whatever its size. Chunks hold whole frames and control records, so the order and the
   * boundaries stay as queued.
   */
  #takeChunk(): Uint8Array {
    const queue = this.#queue;
    let count = 1;
    let bytes = queue[0]!.byteLength;
    while (count < queue.length && bytes + queue[count]!.byteLength <= STREAM_COALESCE_BYTES_MAX) {
      bytes += queue[count]!.byteLength;
      count += 1;
    }
    if (count === 1) return queue.shift()!;
    return concatBytes(queue.splice(0, count), bytes);
  }

  /**
   * One catch-up read (at most one at a time, and only once the queue ran dry, so a catch-up keeps
   * at most one read's bytes in memory); live once everything through the servable LSN is queued.
   * Returns the error of a failed read, after ending the stream with it.
   */
  async #readMore(): Promise<unknown> {
    if (this.#reading || this.#mode !== "catchup") return undefined;
    const servableLsn = this.#options.servableLsn();
    if (this.#sentLsn >= servableLsn) {
      this.#mode = "live";
      return undefined;
    }
    if (!this.#options.mayServe()) return this.end("fenced");
    this.#reading = true;
    let raw: RawFrames;
    try {
      raw = await this.#options.read(this.#sentLsn, servableLsn);
    } catch (error) {
      this.end("read_failed", error);
      return error;
    } finally {
      this.#reading = false;
    }
    if (this.ended) return undefined;
    if (raw.count === 0) {
      // Behind, yet nothing to read: never spin on it (the spool refuses reads only when closing).
      this.end("read_failed");
      return undefined;
    }
    for (const chunk of raw.chunks) this.#push(chunk);
    this.#noteSent(raw.lastLsn);
    // The check and the switch happen in one turn: every later group commit is delivered live.
    if (this.#sentLsn >= this.#options.servableLsn()) this.#mode = "live";
    this.#flush();
    return undefined;
  }
}
