/**
 * The replica role (SPEC.md sections 7, 8, 9.7): pull raw frames (long-poll) → check every CRC →
 * judge each frame (`planApply`) → apply into this replica's own Deno KV (records and applied LSN
 * move together in each atomic commit) → ack applied and durable. On 409 `rebootstrap_required`
 * it loads a snapshot into a fresh KV while still serving reads from the old one, then swaps
 * in-process and carries on from the snapshot's start.
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

/** What the replica is doing (SPEC.md 9.7). */
export type ReplicaStateName =
  | "connecting"
  | "healthy"
  | "rebootstrapping"
  | "gap"
  | "divergence"
  | "stale_term"
  | "apply_error";

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
  logger?: Logger;
  fs?: FileSystem;
}

/** The replica's status document (SPEC.md 9.7). */
export interface ReplicaStatus {
  role: "replica";
  replica_id: string;
  region: string | null;
  primary_url: string;
  state: ReplicaStateName;
  applied_lsn: number;
  durable_lsn: number;
  primary_current_lsn: number;
  term: number;
  timeline: number;
  apply_errors_total: number;
  divergence_total: number;
  rebootstraps_total: number;
  last_error: string | null;
  applied_records_total: number;
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
  #primaryCurrentLsn = 0;
  #timeline = 0;
  #applyErrors = 0;
  #divergences = 0;
  #rebootstraps = 0;
  #appliedRecords = 0;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #backoffMs = REPLICA_BACKOFF_MS_MIN;
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
      primary_current_lsn: this.#primaryCurrentLsn,
      term: this.#position.lastTerm,
      timeline: this.#timeline,
      apply_errors_total: this.#applyErrors,
      divergence_total: this.#divergences,
      rebootstraps_total: this.#rebootstraps,
      last_error: this.#lastError,
      applied_records_total: this.#appliedRecords,
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
        await sleep(REPLICA_BACKOFF_MS_MAX, this.#stop.signal);
        continue;
      }
      try {
        await this.#step();
      } catch (error) {
        if (signal.aborted) break;
        await this.#handleError(error);
      }
    }
  }

  /** One pull, its applies, and the ack (after registering, once per connection). */
  async #step(): Promise<void> {
    if (!this.#registered) {
      await this.#client.register(this.#options.replicaId, {
        region: this.#options.region,
        sinceLsn: this.#position.lastLsn,
      });
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
    this.#primaryCurrentLsn = pull.currentLsn;
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
      plan.applies.length > 0 || this.#backoffMs !== REPLICA_BACKOFF_MS_MIN || pull.corrupt ||
      plan.stop
    ) {
      await this.#ack();
    }
    if (pull.corrupt || (plan.stop && plan.stop.kind !== "divergence")) await this.#backoff();
    else this.#backoffMs = REPLICA_BACKOFF_MS_MIN;
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
    if (error instanceof FerryHttpError && error.code === "rebootstrap_required") {
      await this.#rebootstrap(String(error.body.invalidation_reason ?? "unknown"));
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
    this.#setState(
      this.#state === "rebootstrapping" ? "rebootstrapping" : "connecting",
      (error as Error).message,
    );
    await this.#backoff(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
  }

  /** Sleeps the current backoff (with jitter) and doubles it, up to the maximum. */
  async #backoff(atLeastMs = 0): Promise<void> {
    const jittered = this.#backoffMs / 2 + Math.random() * (this.#backoffMs / 2);
    await sleep(Math.max(atLeastMs, jittered), this.#stop.signal);
    this.#backoffMs = Math.min(REPLICA_BACKOFF_MS_MAX, this.#backoffMs * 2);
  }

  // ---- re-bootstrap ----

  /**
   * Loads a snapshot into a fresh store while reads go on from the current one, then swaps: the
   * `CURRENT` file is replaced atomically, the old store closed and deleted.
   */
  async #rebootstrap(reason: string): Promise<void> {
    this.#setState("rebootstrapping", `re-bootstrap: ${reason}`);
    this.#rebootstraps += 1;
    this.#logger.warn("replica.rebootstrap_started", {
      reason,
      applied_lsn: this.#position.lastLsn,
    });
    await this.#client.setRebootstrapping(this.#options.replicaId, true).catch(() => undefined);
    const index = this.#storeIndex + 1;
    await removeStoreFiles(this.#options.dataDir, index);
    const kv = await Deno.openKv(storePath(this.#options.dataDir, index));
    let loaded: LoadedSnapshot;
    try {
      loaded = await loadSnapshot(new KvState(kv), {
        client: this.#client,
        replicaId: this.#options.replicaId,
        signal: this.#stop.signal,
        logger: this.#logger,
        backoff: (atLeastMs) => this.#backoff(atLeastMs),
      });
    } catch (error) {
      kv.close();
      await removeStoreFiles(this.#options.dataDir, index);
      throw error;
    }
    await this.#swap({ kv, index, startLsn: loaded.startLsn, term: loaded.term });
    this.#registered = false;
    await this.#client.setRebootstrapping(this.#options.replicaId, false).catch(() => undefined);
    this.#logger.info("replica.rebootstrap_finished", {
      start_lsn: loaded.startLsn,
      entries: loaded.entries,
    });
    this.#setState("connecting");
  }

  async #swap(
    fresh: { kv: Deno.Kv; index: number; startLsn: number; term: number },
  ): Promise<void> {
    const store = new KvState(fresh.kv);
    await store.setMeta({ applied_lsn: fresh.startLsn, last_term: fresh.term, last_hash: null });
    await writeCurrent(this.#fs, this.#options.dataDir, fresh.index);
    const oldKv = this.#kv;
    const oldIndex = this.#storeIndex;
    this.#kv = fresh.kv;
    this.#store = store;
    this.#storeIndex = fresh.index;
    this.#position = { lastLsn: fresh.startLsn, lastTerm: fresh.term, lastHash: null };
    this.applied.reset(fresh.startLsn);
    oldKv.close();
    await removeStoreFiles(this.#options.dataDir, oldIndex);
    await this.#ack().catch(() => undefined);
  }
}
