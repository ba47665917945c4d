/**
 * ferry's command line: `main.ts primary [settings]` or `main.ts replica [settings]`.
 *
 * Parses the config once, checks permissions, opens the stores in order, and closes them in reverse
 * order on SIGINT/SIGTERM.
 *
 * @module
 */

import { type Config, parseConfig, type Role, settingsHelp } from "./src/core/config.ts";
import { ConfigError, FerryError, isKvDamageError, KvCorruptError } from "./src/core/errors.ts";
import { createLogger, type Logger } from "./src/core/log.ts";
import {
  grantedSummary,
  missingPermissionFlags,
  missingPermissionsMessage,
  readGrantedEnv,
} from "./src/core/permissions.ts";
import { lockDataDir } from "./src/core/data_lock.ts";
import { joinPath } from "./src/core/files.ts";
import { Spool } from "./src/wal/spool.ts";
import { Auth, isLoopback } from "./src/http/auth.ts";
import { createApp } from "./src/http/primary_app.ts";
import { Metrics } from "./src/metrics/primary_metrics.ts";
import { type CommitPolicy, parseCommitPolicy } from "./src/replication/commit_waiter.ts";
import { Primary } from "./src/replication/primary.ts";
import {
  CATALOG_FILE_NAME,
  KV_SLOTS_META_KEY,
  KV_SLOTS_PREFIX,
  SLOTS_MAX,
  SlotStore,
} from "./src/slots/slot_store.ts";
import { KvState } from "./src/state/kv_state.ts";
import { StateApplier } from "./src/state/applier.ts";
import { SnapshotServer } from "./src/replication/snapshot.ts";
import { ReplicaRuntime } from "./src/replica/runtime.ts";
import { createReplicaApp } from "./src/http/replica_app.ts";

const USAGE = "usage: main.ts primary|replica [settings]   (main.ts primary --help lists them)";

/** Runs the command line and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const [role, ...rest] = args;
  if (role !== "primary" && role !== "replica") {
    console.error(USAGE);
    return 2;
  }
  if (rest.includes("--help")) {
    console.log(settingsHelp(role));
    return 0;
  }
  const logger = createLogger({ base: { role } });
  const config = _configOrExit(role, rest, logger);
  if (!config) return 2;
  const missing = missingPermissionFlags(config);
  if (missing.length > 0) {
    logger.error("ferry.permissions_missing", { add_flags: missing });
    console.error(missingPermissionsMessage(missing));
    return 2;
  }
  try {
    return role === "primary" ? await runPrimary(config, logger) : await runReplica(config, logger);
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    logger.error("ferry.start_failed", {
      ...error.details,
      code: error.code,
      message: error.message,
    });
    return 1;
  }
}

function _configOrExit(role: Role, args: readonly string[], logger: Logger): Config | undefined {
  try {
    return parseConfig(role, args, readGrantedEnv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error("ferry.bad_config", { message: error.message });
    return undefined;
  }
}

/**
 * Serves `fetch` on the configured address (logging `ferry.started` with `started()` and the granted
 * permissions), calls `onServing`, and returns the server once SIGINT or SIGTERM arrives.
 */
async function _serveUntilSignal(
  config: Config,
  logger: Logger,
  options: {
    fetch: (request: Request) => Response | Promise<Response>;
    started: () => Record<string, unknown>;
    onServing: () => void;
  },
): Promise<Deno.HttpServer> {
  const stopping = _shutdownSignal();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ hostname, port }) => {
      logger.info("ferry.started", {
        address: `${hostname}:${port}`,
        ...options.started(),
        permissions: grantedSummary(config),
      });
    },
  }, options.fetch);
  options.onServing();
  logger.info("ferry.stopping", { signal: await stopping });
  return server;
}

/** Resolves on the first SIGINT or SIGTERM. */
function _shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

async function _loadAuth(config: Config, logger: Logger): Promise<Auth | undefined> {
  if (config.tokensFile !== undefined) return await Auth.load(config.tokensFile);
  if (!isLoopback(config.host)) {
    logger.error("ferry.refused", {
      message:
        `refusing to listen on ${config.host} without a tokens file; set --tokens-file or listen on 127.0.0.1`,
    });
    return undefined;
  }
  logger.warn("auth.disabled", {
    message: "no tokens file: every caller is admin; serving on loopback only",
  });
  return Auth.disabled();
}

function _commitFloor(config: Config): CommitPolicy {
  try {
    return parseCommitPolicy(config.commitPolicy);
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    throw new ConfigError(`setting --commit-policy has a bad value: ${error.message}`);
  }
}

/**
 * Opens the primary's Deno KV (`<data>/ferry.kv`) and reads what start-up reads from it first: the
 * slots' generation and entries, and the state meta. A damaged file fails right here, at open or on
 * these reads (`isKvDamageError`), and so does a state older than the spool can rebuild (an emptied
 * or replaced file after a prune): both become one `KvCorruptError` naming the file and what to do.
 * Nothing is written. Needs read and write access to the data directory.
 */
async function _openPrimaryKv(dataDir: string, oldestLsn: number): Promise<Deno.Kv> {
  const path = joinPath(dataDir, "ferry.kv");
  let kv: Deno.Kv | undefined;
  let appliedLsn: number;
  try {
    kv = await Deno.openKv(path);
    await kv.get(KV_SLOTS_META_KEY);
    await Array.fromAsync(kv.list({ prefix: [...KV_SLOTS_PREFIX] }, { limit: SLOTS_MAX + 1 }));
    appliedLsn = (await new KvState(kv).meta()).applied_lsn;
  } catch (error) {
    kv?.close();
    if (!isKvDamageError(error) && !(error instanceof KvCorruptError)) throw error;
    throw new KvCorruptError(
      `cannot open or read the Deno KV file ${path} (${error.message}). ` +
        _kvRemedy(dataDir, path, oldestLsn),
      { path, cause: error.message },
    );
  }
  if (appliedLsn + 1 < oldestLsn) {
    kv.close();
    throw new KvCorruptError(
      `the state in ${path} is applied up to LSN ${appliedLsn}, but the spool starts at LSN ` +
        `${oldestLsn}: the records in between are gone, so the state cannot catch up (the file was ` +
        `emptied, replaced or restored from an older copy). ` + _kvRemedy(dataDir, path, oldestLsn),
      { path, applied_lsn: appliedLsn, oldest_lsn: oldestLsn },
    );
  }
  return kv;
}

/** What an operator can do about a damaged `ferry.kv`, given what the spool still holds. */
function _kvRemedy(dataDir: string, path: string, oldestLsn: number): string {
  const intact = `The spool (${joinPath(dataDir, "wal")}) and ${
    joinPath(dataDir, CATALOG_FILE_NAME)
  } are separate files that do not depend on it.`;
  if (oldestLsn <= 1) {
    return `${intact} To rebuild it, move ${path} (and any ${path}-wal, ${path}-shm) aside and ` +
      `start ferry again: the slots reload from the catalog and the state is re-applied from the ` +
      `spool, which still holds every record from LSN 1.`;
  }
  return `${intact} The spool no longer holds LSN 1 (its oldest record is LSN ${oldestLsn}), so ` +
    `the state cannot be rebuilt from it: restore ${path} from a backup.`;
}

/** Opens the primary's stores in order, serves until a signal, then closes them in reverse. */
async function runPrimary(config: Config, logger: Logger): Promise<number> {
  const auth = await _loadAuth(config, logger);
  if (!auth) return 2;
  const commitPolicyFloor = _commitFloor(config);
  const lock = await lockDataDir(config.dataDir);
  try {
    const metrics = new Metrics();
    const spool = await Spool.open({
      walDir: joinPath(config.dataDir, "wal"),
      timeline: config.timeline,
      term: config.term,
      segmentBytesMax: config.segmentBytesMax,
      tailBytesMax: config.tailBytesMax,
      logger,
      observer: metrics.spoolObserver,
    });
    const kv = await _openPrimaryKv(config.dataDir, spool.recovery.oldestLsn);
    const slots = await SlotStore.open({
      dataDir: config.dataDir,
      kv,
      timeline: config.timeline,
      flushIntervalMs: config.slotFlushIntervalMs,
      logger,
      observer: metrics.slotStoreObserver,
    });
    logger.info("ferry.recovered", {
      data_dir: config.dataDir,
      oldest_lsn: spool.recovery.oldestLsn,
      current_lsn: spool.recovery.currentLsn,
      segments: spool.recovery.segments,
      truncated_bytes: spool.recovery.truncatedBytes,
      slots: slots.size,
      slots_source: slots.loadReport.source,
      slots_generation: slots.loadReport.generation,
    });
    const state = await StateApplier.open({ spool, kv, logger });
    const primary = new Primary({
      spool,
      slots,
      stateFloor: () => state.appliedLsn(),
      term: config.term,
      timeline: config.timeline,
      region: config.region,
      advertiseUrl: config.advertiseUrl,
      caps: {
        lagMaxRecords: config.slotLagMaxRecords,
        retainedBytesMax: config.slotRetainedBytesMax,
        idleTimeoutMs: config.slotIdleTimeoutMs,
      },
      retentionIntervalMs: config.retentionIntervalMs,
      walRetainBytesMin: config.walRetainBytesMin,
      healthyWithinMs: config.healthyWithinMs,
      commitPolicyFloor,
      commitTimeoutMs: config.commitTimeoutMs,
      logger,
    });
    metrics.attachPrimary(primary, { appliedLsn: () => state.appliedLsn() });
    primary.start();
    state.start();
    const snapshots = new SnapshotServer(primary, state, {
      concurrencyMax: config.snapshotConcurrencyMax,
      logger,
    });
    let ready = false;
    const app = createApp({
      primary,
      auth,
      metrics,
      limits: config,
      failOnCommitTimeout: config.failOnCommitTimeout,
      isReady: () => ready && spool.isWritable(),
      logger,
      state,
      snapshots,
    });
    const server = await _serveUntilSignal(config, logger, {
      fetch: app.fetch,
      started: () => ({
        auth: auth.enabled ? "tokens" : "off (loopback only)",
        commit_policy: config.commitPolicy,
      }),
      onServing: () => (ready = true),
    });
    ready = false;
    const serverDone = server.shutdown();
    await primary.stop();
    primary.waiter.releaseAll();
    await spool.quiesce();
    await serverDone;
    await state.stop();
    await slots.close();
    kv.close();
    await spool.close();
    logger.info("ferry.stopped", { current_lsn: spool.currentLsn(), slots: slots.size });
    return 0;
  } finally {
    lock.release();
  }
}

/** Opens the replica's store, serves reads, and follows the primary until a signal. */
async function runReplica(config: Config, logger: Logger): Promise<number> {
  if (!isLoopback(config.host) && config.tokensFile === undefined) {
    logger.warn("replica.open_reads", { message: `reads on ${config.host} are open to anyone` });
  }
  const lock = await lockDataDir(config.dataDir);
  try {
    const runtime = await ReplicaRuntime.open({
      dataDir: config.dataDir,
      replicaId: config.replicaId!,
      region: config.region,
      primaryUrl: config.primaryUrl!,
      token: config.replicaToken,
      logger,
    });
    let ready = false;
    const app = createReplicaApp(runtime, { logger, isReady: () => ready });
    const server = await _serveUntilSignal(config, logger, {
      fetch: app.fetch,
      started: () => ({
        replica_id: config.replicaId,
        primary_url: config.primaryUrl,
        applied_lsn: runtime.appliedLsn(),
      }),
      onServing: () => {
        runtime.start();
        ready = true;
      },
    });
    ready = false;
    const serverDone = server.shutdown();
    await runtime.stop();
    await serverDone;
    logger.info("ferry.stopped", { applied_lsn: runtime.appliedLsn() });
    return 0;
  } finally {
    lock.release();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
