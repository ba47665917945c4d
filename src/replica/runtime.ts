/**
 * The replica role (SPEC.md sections 7, 8, 9.7): pull raw frames (long-poll) → check every CRC →
 * judge each frame (`planApply`) → apply into this replica's own Deno KV (records and applied LSN
 * move together in each atomic commit) → ack applied and durable. On 409 `rebootstrap_required`
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
import { KvState, type StateEntry } from "../state/kv_state.ts";
import {
  REPLICA_BACKOFF_MS_MAX,
  REPLICA_BACKOFF_MS_MIN,
  REPLICA_PULL_GRACE_MS,
  REPLICA_PULL_RECORDS,
  REPLICA_PULL_WAIT_MS,
  REPLICA_SNAPSHOT_ATTEMPTS_MAX,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { LsnSignal } from "../state/lsn_signal.ts";
import type { StateReader } from "../state/reader.ts";
import { type ApplierPosition, type ApplyStop, planApply } from "./apply_plan.ts";
import { FerryClient } from "../client/client.ts";
import { sleep } from "../core/waiter.ts";
import {
  clearOtherStores,
  openStore,
  readCurrent,
  removeStoreFiles,
  storeName,
  storePath,
  writeCurrent,
} from "./store_dir.ts";
import { type LoadedSnapshot, loadSnapshot } from "./snapshot_loader.ts";
import { RebootstrapProgress } from "./rebootstrap_progress.ts";
import type { ReplicaStateName, ReplicaStatus } from "./status.ts";
import { PrimaryLsn } from "./primary_lsn.ts";

/** Options of `ReplicaRuntime.open`. */
export interface ReplicaRuntimeOptions {
  dataDir: string;
  replicaId: string;
  region?: string;
  primaryUrl: string;
  token?: string;
  /** A client to use instead of one built from `primaryUrl` and `token` (tests). */
  client?: FerryClient;
  pullWaitMs?: number;
  pullMaxCount?: number;
  /** Snapshot responses to try before a re-bootstrap starts over; `REPLICA_SNAPSHOT_ATTEMPTS_MAX`. */
  snapshotAttemptsMax?: number;
  /** First backoff after an error (it doubles, with jitter); `REPLICA_BACKOFF_MS_MIN`. */
  backoffMsMin?: number;
  /** Longest backoff; `REPLICA_BACKOFF_MS_MAX`. */
  backoffMsMax?: number;
  logger?: Logger;
  fs?: FileSystem;
}

/** A replica: its store, its position, and the loop that keeps it in step with the primary. */
export class ReplicaRuntime implements StateReader {
  readonly applied: LsnSignal;
  #options: ReplicaRuntimeOptions;
  #client: FerryClient;
  #logger: Logger;
  #fs: FileSystem;
  #kv: Deno.Kv;
  #store: KvState;
  #storeIndex: number;
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
  #backoffMsMin: number;
  #backoffMsMax: number;
  #backoffMs: number;
  /** Why the replica must load a snapshot: set from the 409 until a re-bootstrap completes. */
  #rebootstrapReason: string | undefined;
  /** Re-bootstrap attempts since the 409 (each failure starts over with a fresh snapshot). */
  #rebootstrapAttempts = 0;
  /** The current re-bootstrap attempt's progress. */
  #progress: RebootstrapProgress | undefined;
  /** Registered with the primary since the last connection error (register carries the region). */
  #registered = false;

  private constructor(
    options: ReplicaRuntimeOptions,
    opened: { kv: Deno.Kv; store: KvState; index: number; position: ApplierPosition },
  ) {
    this.#options = options;
    this.#client = options.client ?? new FerryClient(options.primaryUrl, { token: options.token });
    this.#logger = options.logger ?? silentLogger;
    this.#fs = options.fs ?? denoFileSystem();
    this.#backoffMsMin = options.backoffMsMin ?? REPLICA_BACKOFF_MS_MIN;
    this.#backoffMsMax = options.backoffMsMax ?? REPLICA_BACKOFF_MS_MAX;
    this.#backoffMs = this.#backoffMsMin;
    this.#kv = opened.kv;
    this.#store = opened.store;
    this.#storeIndex = opened.index;
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
    await fs.mkdirp(options.dataDir);
    const current = await readCurrent(options.dataDir);
    await clearOtherStores(options.dataDir, current, options.logger ?? silentLogger);
    const index = current.index;
    const { kv, store, meta } = await openStore(fs, {
      dataDir: options.dataDir,
      index,
      logger: options.logger ?? silentLogger,
    });
    const position = {
      lastLsn: meta.applied_lsn,
      lastTerm: meta.last_term,
      lastHash: meta.last_hash,
    };
    const runtime = new ReplicaRuntime(options, { kv, store, index, position });
    (options.logger ?? silentLogger).info("replica.recovered", {
      data_dir: options.dataDir,
      store: storeName(index),
      applied_lsn: position.lastLsn,
      term: position.lastTerm,
    });
    return runtime;
  }

  // ---- StateReader ----

  appliedLsn(): number {
    return this.#position.lastLsn;
  }

  waitApplied(lsn: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<boolean> {
    return this.applied.waitFor(lsn, options);
  }

  /** Reads from the current store; during a re-bootstrap that is still the old one. */
  get(collection: string, key: string): Promise<StateEntry | undefined> {
    return this.#store.get(collection, key);
  }

  get state(): ReplicaStateName {
    return this.#state;
  }

  status(): ReplicaStatus {
    return {
      role: "replica",
      replica_id: this.#options.replicaId,
      region: this.#options.region ?? null,
      primary_url: this.#options.primaryUrl,
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
    this.#kv.close();
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
        await sleep(this.#backoffMsMax, this.#stop.signal);
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

  /** One pull, its applies, and the ack (after registering, once per connection). */
  async #step(): Promise<void> {
    if (!this.#registered) {
      const registered = await this.#client.register(this.#options.replicaId, {
        region: this.#options.region,
        sinceLsn: this.#position.lastLsn,
      });
      this.#primaryLsn.exact(registered.currentLsn);
      this.#registered = true;
    }
    // Only a healthy replica lets the primary hold its pull: a reconnect learns where it stands at once.
    const holdMs = this.#state === "healthy"
      ? (this.#options.pullWaitMs ?? REPLICA_PULL_WAIT_MS)
      : 0;
    const pull = await this.#client.pullFrames({
      replicaId: this.#options.replicaId,
      sinceLsn: this.#position.lastLsn,
      maxCount: this.#options.pullMaxCount ?? REPLICA_PULL_RECORDS,
      term: this.#position.lastTerm > 0 ? this.#position.lastTerm : undefined,
      awaitTimeoutMs: holdMs,
      // A held pull on a dead path must not hang for ever: give up a little after the hold.
      signal: AbortSignal.any([
        this.#stop.signal,
        AbortSignal.timeout(holdMs + REPLICA_PULL_GRACE_MS),
      ]),
    });
    this.#primaryLsn.exact(pull.currentLsn);
    this.#timeline = pull.timeline;
    const plan = planApply(this.#position, pull.frames);
    if (plan.applies.length > 0) {
      const term = plan.position.lastTerm;
      await this.#store.apply(
        plan.applies.map((a) => ({ lsn: a.lsn, record: a.record })),
        (lsn) => ({
          applied_lsn: lsn,
          last_term: term,
          last_hash: plan.applies.find((a) => a.lsn === lsn)?.hash ?? null,
        }),
      );
      this.#position = plan.position;
      this.#appliedRecords += plan.applies.length;
      this.applied.advance(plan.position.lastLsn);
    }
    if (pull.corrupt) {
      this.#applyErrors += 1;
      this.#setState(
        "apply_error",
        `frame after LSN ${this.#position.lastLsn} failed its check: ${pull.corrupt.reason}`,
      );
    } else if (plan.stop) {
      this.#onStop(plan.stop);
    } else {
      this.#setState("healthy");
    }
    if (
      plan.applies.length > 0 || this.#backoffMs !== this.#backoffMsMin || pull.corrupt ||
      plan.stop
    ) {
      await this.#ack();
    }
    if (pull.corrupt || (plan.stop && plan.stop.kind !== "divergence")) await this.#backoff();
    else this.#backoffMs = this.#backoffMsMin;
  }

  #onStop(stop: ApplyStop): void {
    if (stop.kind === "divergence") {
      this.#divergences += 1;
      this.#setState("divergence", `LSN ${stop.lsn} differs from what this replica applied`);
    } else if (stop.kind === "stale_term") {
      this.#setState(
        "stale_term",
        `frame ${stop.lsn} has term ${stop.term}, older than ${stop.appliedTerm}`,
      );
    } else if (stop.kind === "gap") {
      this.#applyErrors += 1;
      this.#setState("gap", `expected LSN ${stop.expectedLsn}, got ${stop.gotLsn}`);
    } else {
      this.#applyErrors += 1;
      this.#setState("apply_error", `record ${stop.lsn}: ${stop.reason}`);
    }
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
    this.#registered = false;
    this.#primaryLsn.stale();
    this.#setState("connecting", (error as Error).message);
    await this.#backoff(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
  }

  /** Sleeps the current backoff (with jitter) and doubles it, up to the maximum. */
  async #backoff(atLeastMs = 0): Promise<void> {
    const jittered = this.#backoffMs / 2 + Math.random() * (this.#backoffMs / 2);
    await sleep(Math.max(atLeastMs, jittered), this.#stop.signal);
    this.#backoffMs = Math.min(this.#backoffMsMax, this.#backoffMs * 2);
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
    await this.#backoff(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
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
    const index = this.#storeIndex + 1;
    await removeStoreFiles(this.#options.dataDir, index);
    const kv = await Deno.openKv(storePath(this.#options.dataDir, index));
    let loaded: LoadedSnapshot;
    let store: KvState;
    try {
      loaded = await loadSnapshot(new KvState(kv), {
        client: this.#client,
        replicaId: this.#options.replicaId,
        signal: this.#stop.signal,
        logger: this.#logger,
        backoff: (atLeastMs) => this.#backoff(atLeastMs),
        attemptsMax: this.#options.snapshotAttemptsMax ?? REPLICA_SNAPSHOT_ATTEMPTS_MAX,
        onHeader: (header) => {
          this.#primaryLsn.atLeast(header.startLsn);
          progress.expect(header.entriesHint);
        },
        onStored: (entries, bytes) => progress.stored(entries, bytes, this.#logger),
      });
      store = new KvState(kv);
      await store.setMeta({
        applied_lsn: loaded.startLsn,
        last_term: loaded.term,
        last_hash: null,
      });
      await writeCurrent(this.#fs, this.#options.dataDir, index);
    } catch (error) {
      kv.close();
      await removeStoreFiles(this.#options.dataDir, index);
      throw error;
    }
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
    const oldKv = this.#kv;
    const oldIndex = this.#storeIndex;
    this.#kv = fresh.kv;
    this.#store = fresh.store;
    this.#storeIndex = fresh.index;
    this.#position = { lastLsn: fresh.startLsn, lastTerm: fresh.term, lastHash: null };
    this.applied.reset(fresh.startLsn);
    oldKv.close();
    // The swap is done: an old store left behind is only disk, and the next open removes it.
    await removeStoreFiles(this.#options.dataDir, oldIndex).catch((error) => {
      this.#logger.warn("replica.store_remove_failed", {
        store: storeName(oldIndex),
        error: (error as Error).message,
      });
    });
    await this.#ack().catch(() => undefined);
  }
}
