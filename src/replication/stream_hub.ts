/**
 * The streaming pulls of one primary (SPEC.md 13.1): opens them, fans each durable group commit
 * out to them (one chunk per group commit per stream: the buffer the appender wrote), sends
 * control records while they are idle, and ends them: past their unsent-bytes cap, after
 * `stream_max_ms`, on shutdown, on fencing, when their slot is invalidated or dropped, or when the
 * client goes away.
 *
 * A stream is not a sign of life: it never touches the registry's last-seen time (a replica is
 * seen by its requests and acks, SPEC.md 5), it only notes what was sent.
 *
 * In a cluster (SPEC.md 13.4) an edge's stream carries only frames at or below the commit LSN:
 * `commitAdvanced()` (called by `Primary.commitAdvanced`) lets each such stream send what the
 * commit LSN now covers, and control records carry the commit LSN.
 *
 * @module
 */

import assert from "../core/assert.ts";
import { OverloadedError, UnavailableError } from "../core/errors.ts";
import {
  STREAM_BATCH_MS_DEFAULT,
  STREAM_CONTROL_INTERVAL_MS,
  STREAM_MAX_MS_DEFAULT,
  STREAM_TICK_MS,
  STREAM_UNSENT_BYTES_DEFAULT,
  STREAMS_MAX,
} from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import { isLive } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import { controlWithSlots } from "./failover_slots_source.ts";
import type { GroupCommit } from "../wal/commit_feed.ts";
import type { RawFrames } from "../wal/range_read.ts";
import type { Spool } from "../wal/spool.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import type { PullServer } from "./pulls.ts";
import type { ReplicaRegistry } from "./registry.ts";
import { type StreamEndReason, WalStream } from "./wal_stream.ts";
import { CommitBatcher, REAL_TIMER } from "./commit_batcher.ts";

export type { StreamEndReason };

/** Where a replica's slot stands, as a stream sees it. */
export type SlotView = "live" | "invalidated" | "missing";

/** What the hub works with. */
export interface StreamHubOptions {
  /** The spool's current LSN. */
  currentLsn: () => number;
  /**
   * In a cluster (SPEC.md 13.4): true when a stream of `replicaId` gets only committed frames
   * (an edge). Absent: no stream is gated.
   */
  isGated?: (replicaId: string | undefined) => boolean;
  /** The commit LSN (never above the current LSN): the last LSN a gated stream may send. */
  commitLsn?: () => number;
  /** The hub closed for good (shutdown or fencing): what else must end with it. */
  onClose?: (reason: StreamEndReason) => void;
  /** Subscribes to the spool's group commits (`Spool.onCommit`); returns the unsubscribe. */
  onCommit: (listener: (commit: GroupCommit) => void) => () => void;
  /** Records after `sinceLsn` as stored, at most about `maxBytes` (a pull's read and errors). */
  read: (sinceLsn: number, maxCount: number, maxBytes: number) => Promise<RawFrames>;
  /** The control record to send now. */
  control: () => ControlRecord;
  /** Frames through `lsn` went to `replicaId` (not a sign of life). */
  noteSent: (replicaId: string, lsn: number) => void;
  slotOf: (replicaId: string) => SlotView;
  unsentBytesMax: number;
  maxMs: number;
  logger: Logger;
  /** Wall clock in ms (control-record idleness, stream ages in logs). */
  clock: () => number;
  /**
   * The fencing hook (SPEC.md 13.4): checked before any frame is served; when it answers false
   * the stream ends ("fenced"). Always true until HA brings a lease to check.
   */
  mayServe?: () => boolean;
  /** A control record goes at least this often even while frames flow (absent: only when idle). */
  controlEveryMs?: number;
  /** Group commits go to the streams at most once per this interval (`CommitBatcher`; 0: each). */
  batchMs?: number;
}

/** A stream to open: who asks, from where, and what ends it early. */
export interface StreamOpenRequest {
  replicaId?: string;
  startLsn: number;
  /** Records and bytes of each catch-up read. */
  maxCount: number;
  maxBytes: number;
  /** The request's signal: its abort (the client went away) ends the stream at once. */
  signal?: AbortSignal;
}

/** The open streams of one primary. */
export class StreamHub {
  #options: StreamHubOptions;
  #streams = new Set<WalStream>();
  #unsubscribe: (() => void) | undefined;
  #nextId = 1;
  #closedReason: StreamEndReason | undefined;
  #endedByReason: Record<string, number> = {};
  /** Per stream: what to undo when it ends (its max-age timer, its abort listener). */
  #cleanups = new Map<WalStream, () => void>();
  #batcher: CommitBatcher;

  constructor(options: StreamHubOptions) {
    this.#options = options;
    // The hub's clock times the batches (a test's stands still); the timer is real.
    const timer = { now: options.clock, schedule: REAL_TIMER.schedule };
    const batchMs = options.batchMs ?? STREAM_BATCH_MS_DEFAULT;
    this.#batcher = new CommitBatcher(batchMs, (commit) => {
      for (const open of this.#streams) open.deliver(commit);
    }, timer);
  }

  /** Streams open now. */
  get size(): number {
    return this.#streams.size;
  }

  /** Streams ended since start, by reason. */
  endedByReason(): Record<string, number> {
    return { ...this.#endedByReason };
  }

  /**
   * The commit LSN (SPEC.md 13.4): the last LSN an edge's stream may carry, and the bound of what
   * else an edge may see (the segment list); the current LSN outside a cluster.
   */
  commitLsn(): number {
    return (this.#options.commitLsn ?? this.#options.currentLsn)();
  }

  /** Streams of `replicaId` open now. */
  countOf(replicaId: string): number {
    let count = 0;
    for (const stream of this.#streams) if (stream.replicaId === replicaId) count += 1;
    return count;
  }

  /**
   * Opens a stream from `request.startLsn` (already planned: term checked, resume decided) and
   * returns its body once the opening control record and the first catch-up read are queued. A
   * failed first read throws its error; so does a hub past `STREAMS_MAX` or shut down.
   */
  async open(request: StreamOpenRequest): Promise<ReadableStream<Uint8Array>> {
    if (this.#closedReason !== undefined) {
      throw new UnavailableError(`streams are closed (${this.#closedReason})`);
    }
    if (this.#streams.size >= STREAMS_MAX) {
      throw new OverloadedError(`ferry serves at most ${STREAMS_MAX} streams`);
    }
    const stream = this.#newStream(request);
    const { signal } = request;
    const onAbort = () => stream.end("client_gone");
    this.#add(stream);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => stream.end("max_age"), this.#options.maxMs);
    this.#cleanups.set(stream, () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    });
    if (signal?.aborted) stream.end("client_gone");
    await stream.begin();
    this.#options.logger.info("stream.opened", {
      stream: stream.id,
      replica_id: request.replicaId,
      start_lsn: request.startLsn,
      current_lsn: this.#options.currentLsn(),
    });
    return stream.body;
  }

  #newStream(request: StreamOpenRequest): WalStream {
    const options = this.#options;
    const replicaId = request.replicaId;
    const gated = options.isGated?.(replicaId) ?? false;
    return new WalStream({
      id: this.#nextId++,
      replicaId,
      startLsn: request.startLsn,
      servableLsn: gated ? (options.commitLsn ?? options.currentLsn) : options.currentLsn,
      read: (since, through) => {
        // LSNs follow each other without gaps: a count caps the read at `through`.
        assert(through > since, "a stream reads only what it may send");
        return options.read(since, Math.min(request.maxCount, through - since), request.maxBytes);
      },
      control: options.control,
      unsentBytesMax: options.unsentBytesMax,
      mayServe: options.mayServe ?? (() => true),
      onSent: replicaId === undefined ? () => {} : (lsn) => options.noteSent(replicaId, lsn),
      onEnd: (stream, reason, error) => this.#ended(stream, reason, error),
      clock: options.clock,
    });
  }

  #add(stream: WalStream): void {
    this.#streams.add(stream);
    this.#unsubscribe ??= this.#options.onCommit((commit) => this.#batcher.push(commit));
  }

  #ended(stream: WalStream, reason: StreamEndReason, error: unknown): void {
    if (!this.#streams.delete(stream)) return;
    this.#cleanups.get(stream)?.();
    this.#cleanups.delete(stream);
    if (this.#streams.size === 0) {
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
      this.#batcher.clear();
    }
    this.#endedByReason[reason] = (this.#endedByReason[reason] ?? 0) + 1;
    const fields = {
      stream: stream.id,
      replica_id: stream.replicaId,
      reason,
      start_lsn: stream.startLsn,
      sent_lsn: stream.sentLsn,
      sent_bytes: stream.sentBytes,
      lived_ms: this.#options.clock() - stream.openedAtMs,
    };
    if (reason === "read_failed") this.#options.logger.warn("stream.ended", { ...fields, error });
    else this.#options.logger.info("stream.ended", fields);
  }

  /**
   * The periodic look (every `STREAM_TICK_MS` from `Primary.start`): a control record on each
   * stream idle long enough that the next tick would be late, and the end of each stream whose
   * replica's slot was invalidated or dropped meanwhile.
   */
  tick(): void {
    for (const stream of [...this.#streams]) {
      if (stream.replicaId !== undefined) {
        const slot = this.#options.slotOf(stream.replicaId);
        if (slot !== "live") {
          stream.end(slot === "missing" ? "slot_dropped" : "slot_invalidated");
          continue;
        }
      }
      const everyMs = this.#options.controlEveryMs;
      stream.keepAlive(
        STREAM_CONTROL_INTERVAL_MS - STREAM_TICK_MS,
        everyMs && everyMs - STREAM_TICK_MS,
      );
    }
  }

  /**
   * The commit LSN may have risen (SPEC.md 13.4): each stream sends what it may now (only gated
   * streams can be behind their servable LSN while live).
   */
  commitAdvanced(): void {
    for (const stream of [...this.#streams]) stream.advance();
  }

  /** Ends every stream of `replicaId` (its slot was invalidated or dropped). */
  endFor(replicaId: string, reason: StreamEndReason): void {
    for (const stream of [...this.#streams]) {
      if (stream.replicaId === replicaId) stream.end(reason);
    }
  }

  /**
   * Ends every stream. With `shutdown` (or `fenced`: SPEC.md 13.4's step-down) no new stream
   * opens afterwards.
   */
  endAll(reason: StreamEndReason): void {
    if (reason === "shutdown" || reason === "fenced") {
      this.#closedReason = reason;
      this.#options.onClose?.(reason);
    }
    for (const stream of [...this.#streams]) stream.end(reason);
  }
}

/** The stream hub of a primary, over its spool, slots, pull server and registry. */
export function primaryStreamHub(parts: {
  spool: Spool;
  slots: SlotStore;
  pulls: PullServer;
  registry: ReplicaRegistry;
  control: () => ControlRecord;
  /** A cluster leader's control records carry its edges' slots (SPEC.md 13.4 failover slots). */
  failoverSlots?: boolean;
  members?: ReadonlySet<string>;
  streamMaxMs?: number;
  streamUnsentBytesMax?: number;
  streamBatchMs?: number;
  mayServe?: () => boolean;
  logger: Logger;
  clock: () => number;
}): StreamHub {
  const { spool, slots, pulls, registry } = parts;
  const control = controlWithSlots(parts.control, { ...parts, replicas: () => registry.list() });
  return new StreamHub({
    currentLsn: () => spool.currentLsn(),
    isGated: (id) => pulls.isGated(id),
    commitLsn: () => pulls.commitLsn(),
    onClose: () => pulls.close(),
    onCommit: (listener) => spool.onCommit(listener),
    read: (since, maxCount, maxBytes) => pulls.readRaw(since, maxCount, maxBytes),
    // In a cluster the control records carry the commit LSN (SPEC.md 13.1, 13.4).
    control: pulls.gated ? () => ({ ...control(), commitLsn: pulls.commitLsn() }) : control,
    noteSent: (id, lsn) => registry.noteSent(id, lsn),
    slotOf: (id) => {
      const slot = slots.get(id);
      return slot === undefined ? "missing" : isLive(slot) ? "live" : "invalidated";
    },
    unsentBytesMax: parts.streamUnsentBytesMax ?? STREAM_UNSENT_BYTES_DEFAULT,
    maxMs: parts.streamMaxMs ?? STREAM_MAX_MS_DEFAULT,
    logger: parts.logger,
    clock: parts.clock,
    mayServe: parts.mayServe,
    // The standbys hear of the slots while frames flow too, not only when the stream is idle.
    controlEveryMs: parts.failoverSlots ? STREAM_CONTROL_INTERVAL_MS : undefined,
    batchMs: parts.streamBatchMs,
  });
}
