/**
 * A replica that keeps the log (SPEC.md 13.3, `--keep-wal`, `--serve-wal`): follows its upstream
 * (a primary or another relay) with streams, or long-polls when streams do not work, and writes
 * every frame it receives into its own spool with `Spool.appendFrames`: the same LSNs, the same
 * bytes, durable before the ack says so. Its state is materialised from that spool, as a primary's
 * is, so what it serves downstream (pulls, streams, segments, snapshots) is always its own durable
 * log and state, never a frame it has not made durable.
 *
 * Receivers fence: an upstream whose term is lower than one seen is refused, and so is a frame whose
 * term is lower than the newest kept (a log's terms never go down): both are `stale_term`.
 * A gap, a damaged frame, or a spool error stops the run and the loop resumes from the spool's
 * LSN after a backoff. A 409 `rebootstrap_required` (the upstream no longer holds what follows
 * this log) stops the follower: the log cannot jump, so the operator rebuilds this node (its log
 * and state removed) and it starts over; the state says so, and it keeps serving what it holds.
 *
 * @module
 */

import type { FerryClient } from "../client/client.ts";
import { type MirroredSlot, parseMirroredSlots } from "../model/mirrored_slot.ts";
import { FerryHttpError, LsnGapError, StaleUpstreamError } from "../core/errors.ts";
import {
  REPLICA_BACKOFF_MS_MAX,
  REPLICA_BACKOFF_MS_MIN,
  REPLICA_PULL_GRACE_MS,
  REPLICA_PULL_RECORDS,
  REPLICA_PULL_WAIT_MS,
  REPLICA_STREAM_ACK_MS,
  REPLICA_STREAM_IDLE_MS,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { Backoff } from "../core/backoff.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { Spool } from "../wal/spool.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import { followStream, StreamPolicy } from "./stream_follower.ts";

/** Where the follower stands. */
export type FollowerState =
  | "connecting"
  | "healthy"
  | "apply_error"
  | "stale_term"
  | "rebootstrap_required";

/** Options of `LogFollower`. */
export interface LogFollowerOptions {
  client: FerryClient;
  replicaId: string;
  region?: string;
  upstreamUrl: string;
  spool: Spool;
  /** The LSN this node's state has applied (acked as `applied_lsn`). */
  appliedLsn: () => number;
  streamPulls?: boolean;
  pullWaitMs?: number;
  backoffMsMin?: number;
  backoffMsMax?: number;
  streamAckMs?: number;
  /**
   * The failover slots (SPEC.md 13.4) of each control record that carries them, malformed entries
   * left out: a cluster standby keeps the WAL they need.
   */
  onSlots?: (slots: MirroredSlot[]) => void;
  /** The upstream's commit LSN rose (a cluster leader's control records carry it, SPEC.md 13.4). */
  onCommitLsn?: (lsn: number) => void;
  logger?: Logger;
}

/** What `/v1/status` shows of the follower. */
export interface FollowerStatus {
  url: string;
  state: FollowerState;
  last_error: string | null;
  upstream_current_lsn: number;
  durable_lsn: number;
  term: number;
  frames_kept_total: number;
}

/** Follows the upstream into this node's spool (see the module comment). */
export class LogFollower {
  #options: LogFollowerOptions;
  #spool: Spool;
  #logger: Logger;
  #streams: StreamPolicy;
  #state: FollowerState = "connecting";
  #lastError: string | null = null;
  #registered = false;
  #termSeen: number;
  #lastFrameTerm: number;
  #upstreamLsn = 0;
  #upstreamCommitLsn = 0;
  #kept = 0;
  #backoff: Backoff;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(options: LogFollowerOptions, lastTerm: number) {
    this.#options = options;
    this.#spool = options.spool;
    this.#logger = options.logger ?? silentLogger;
    this.#termSeen = lastTerm;
    this.#lastFrameTerm = lastTerm;
    this.#backoff = new Backoff(
      options.backoffMsMin ?? REPLICA_BACKOFF_MS_MIN,
      options.backoffMsMax ?? REPLICA_BACKOFF_MS_MAX,
    );
    this.#streams = new StreamPolicy({
      enabled: options.streamPulls ?? true,
      logger: this.#logger,
    });
  }

  /** The highest term this node has seen: of its last frame, or its upstream's. */
  get term(): number {
    return this.#termSeen;
  }

  /** The term of the newest frame kept (0 before any). */
  get lastFrameTerm(): number {
    return this.#lastFrameTerm;
  }

  /** The highest commit LSN the upstream's control records gave (0 before any). */
  get upstreamCommitLsn(): number {
    return this.#upstreamCommitLsn;
  }

  /** A cluster election saw `term` (SPEC.md 13.4): frames of lower terms are refused from now. */
  seeTerm(term: number): void {
    this.#termSeen = Math.max(this.#termSeen, term);
  }

  get state(): FollowerState {
    return this.#state;
  }

  status(): FollowerStatus {
    return {
      url: this.#options.upstreamUrl,
      state: this.#state,
      last_error: this.#lastError,
      upstream_current_lsn: this.#upstreamLsn,
      durable_lsn: this.#spool.currentLsn(),
      term: this.#termSeen,
      frames_kept_total: this.#kept,
    };
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted && this.#state !== "rebootstrap_required") {
      try {
        await this.#step();
      } catch (error) {
        if (signal.aborted) break;
        await this.#handleError(error);
      }
    }
  }

  async #step(): Promise<void> {
    if (!this.#registered) {
      const registered = await this.#options.client.register(this.#options.replicaId, {
        region: this.#options.region,
        sinceLsn: this.#spool.currentLsn(),
      });
      this.#upstreamLsn = registered.currentLsn;
      // Receivers fence (SPEC.md 13.4): an upstream whose term is older than one seen is stale.
      if (registered.term < this.#termSeen) {
        throw new StaleUpstreamError(registered.term, this.#termSeen);
      }
      this.#termSeen = registered.term;
      this.#registered = true;
    }
    if (this.#streams.useStream()) {
      const end = await followStream(this.#streams, {
        client: this.#options.client,
        request: this.#request(),
        signal: this.#stop.signal,
        ackEveryMs: this.#options.streamAckMs ?? REPLICA_STREAM_ACK_MS,
        idleMs: REPLICA_STREAM_IDLE_MS,
        apply: (frames, corrupt) => this.#keep(frames, corrupt),
        ack: () => this.#ack(),
        primaryAt: (lsn) => void (this.#upstreamLsn = Math.max(this.#upstreamLsn, lsn)),
        control: (record) => this.#control(record),
        opened: () => this.#backoff.reset(),
        logger: this.#logger,
      });
      if (end === "halted") await this.#backoffWait();
      else if (end === "ended") this.#backoff.reset();
      return;
    }
    await this.#poll();
  }

  #control(record: ControlRecord): void {
    if (record.commitLsn > this.#upstreamCommitLsn) {
      this.#upstreamCommitLsn = record.commitLsn;
      this.#options.onCommitLsn?.(record.commitLsn);
    }
    const onSlots = this.#options.onSlots;
    if (onSlots && record.slots !== undefined) onSlots(parseMirroredSlots(record.slots));
  }

  async #poll(): Promise<void> {
    const holdMs = this.#state === "healthy"
      ? (this.#options.pullWaitMs ?? REPLICA_PULL_WAIT_MS)
      : 0;
    const pull = await this.#options.client.pullFrames({
      ...this.#request(),
      awaitTimeoutMs: holdMs,
      signal: AbortSignal.any([
        this.#stop.signal,
        AbortSignal.timeout(holdMs + REPLICA_PULL_GRACE_MS),
      ]),
    });
    this.#upstreamLsn = Math.max(this.#upstreamLsn, pull.currentLsn);
    const { halted } = await this.#keep(pull.frames, pull.corrupt);
    await this.#ack();
    if (halted) await this.#backoffWait();
    else this.#backoff.reset();
  }

  #request() {
    return {
      replicaId: this.#options.replicaId,
      sinceLsn: this.#spool.currentLsn(),
      maxCount: REPLICA_PULL_RECORDS,
      // The term of the record at `since_lsn`: the upstream judges the position by it.
      term: this.#lastFrameTerm > 0 ? this.#lastFrameTerm : undefined,
    };
  }

  /**
   * Keeps the frames that follow the spool's last LSN (durable before this resolves); one with a
   * lower term than seen, a gap, or a damaged frame halts the run after the frames before it.
   */
  async #keep(
    frames: DecodedFrame[],
    corrupt?: { offset: number; reason: string },
  ): Promise<{ halted: boolean }> {
    const fresh = frames.filter((frame) => frame.lsn > this.#spool.currentLsn());
    // A log's terms never go down: an older term after a newer one is a stale leader's frame.
    let highest = this.#lastFrameTerm;
    const stale = fresh.findIndex((frame) =>
      frame.term < (highest = Math.max(highest, frame.term))
    );
    const run = stale === -1 ? fresh : fresh.slice(0, stale);
    try {
      if (run.length > 0) await this.#spool.appendFrames(run);
    } catch (error) {
      if (!(error instanceof LsnGapError)) throw error;
      this.#setState("apply_error", error.message);
      return { halted: true };
    }
    this.#kept += run.length;
    if (run.length > 0) this.#lastFrameTerm = run[run.length - 1]!.term;
    for (const frame of run) this.#termSeen = Math.max(this.#termSeen, frame.term);
    if (stale !== -1) {
      const frame = fresh[stale]!;
      const kept = this.#lastFrameTerm;
      this.#setState("stale_term", `frame ${frame.lsn} has term ${frame.term} < ${kept}`);
      return { halted: true };
    }
    if (corrupt) {
      const where = `frame after LSN ${this.#spool.currentLsn()}`;
      this.#setState("apply_error", `${where} failed its check: ${corrupt.reason}`);
      return { halted: true };
    }
    this.#setState("healthy");
    return { halted: false };
  }

  async #ack(): Promise<void> {
    await this.#options.client.ack(this.#options.replicaId, {
      appliedLsn: Math.min(this.#options.appliedLsn(), this.#spool.currentLsn()),
      durableLsn: this.#spool.currentLsn(),
    });
  }

  async #handleError(error: unknown): Promise<void> {
    if (error instanceof FerryHttpError && error.code === "rebootstrap_required") {
      this.#setState(
        "rebootstrap_required",
        `the upstream no longer holds the records after LSN ${this.#spool.currentLsn()}: ` +
          "rebuild this node (remove its data directory) to start over",
      );
      return;
    }
    const termAnswer = error instanceof FerryHttpError &&
      (error.code === "stale_term" || error.code === "term_ahead");
    if (termAnswer || error instanceof StaleUpstreamError) {
      this.#setState("stale_term", error.message);
    } else {
      this.#registered = false;
      this.#setState("connecting", (error as Error).message);
    }
    await this.#backoffWait(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
  }

  #backoffWait(atLeastMs?: number): Promise<void> {
    return this.#backoff.wait(this.#stop.signal, atLeastMs);
  }

  #setState(state: FollowerState, error?: string): void {
    if (state !== this.#state) {
      const level = state === "healthy" || state === "connecting" ? "info" : "error";
      this.#logger[level]("relay.upstream_state", {
        from: this.#state,
        to: state,
        error,
        durable_lsn: this.#spool.currentLsn(),
        upstream_current_lsn: this.#upstreamLsn,
      });
      this.#state = state;
    }
    if (error !== undefined) this.#lastError = error;
  }
}
