/**
 * The replica role (SPEC.md 7, 8, 9.7, 13.1): stream raw frames (`stream_follower.ts`; long-polls
 * when streams do not work) → check every CRC → judge each frame (`planApply`) → apply into this
 * replica's own Deno KV (records and applied LSN move together in each atomic commit) → ack
 * applied and durable (while streaming, at least every 2 s). On 409 `rebootstrap_required`
 * it loads a snapshot into a fresh KV while still serving reads from the old one, then swaps
 * in-process and carries on from the snapshot's start. A re-bootstrap that fails (the slot pin
 * lost, the primary down past the snapshot's attempts, a full disk) is logged, shown in the status,
 * backed off and started over: nothing but `stop()` ends the loop.
 *
 * The data directory's files are kept by `store_dir.ts`; the snapshot is read by
 * `snapshot_loader.ts`.
 *
 * @module
 */

import { denoFileSystem, type FileSystem } from "../core/files.ts";
import { FerryHttpError } from "../core/errors.ts";
import type { KvState, StateEntry } from "../state/kv_state.ts";
import {
  REPLICA_BACKOFF_MS_MAX,
  REPLICA_BACKOFF_MS_MIN,
  REPLICA_PULL_GRACE_MS,
  REPLICA_PULL_RECORDS,
  REPLICA_PULL_WAIT_MS,
  REPLICA_SNAPSHOT_ATTEMPTS_MAX,
  REPLICA_STREAM_ACK_MS,
  REPLICA_STREAM_IDLE_MS,
  UPSTREAM_LOOK_MS,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { LsnSignal } from "../state/lsn_signal.ts";
import type { StateReader } from "../state/reader.ts";
import { type ApplierPosition, type ApplyStop, planApply, stopOutcome } from "./apply_plan.ts";
import { FerryClient } from "../client/client.ts";
import { sleep } from "../core/waiter.ts";
import { Backoff } from "../core/backoff.ts";
import { openCurrentStore } from "./store_dir.ts";
import { loadIntoNewStore } from "./snapshot_loader.ts";
import { RebootstrapProgress } from "./rebootstrap_progress.ts";
import type { ReplicaStateName, ReplicaStatus } from "./status.ts";
import { PrimaryLsn } from "./primary_lsn.ts";
import { followStream, StreamPolicy } from "./stream_follower.ts";
import { applyToStore } from "./apply_store.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { ReplicaRuntimeOptions } from "./runtime_options.ts";
import { catchUpFromSegments } from "./segment_catchup.ts";
import { LiveStore } from "./live_store.ts";
import { Upstreams } from "./upstreams.ts";
import type { SegmentClient } from "../client/segments.ts";

export type { ReplicaRuntimeOptions } from "./runtime_options.ts";

/** A replica: its store, its position, and the loop that keeps it in step with the primary. */
export class ReplicaRuntime implements StateReader {
  readonly applied: LsnSignal;
  #options: ReplicaRuntimeOptions;
  #client: FerryClient;
  #clientFor: (url: string) => FerryClient;
  #segments: SegmentClient | undefined;
  /** The node followed now, and where to move when it fails (`upstreams.ts`). */
  #upstreams: Upstreams;
  #logger: Logger;
  #fs: FileSystem;
  #live: LiveStore;
  #position: ApplierPosition;
  #state: ReplicaStateName = "connecting";
  #lastError: string | null = null;
  #primaryLsn = new PrimaryLsn();
  #timeline = 0;
  #applyErrors = 0;
  #divergences = 0;
  #rebootstraps = 0;
  #appliedRecords = 0;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #backoff: Backoff;
  /** Why the replica must load a snapshot: set from the 409 until a re-bootstrap completes. */
  #rebootstrapReason: string | undefined;
  /** Re-bootstrap attempts since the 409 (each failure starts over with a fresh snapshot). */
  #rebootstrapAttempts = 0;
  /** The current re-bootstrap attempt's progress. */
  #progress: RebootstrapProgress | undefined;
  /** Registered with the primary since the last connection error (register carries the region). */
  #registered = false;
  /** Streams or long-polls (`stream_follower.ts`). */
  #streams: StreamPolicy;

  private constructor(
    options: ReplicaRuntimeOptions,
    opened: { kv: Deno.Kv; store: KvState; index: number; position: ApplierPosition },
  ) {
    this.#options = options;
    this.#clientFor = options.clientFor ??
      ((url) => new FerryClient(url, { token: options.token }));
    this.#client = options.client ?? this.#clientFor(options.primaryUrl);
    this.#segments = options.segments;
    this.#logger = options.logger ?? silentLogger;
    this.#upstreams = new Upstreams(options.upstreamUrls ?? [options.primaryUrl], {
      viewOf: async (url, signal) => {
        const topology = await this.#clientFor(url).topology({ signal });
        return { leader: topology.leader, currentLsn: topology.primary.currentLsn };
      },
      logger: this.#logger,
    });
    this.#fs = options.fs ?? denoFileSystem();
    this.#backoff = new Backoff(
      options.backoffMsMin ?? REPLICA_BACKOFF_MS_MIN,
      options.backoffMsMax ?? REPLICA_BACKOFF_MS_MAX,
    );
    this.#streams = new StreamPolicy({
      enabled: options.streamPulls ?? true,
      logger: this.#logger,
    });
    this.#live = new LiveStore(opened, options.dataDir, this.#logger);
    this.#position = opened.position;
    this.applied = new LsnSignal(opened.position.lastLsn);
  }

  /**
   * Opens the store `CURRENT` names (creating the first), removes stores a crash left behind, and
   * reads the applied position. A damaged store is moved aside and replaced by an empty one, so
   * the replica starts from LSN 0 and catches up from the primary (see `openStore`). Needs read
   * and write access to `dataDir`.
   */
  static async open(options: ReplicaRuntimeOptions): Promise<ReplicaRuntime> {
    const fs = options.fs ?? denoFileSystem();
    const logger = options.logger ?? silentLogger;
    const opened = await openCurrentStore(fs, { dataDir: options.dataDir, logger });
    return new ReplicaRuntime(options, opened);
  }

  // ---- StateReader ----

  appliedLsn(): number {
    return this.#position.lastLsn;
  }

  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    return this.applied.waitFor(lsn, options);
  }

  /** Reads from the live store; during a re-bootstrap that is still the old one (`LiveStore`). */
  get(collection: string, key: string): Promise<StateEntry | undefined> {
    return this.#live.get(collection, key);
  }

  get state(): ReplicaStateName {
    return this.#state;
  }

  status(): ReplicaStatus {
    return {
      role: "replica",
      replica_id: this.#options.replicaId,
      region: this.#options.region ?? null,
      primary_url: this.#upstreams.current,
      upstream_switches_total: this.#upstreams.switches,
      state: this.#state,
      applied_lsn: this.#position.lastLsn,
      durable_lsn: this.#position.lastLsn,
      primary_current_lsn: this.#primaryLsn.lsn,
      term: this.#position.lastTerm,
      timeline: this.#timeline,
      apply_errors_total: this.#applyErrors,
      divergence_total: this.#divergences,
      rebootstraps_total: this.#rebootstraps,
      last_error: this.#lastError,
      applied_records_total: this.#appliedRecords,
      ...(this.#state === "rebootstrapping" && this.#progress
        ? { rebootstrap: this.#progress.view() }
        : {}),
    };
  }

  /** Starts the pull → apply → ack loop. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the loop (a held pull is aborted) and closes the store. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.applied.releaseAll();
    this.#live.close();
  }

  #setState(state: ReplicaStateName, error?: string): void {
    if (state !== this.#state) {
      const level = state === "healthy" || state === "connecting" || state === "rebootstrapping"
        ? "info"
        : "error";
      this.#logger[level]("replica.state", {
        from: this.#state,
        to: state,
        error,
        applied_lsn: this.#position.lastLsn,
      });
    }
    this.#state = state;
    this.#lastError = error ?? (state === "healthy" ? null : this.#lastError);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (this.#state === "divergence" || this.#state === "stale_term") {
        // Fail closed: keep serving reads, apply nothing, until an operator re-bootstraps this replica.
        await sleep(this.#backoff.maxMs, this.#stop.signal);
        continue;
      }
      try {
        if (this.#rebootstrapReason !== undefined) await this.#rebootstrap(this.#rebootstrapReason);
        else await this.#step();
      } catch (error) {
        if (signal.aborted) break;
        await this.#handleError(error);
      }
    }
  }

  /** One pull or one stream, its applies and acks (after registering, once per connection). */
  async #step(): Promise<void> {
    if (!this.#registered) {
      const registered = await this.#client.register(this.#options.replicaId, {
        region: this.#options.region,
        sinceLsn: this.#position.lastLsn,
      });
      this.#primaryLsn.exact(registered.currentLsn);
      this.#registered = true;
      if (this.#segments) await this.#catchUpFromSegments(registered.timeline);
    }
    if (this.#streams.useStream()) {
      await this.#follow();
      this.#upstreams.succeeded();
      return;
    }
    // Only a healthy replica lets the primary hold its pull: a reconnect learns where it stands at once.
    const holdMs = this.#state === "healthy"
      ? (this.#options.pullWaitMs ?? REPLICA_PULL_WAIT_MS)
      : 0;
    const pull = await this.#client.pullFrames({
      ...this.#pullRequest(),
      awaitTimeoutMs: holdMs,
      // A held pull on a dead path must not hang for ever: give up a little after the hold.
      signal: AbortSignal.any([
        this.#stop.signal,
        AbortSignal.timeout(holdMs + REPLICA_PULL_GRACE_MS),
      ]),
    });
    this.#primaryLsn.exact(pull.currentLsn);
    this.#timeline = pull.timeline;
    this.#upstreams.succeeded();
    const { applied, halted } = await this.#applyBatch(pull.frames, pull.corrupt);
    if (applied > 0 || !this.#backoff.atMinimum || halted) await this.#ack();
    if (halted && this.#state !== "divergence") await this.#backoffWait();
    else this.#backoff.reset();
  }

  #pullRequest(): { replicaId: string; sinceLsn: number; maxCount: number; term?: number } {
    return {
      replicaId: this.#options.replicaId,
      sinceLsn: this.#position.lastLsn,
      maxCount: this.#options.pullMaxCount ?? REPLICA_PULL_RECORDS,
      term: this.#position.lastTerm > 0 ? this.#position.lastTerm : undefined,
    };
  }

  /** Follows one stream until it ends (`stream_follower.ts`); the loop resumes from the last LSN. */
  async #follow(): Promise<void> {
    const end = await followStream(this.#streams, {
      client: this.#client,
      request: this.#pullRequest(),
      signal: this.#stop.signal,
      ackEveryMs: this.#options.streamAckMs ?? REPLICA_STREAM_ACK_MS,
      idleMs: this.#options.streamIdleMs ?? REPLICA_STREAM_IDLE_MS,
      apply: (frames, corrupt) => this.#applyBatch(frames, corrupt),
      ack: () => this.#ack(),
      primaryAt: (lsn, timeline) => {
        this.#primaryLsn.exact(lsn);
        this.#timeline = timeline;
      },
      // A stream that opened is a success, as a pull is: a later cut starts from the least wait.
      opened: () => this.#backoff.reset(),
      logger: this.#logger,
    });
    if (end === "halted" && this.#state !== "divergence") await this.#backoffWait();
    else if (end !== "halted") this.#backoff.reset();
  }

  /**
   * Judges pulled or streamed frames (`planApply`) and applies the run (records and applied LSN
   * in one atomic commit each), then sets the state: `apply_error` when a damaged frame ends the
   * run, the stop's state when one stops it, else healthy. `halted`: stop following for now.
   */
  async #applyBatch(
    frames: DecodedFrame[],
    corrupt?: { offset: number; reason: string },
  ): Promise<{ applied: number; halted: boolean }> {
    const plan = planApply(this.#position, frames);
    if (plan.applies.length > 0) {
      await applyToStore(this.#live.store, plan);
      this.#position = plan.position;
      this.#appliedRecords += plan.applies.length;
      this.applied.advance(plan.position.lastLsn);
    }
    if (corrupt) {
      this.#applyErrors += 1;
      const where = `frame after LSN ${this.#position.lastLsn}`;
      this.#setState("apply_error", `${where} failed its check: ${corrupt.reason}`);
    } else if (plan.stop) this.#onStop(plan.stop);
    else this.#setState("healthy");
    const halted = corrupt !== undefined || plan.stop !== undefined;
    return { applied: plan.applies.length, halted };
  }

  /**
   * After a register, the sealed segments this replica lacks (`segment_catchup.ts`), applied and
   * acked slice by slice; one that fails its checks is not applied and fails closed (`apply_error`)
   * as a damaged pull does, then the pulls go on.
   */
  async #catchUpFromSegments(timeline: number): Promise<void> {
    const end = await catchUpFromSegments(this.#position, {
      segments: this.#segments!,
      store: this.#live.store,
      timeline,
      signal: this.#stop.signal,
      logger: this.#logger,
      applied: (position, records) => {
        this.#position = position;
        this.#appliedRecords += records;
        this.applied.advance(position.lastLsn);
        return this.#ack();
      },
    });
    if (end.kind === "done") return;
    if (end.kind === "stop") this.#onStop(end.stop);
    else {
      this.#applyErrors += 1;
      this.#setState("apply_error", end.reason);
    }
    await this.#ack();
    await this.#backoffWait();
  }

  #onStop(stop: ApplyStop): void {
    const outcome = stopOutcome(stop);
    if (outcome.counts === "divergence") this.#divergences += 1;
    if (outcome.counts === "apply_error") this.#applyErrors += 1;
    this.#setState(outcome.state, outcome.error);
  }

  async #ack(): Promise<void> {
    await this.#client.ack(this.#options.replicaId, {
      appliedLsn: this.#position.lastLsn,
      durableLsn: this.#position.lastLsn,
      applyErrorsTotal: this.#applyErrors,
      divergenceTotal: this.#divergences,
    });
  }

  async #handleError(error: unknown): Promise<void> {
    if (this.#rebootstrapReason !== undefined) {
      // While a re-bootstrap is due the loop runs nothing else: this error is its failure.
      await this.#rebootstrapFailed(error);
      return;
    }
    if (error instanceof FerryHttpError && error.code === "rebootstrap_required") {
      this.#beginRebootstrap(error);
      return;
    }
    if (
      error instanceof FerryHttpError &&
      (error.code === "stale_term" || error.code === "term_ahead")
    ) {
      this.#setState("stale_term", error.message);
      return;
    }
    if (error instanceof FerryHttpError && error.code === "timeline_diverged") {
      this.#divergences += 1;
      this.#setState("divergence", error.message);
      return;
    }
    this.#registered = false;
    this.#primaryLsn.stale();
    this.#setState("connecting", (error as Error).message);
    if (await this.#moveUpstream(error)) return;
    // Looking for the next leader: ask again soon rather than after a backoff grown to seconds.
    if (this.#upstreams.looking) this.#backoff.capNext(UPSTREAM_LOOK_MS);
    await this.#backoffWait(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
  }

  /** After failures of the node followed, moves to another listed node (`upstreams.ts`). */
  async #moveUpstream(error: unknown): Promise<boolean> {
    const position = this.#position.lastLsn;
    const url = await this.#upstreams.failed(error, { position, signal: this.#stop.signal });
    if (url === undefined) return false;
    this.#client = this.#clientFor(url);
    this.#segments = this.#options.segmentsFor?.(url) ?? this.#segments;
    this.#backoff.reset();
    return true;
  }

  /** Sleeps the current backoff (with jitter) and doubles it, up to the maximum. */
  #backoffWait(atLeastMs?: number): Promise<void> {
    return this.#backoff.wait(this.#stop.signal, atLeastMs);
  }

  // ---- re-bootstrap ----

  /** A 409 `rebootstrap_required` (SPEC.md 7): from now on the loop re-bootstraps until it succeeds. */
  #beginRebootstrap(error: FerryHttpError): void {
    const reason = String(error.body.invalidation_reason ?? "unknown");
    this.#primaryLsn.atLeastOfRebootstrap(error.body);
    this.#rebootstrapReason = reason;
    this.#rebootstrapAttempts = 0;
    this.#setState("rebootstrapping", `re-bootstrap: ${reason}`);
    this.#rebootstraps += 1;
    this.#logger.warn("replica.rebootstrap_started", {
      reason,
      applied_lsn: this.#position.lastLsn,
      primary_current_lsn: this.#primaryLsn.lsn,
    });
  }

  /**
   * A re-bootstrap attempt failed: the snapshot's slot pin is gone (409), its attempts ran out
   * (the primary down for long), or the new store could not be written (a full disk). The old
   * store keeps serving reads; back off, then start over with a fresh snapshot.
   */
  async #rebootstrapFailed(error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof FerryHttpError && error.code === "rebootstrap_required") {
      this.#primaryLsn.atLeastOfRebootstrap(error.body);
    } else {
      this.#primaryLsn.stale();
    }
    this.#logger.warn("replica.rebootstrap_failed", {
      reason: this.#rebootstrapReason,
      attempt: this.#rebootstrapAttempts,
      error: message,
      code: (error as { code?: unknown } | null)?.code,
      applied_lsn: this.#position.lastLsn,
    });
    this.#setState("rebootstrapping", `re-bootstrap attempt failed, starting over: ${message}`);
    await this.#backoffWait(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
  }

  /**
   * One attempt: loads a snapshot into a fresh store while reads go on from the current one, then
   * swaps. Until `CURRENT` names the new store, a failure removes it and throws (the old store
   * stays live and the loop starts over).
   */
  async #rebootstrap(reason: string): Promise<void> {
    this.#rebootstrapAttempts += 1;
    const progress = this.#progress = new RebootstrapProgress();
    await this.#client.setRebootstrapping(this.#options.replicaId, true).catch(() => undefined);
    const index = this.#live.index + 1;
    const { kv, store, loaded } = await loadIntoNewStore(this.#fs, {
      dataDir: this.#options.dataDir,
      index,
    }, {
      client: this.#client,
      replicaId: this.#options.replicaId,
      signal: this.#stop.signal,
      logger: this.#logger,
      backoff: (atLeastMs) => this.#backoffWait(atLeastMs),
      attemptsMax: this.#options.snapshotAttemptsMax ?? REPLICA_SNAPSHOT_ATTEMPTS_MAX,
      onHeader: (header) => {
        this.#primaryLsn.atLeast(header.startLsn);
        progress.expect(header.entriesHint);
      },
      onStored: (entries, bytes) => progress.stored(entries, bytes, this.#logger),
    });
    await this.#swap({ kv, store, index, startLsn: loaded.startLsn, term: loaded.term });
    this.#rebootstrapReason = undefined;
    this.#registered = false;
    await this.#client.setRebootstrapping(this.#options.replicaId, false).catch(() => undefined);
    this.#logger.info("replica.rebootstrap_finished", {
      reason,
      attempts: this.#rebootstrapAttempts,
      start_lsn: loaded.startLsn,
      entries: loaded.entries,
    });
    this.#setState("connecting");
  }

  /** Makes the new store, which `CURRENT` already names, the live one. */
  async #swap(
    fresh: { kv: Deno.Kv; store: KvState; index: number; startLsn: number; term: number },
  ): Promise<void> {
    this.#position = { lastLsn: fresh.startLsn, lastTerm: fresh.term, lastHash: null };
    this.applied.reset(fresh.startLsn);
    await this.#live.swap(fresh);
    await this.#ack().catch(() => undefined);
  }
}
