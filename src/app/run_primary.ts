/**
 * The primary's life: open the stores in order (spool, KV, slots, state), serve until a signal,
 * then shut down in the reverse order. Needs read and write access to the data directory and
 * `--allow-net` for the listen address.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { ConfigError, FerryError } from "../core/errors.ts";
import { joinPath } from "../core/files.ts";
import { lockDataDir } from "../core/data_lock.ts";
import type { Logger } from "../core/log.ts";
import { Auth, isLoopback } from "../http/auth.ts";
import { createApp } from "../http/primary_app.ts";
import { Metrics } from "../metrics/primary_metrics.ts";
import { type CommitPolicy, parseCommitPolicy } from "../replication/commit_policy.ts";
import { Primary } from "../replication/primary.ts";
import { SnapshotServer } from "../replication/snapshot.ts";
import { SlotStore } from "../slots/slot_store.ts";
import { StateApplier } from "../state/applier.ts";
import { Spool } from "../wal/spool.ts";
import { openPrimaryKv } from "./primary_kv.ts";
import { serveUntilSignal } from "./serve.ts";

/** What a running primary holds, in the order it was opened. */
interface _Opened {
  spool: Spool;
  kv: Deno.Kv;
  slots: SlotStore;
  state: StateApplier;
  primary: Primary;
  metrics: Metrics;
}

/** Opens the primary's stores in order, serves until a signal, then closes them in reverse. */
export async function runPrimary(config: Config, logger: Logger): Promise<number> {
  const auth = await _loadAuth(config, logger);
  if (!auth) return 2;
  const commitPolicyFloor = _commitFloor(config);
  const lock = await lockDataDir(config.dataDir);
  try {
    const opened = await _open(config, logger, commitPolicyFloor);
    const snapshots = new SnapshotServer(opened.primary, opened.state, {
      concurrencyMax: config.snapshotConcurrencyMax,
      logger,
    });
    let ready = false;
    const app = createApp({
      primary: opened.primary,
      auth,
      metrics: opened.metrics,
      limits: config,
      failOnCommitTimeout: config.failOnCommitTimeout,
      isReady: () => ready && opened.spool.isWritable(),
      logger,
      state: opened.state,
      snapshots,
    });
    const server = await serveUntilSignal(config, logger, {
      fetch: app.fetch,
      started: () => ({
        auth: auth.enabled ? "tokens" : "off (loopback only)",
        commit_policy: config.commitPolicy,
      }),
      onServing: () => (ready = true),
    });
    ready = false;
    await _close(opened, server, logger);
    return 0;
  } finally {
    lock.release();
  }
}

async function _open(config: Config, logger: Logger, floor: CommitPolicy): Promise<_Opened> {
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
  const kv = await openPrimaryKv(config.dataDir, spool.recovery.oldestLsn);
  const slots = await SlotStore.open({
    dataDir: config.dataDir,
    kv,
    timeline: config.timeline,
    flushIntervalMs: config.slotFlushIntervalMs,
    logger,
    observer: metrics.slotStoreObserver,
  });
  _logRecovered(config, logger, spool, slots);
  const state = await StateApplier.open({ spool, kv, logger });
  const primary = _newPrimary(config, { spool, slots, state, floor, logger });
  metrics.attachPrimary(primary, {
    appliedLsn: () => state.appliedLsn(),
    skippedRecords: () => state.skippedRecords,
  });
  primary.start();
  state.start();
  return { spool, kv, slots, state, primary, metrics };
}

function _newPrimary(
  config: Config,
  parts: {
    spool: Spool;
    slots: SlotStore;
    state: StateApplier;
    floor: CommitPolicy;
    logger: Logger;
  },
): Primary {
  return new Primary({
    spool: parts.spool,
    slots: parts.slots,
    stateFloor: () => parts.state.appliedLsn(),
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
    commitPolicyFloor: parts.floor,
    commitTimeoutMs: config.commitTimeoutMs,
    logger: parts.logger,
  });
}

function _logRecovered(config: Config, logger: Logger, spool: Spool, slots: SlotStore): void {
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
}

/** Shutdown, in the reverse order of opening. */
async function _close(opened: _Opened, server: Deno.HttpServer, logger: Logger): Promise<void> {
  const { spool, kv, slots, state, primary } = opened;
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
