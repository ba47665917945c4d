/**
 * The replica role (SPEC.md sections 7, 8, 9.7): pull raw frames (long-poll) → check every CRC →
 * judge each frame (`planApply`) → apply into this replica's own Deno KV (records and applied LSN
 * move together in each atomic commit) → ack applied and durable. On 409 `rebootstrap_required`
 * it loads a snapshot into a fresh KV while still serving reads from the old one, then swaps
 * in-process and carries on from the snapshot's start.
 *
 * Files in the data directory: `CURRENT` names the active store, `state-<n>.kv` are stores.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { denoFileSystem, type FileSystem, joinPath, writeFileAtomic } from "../core/files.ts";
import { FerryHttpError, isKvDamageError, KvCorruptError } from "../core/errors.ts";
import { KvState, type StateEntry, type StateMeta } from "../state/kv_state.ts";
import {
  REPLICA_BACKOFF_MS_MAX,
  REPLICA_BACKOFF_MS_MIN,
  REPLICA_PULL_GRACE_MS,
  REPLICA_PULL_RECORDS,
  REPLICA_PULL_WAIT_MS,
  REPLICA_SNAPSHOT_ATTEMPTS_MAX,
  SNAPSHOT_PAGE_ENTRIES,
} from "../core/limits.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { LsnSignal } from "../state/lsn_signal.ts";
import type { StateReader } from "../state/reader.ts";
import { type ApplierPosition, type ApplyStop, planApply } from "./apply_plan.ts";
import { FerryClient } from "../client/client.ts";
import { sleep } from "../core/waiter.ts";

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

/** How far a (possibly cut and resumed) snapshot got. */
interface _SnapshotProgress {
  after: { collection: string; key: string } | undefined;
  entries: number;
  first: { startLsn: number; term: number } | undefined;
}

const _CURRENT_FILE = "CURRENT";
const _STORE_PATTERN = /^state-(\d{6})\.kv(-wal|-shm|-journal)?$/;
/** The files of one store: SQLite's database and the journal files next to it. */
const _STORE_FILE_SUFFIXES = ["", "-wal", "-shm", "-journal"] as const;
const _utf8 = new TextEncoder();

function _storeName(index: number): string {
  return `state-${String(index).padStart(6, "0")}.kv`;
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
   * the replica starts from LSN 0 and catches up from the primary (see `_openStore`). Needs read
   * and write access to `dataDir`.
   */
  static async open(options: ReplicaRuntimeOptions): Promise<ReplicaRuntime> {
    const fs = options.fs ?? denoFileSystem();
    await fs.mkdirp(options.dataDir);
    const current = await _readCurrent(options.dataDir);
    await _clearOtherStores(options.dataDir, current, options.logger ?? silentLogger);
    const index = current.index;
    const { kv, store, meta } = await _openStore(fs, {
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
      store: _storeName(index),
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
    const path = joinPath(this.#options.dataDir, _storeName(index));
    await _removeStoreFiles(this.#options.dataDir, index);
    const kv = await Deno.openKv(path);
    let loaded: { startLsn: number; term: number; entries: number };
    try {
      loaded = await this.#loadSnapshot(new KvState(kv));
    } catch (error) {
      kv.close();
      await _removeStoreFiles(this.#options.dataDir, index);
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

  async #loadSnapshot(
    store: KvState,
  ): Promise<{ startLsn: number; term: number; entries: number }> {
    const progress: _SnapshotProgress = { after: undefined, entries: 0, first: undefined };
    for (let attempt = 1;; attempt++) {
      try {
        if (await this.#loadSnapshotPart(store, progress)) {
          return {
            startLsn: progress.first!.startLsn,
            term: progress.first!.term,
            entries: progress.entries,
          };
        }
      } catch (error) {
        if (this.#stop.signal.aborted || attempt >= REPLICA_SNAPSHOT_ATTEMPTS_MAX) throw error;
        if (error instanceof FerryHttpError && error.code === "rebootstrap_required") throw error;
        this.#logger.warn("replica.snapshot_cut", {
          error: (error as Error).message,
          resume_after: progress.after,
          attempt,
        });
        await this.#backoff(error instanceof FerryHttpError ? error.retryAfterMs : undefined);
      }
    }
  }

  /**
   * Streams one response of a snapshot into `store`, resuming after `progress.after`. Returns true
   * once a trailer checked out; false when the stream ended early (resume from `progress.after`).
   */
  async #loadSnapshotPart(store: KvState, progress: _SnapshotProgress): Promise<boolean> {
    let batch: StateEntry[] = [];
    let count = 0;
    let crc = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      await store.putEntries(batch);
      const last = batch[batch.length - 1]!;
      progress.after = { collection: last.collection, key: last.key };
      progress.entries += batch.length;
      batch = [];
    };
    try {
      const lines = this.#client.snapshot(this.#options.replicaId, {
        after: progress.after,
        signal: this.#stop.signal,
      });
      for await (const line of lines) {
        if (line.type === "header") {
          progress.first ??= { startLsn: line.startLsn, term: line.term };
        } else if (line.type === "entry") {
          crc = crc32(_utf8.encode(line.raw.endsWith("\n") ? line.raw : line.raw + "\n"), crc);
          count += 1;
          batch.push({
            collection: line.collection,
            key: line.key,
            value: line.value,
            lsn: line.lsn,
          });
          if (batch.length >= SNAPSHOT_PAGE_ENTRIES) await flush();
        } else {
          if (line.count !== count || line.crc32 !== crc) {
            throw new Error(
              `snapshot trailer mismatch: got ${count} entries / crc ${crc}, trailer says ${line.count} / ${line.crc32}`,
            );
          }
          await flush();
          return true;
        }
      }
      await flush();
      return false;
    } catch (error) {
      // Entries that arrived whole are kept: the resume starts after the last stored one.
      await flush().catch(() => undefined);
      throw error;
    }
  }

  async #swap(
    fresh: { kv: Deno.Kv; index: number; startLsn: number; term: number },
  ): Promise<void> {
    const store = new KvState(fresh.kv);
    await store.setMeta({ applied_lsn: fresh.startLsn, last_term: fresh.term, last_hash: null });
    await _writeCurrent(this.#fs, this.#options.dataDir, fresh.index);
    const oldKv = this.#kv;
    const oldIndex = this.#storeIndex;
    this.#kv = fresh.kv;
    this.#store = store;
    this.#storeIndex = fresh.index;
    this.#position = { lastLsn: fresh.startLsn, lastTerm: fresh.term, lastHash: null };
    this.applied.reset(fresh.startLsn);
    oldKv.close();
    await _removeStoreFiles(this.#options.dataDir, oldIndex);
    await this.#ack().catch(() => undefined);
  }
}

/**
 * Opens store `index` and reads its meta. When SQLite refuses the file at open or on that read
 * (`isKvDamageError`), the replica logs `replica.store_corrupt`, renames the store's files to
 * `<name>.corrupt-<unix ms>` (kept for inspection; nothing deletes them) and opens a fresh empty
 * store under the same name: it then starts from LSN 0 and catches up from the primary, replaying
 * from LSN 1 if that is retained, else re-bootstrapping from a snapshot.
 */
async function _openStore(
  fs: FileSystem,
  options: { dataDir: string; index: number; logger: Logger },
): Promise<{ kv: Deno.Kv; store: KvState; meta: StateMeta }> {
  const path = joinPath(options.dataDir, _storeName(options.index));
  try {
    return await _openStoreAt(path);
  } catch (error) {
    if (!isKvDamageError(error) && !(error instanceof KvCorruptError)) throw error;
    const suffix = `.corrupt-${Date.now()}`;
    options.logger.error("replica.store_corrupt", {
      path,
      error: error.message,
      moved_to: path + suffix,
      message: `the store ${path} cannot be opened or read (${error.message}); it is moved ` +
        `aside and the replica starts empty, catching up from the primary`,
    });
    for (const extension of _STORE_FILE_SUFFIXES) {
      await fs.rename(path + extension, path + extension + suffix).catch((renameError) => {
        if (!(renameError instanceof Deno.errors.NotFound)) throw renameError;
      });
    }
    await fs.syncDir(options.dataDir);
    return await _openStoreAt(path);
  }
}

async function _openStoreAt(
  path: string,
): Promise<{ kv: Deno.Kv; store: KvState; meta: StateMeta }> {
  const kv = await Deno.openKv(path);
  try {
    const store = new KvState(kv);
    return { kv, store, meta: await store.meta() };
  } catch (error) {
    kv.close();
    throw error;
  }
}

/**
 * The store `CURRENT` names; `trusted` is false when `CURRENT` is missing or garbled (then which
 * store is live is unknown, and other stores are set aside, not deleted).
 */
async function _readCurrent(dataDir: string): Promise<{ index: number; trusted: boolean }> {
  try {
    const text = (await Deno.readTextFile(joinPath(dataDir, _CURRENT_FILE))).trim();
    const match = _STORE_PATTERN.exec(text);
    if (match && match[2] === undefined) return { index: Number(match[1]), trusted: true };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { index: 0, trusted: false };
}

/** Replaces CURRENT atomically (`writeFileAtomic`). */
async function _writeCurrent(fs: FileSystem, dataDir: string, index: number): Promise<void> {
  const text = _utf8.encode(_storeName(index) + "\n");
  await writeFileAtomic(fs, joinPath(dataDir, _CURRENT_FILE), text);
}

async function _removeStoreFiles(dataDir: string, index: number): Promise<void> {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    await Deno.remove(joinPath(dataDir, _storeName(index) + suffix)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }
}

/**
 * Clears stores other than the current one. With a trusted `CURRENT` they are leftovers of an
 * interrupted re-bootstrap and are deleted; without one they are renamed `<name>.corrupt-<ms>`
 * (kept for the operator) and logged, since which store was live cannot be known.
 */
async function _clearOtherStores(
  dataDir: string,
  current: { index: number; trusted: boolean },
  logger: Logger,
): Promise<void> {
  const suffix = `.corrupt-${Date.now()}`;
  for await (const entry of Deno.readDir(dataDir)) {
    const match = _STORE_PATTERN.exec(entry.name);
    if (!match || Number(match[1]) === current.index) continue;
    const path = joinPath(dataDir, entry.name);
    if (current.trusted) {
      await Deno.remove(path);
    } else {
      await Deno.rename(path, path + suffix);
      logger.error("replica.store_set_aside", {
        path,
        moved_to: path + suffix,
        reason: "CURRENT is missing or garbled",
      });
    }
  }
}
