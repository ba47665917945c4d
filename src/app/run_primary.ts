/**
 * The primary's life: open the stores in order (spool, KV, slots, state), serve until a signal
 * (reloading tokens and TLS files on SIGHUP), then shut down in the reverse order. Needs read and
 * write access to the data directory, read access to the tokens and TLS files, and `--allow-net`
 * for the listen address.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { ConfigError, FerryError } from "../core/errors.ts";
import { joinPath } from "../core/files.ts";
import { SHUTDOWN_GRACE_MS } from "../core/limits.ts";
import type { Logger } from "../core/log.ts";
import type { Auth } from "../http/auth.ts";
import type { AppDeps } from "../http/router.ts";
import { createApp } from "../http/primary_app.ts";
import { Metrics } from "../metrics/primary_metrics.ts";
import { type CommitPolicy, parseCommitPolicy } from "../replication/commit_policy.ts";
import { Primary } from "../replication/primary.ts";
import { CommitWaiter } from "../replication/commit_waiter.ts";
import { SnapshotServer } from "../replication/snapshot.ts";
import { SlotStore } from "../slots/slot_store.ts";
import { StateApplier } from "../state/applier.ts";
import { BacklogGate } from "../state/backlog_gate.ts";
import { Spool } from "../wal/spool.ts";
import { EventHub, publishingLogger } from "../core/events.ts";
import { statusView } from "../http/views.ts";
import { PRIMARY_EVENTS, startTicks } from "./events.ts";
import { openPrimaryKv, PRIMARY_KV_FILE } from "./primary_kv.ts";
import type { Listener } from "./listener.ts";
import { loadSecurity } from "./security.ts";
import { checkDataDirTimeline } from "./timeline_check.ts";
import { serveUntilSignal } from "./serve.ts";
import { lockUsableDataDir, probeListenAddress } from "./start_checks.ts";

/** What a running primary (or relay) holds, in the order it was opened. */
export interface OpenedServing {
  spool: Spool;
  kv: Deno.Kv;
  slots: SlotStore;
  state: StateApplier;
  /** Holds writes while the state is too far behind (`--state-backlog-bytes-max`). */
  gate: BacklogGate;
  primary: Primary;
  metrics: Metrics;
  events: EventHub;
  ticks: { stop(): void };
}

/**
 * Opens the primary's stores in order, serves until a signal, then closes them in reverse. Returns
 * 2 when the security rules refuse the start; a setting that cannot work throws `StartupError`.
 */
export async function runPrimary(config: Config, baseLogger: Logger): Promise<number> {
  const events = new EventHub();
  const logger = publishingLogger(baseLogger, events, PRIMARY_EVENTS);
  const security = await loadSecurity(config, logger);
  if (!security) return 2;
  const commitPolicyFloor = _commitFloor(config);
  probeListenAddress(config);
  const lock = await lockUsableDataDir(config.dataDir);
  try {
    await checkDataDirTimeline(config.dataDir, config.timeline);
    const opened = await openServing(config, logger, { floor: commitPolicyFloor, events });
    let ready = false;
    const app = servingApp(config, logger, opened, {
      auth: security.auth,
      isReady: () => ready && opened.spool.isWritable(),
    });
    let server: Listener;
    try {
      server = await serveUntilSignal(config, logger, {
        fetch: app.fetch,
        started: () => ({
          auth: security.auth.enabled ? "tokens" : "off (loopback only)",
          commit_policy: config.commitPolicy,
        }),
        onServing: () => (ready = true),
        security,
      });
    } catch (error) {
      await closeStores(opened);
      throw error;
    }
    ready = false;
    await closeServing(opened, server, logger);
    return 0;
  } finally {
    lock.release();
  }
}

/** A relay's parts of the app (SPEC.md 13.3): writes go upstream, status shows the follower. */
export interface RelayAppParts {
  writesGoTo?: () => string | null;
  upstream?: () => Record<string, unknown>;
  servesLog?: boolean;
  fence?: () => void;
  leader?: () => { node_id: string; url: string; term: number } | null;
  commits?: AppDeps["commits"];
}

/** The primary's app over what `openServing` opened; a relay's with `relay`. */
export function servingApp(
  config: Config,
  logger: Logger,
  opened: OpenedServing,
  parts: { auth: Auth; isReady: () => boolean; relay?: RelayAppParts },
): ReturnType<typeof createApp> {
  const snapshots = new SnapshotServer(opened.primary, opened.state, {
    concurrencyMax: config.snapshotConcurrencyMax,
    stallTimeoutMs: config.snapshotStallTimeoutMs,
    logger,
  });
  return createApp({
    primary: opened.primary,
    auth: parts.auth,
    metrics: opened.metrics,
    limits: config,
    failOnCommitTimeout: config.failOnCommitTimeout,
    isReady: parts.isReady,
    logger,
    state: opened.state,
    writeGate: (request) => opened.gate.pass(request),
    snapshots,
    events: opened.events,
    ...parts.relay,
  });
}

/**
 * Opens the stores in order (spool, KV, slots, state) and starts the replication core. A relay
 * passes `mirror`: its term follows its upstream, and its log takes records from upstream only.
 */
/** What `openServing` opens the stores for: the role's commit floor and, in a cluster, its rules. */
export interface ServingParts {
  floor: CommitPolicy;
  events: EventHub;
  mirror?: { term: () => number };
  cluster?: { members: ReadonlySet<string> };
  positionCheck?: (position: { lsn: number; term: number }) => void;
  /** A cluster standby's mirrored failover slots: WAL after this is never pruned. */
  pruneFloor?: () => number;
  /**
   * A cluster standby (SPEC.md 13.4): edges, snapshots and the state get records only up to
   * this LSN (what it knows is committed), as a leader's get them up to its commit LSN.
   */
  edgeCap?: () => number;
}

export async function openServing(
  config: Config,
  logger: Logger,
  parts: ServingParts,
): Promise<OpenedServing> {
  const { floor, events } = parts;
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
  // In a cluster, `quorum`, the commit LSN and the state count the members only (SPEC.md 13.4).
  const members = parts.cluster?.members;
  const waiter = members ? new CommitWaiter({ members }) : undefined;
  const commitLsn = waiter ? () => waiter.commitLsn(spool.currentLsn()) ?? 0 : parts.edgeCap;
  const kvPath = joinPath(config.dataDir, PRIMARY_KV_FILE);
  const state = await StateApplier.open({ spool, kv, kvPath, logger, applyUpTo: commitLsn });
  const primary = _newPrimary(config, {
    spool,
    slots,
    state,
    floor,
    logger,
    mirror: parts.mirror,
    cluster: waiter && { members: members!, waiter },
    commitLsn,
    positionCheck: parts.positionCheck,
    pruneFloor: parts.pruneFloor,
  });
  const gate = new BacklogGate({
    segments: () => spool.segments(),
    retainedBytes: () => spool.retainedBytes(),
    state,
    bytesMax: config.stateBacklogBytesMax,
    logger,
  });
  _attachMetrics(metrics, { primary, state, gate, events });
  primary.start();
  state.start();
  const ticks = startTicks(events, {
    status: () =>
      statusView(primary, {
        appliedLsn: state.appliedLsn(),
        commitPolicy: primary.commitPolicyFloor,
        stateApply: state.applyStatus(),
      }),
    currentLsn: () => spool.currentLsn(),
  });
  return { spool, kv, slots, state, gate, primary, metrics, events, ticks };
}

/** The primary's metrics read the primary, its state and the state's gate at scrape time. */
function _attachMetrics(
  metrics: Metrics,
  parts: { primary: Primary; state: StateApplier; gate: BacklogGate; events: EventHub },
): void {
  const { state, gate } = parts;
  metrics.attachPrimary(parts.primary, {
    appliedLsn: () => state.appliedLsn(),
    skippedRecords: () => state.skippedRecords,
    stateLagMs: () => state.applyStatus().lag_ms,
    stateRestedMs: () => state.restedMs,
    writesHeld: () => gate.held,
    events: parts.events,
  });
}

function _newPrimary(
  config: Config,
  parts: {
    spool: Spool;
    slots: SlotStore;
    state: StateApplier;
    floor: CommitPolicy;
    logger: Logger;
    mirror?: { term: () => number };
    cluster?: { members: ReadonlySet<string>; waiter: CommitWaiter };
    /** Edges get records up to this (a cluster's commit LSN); absent, nothing is gated. */
    commitLsn?: () => number;
    positionCheck?: (position: { lsn: number; term: number }) => void;
    pruneFloor?: () => number;
  },
): Primary {
  const cluster = parts.cluster;
  return new Primary({
    // A cluster's leader mirrors its edges' slots to the standbys (SPEC.md 13.4).
    failoverSlots: cluster !== undefined,
    pruneFloor: parts.pruneFloor,
    waiter: cluster?.waiter,
    members: cluster?.members,
    commitLsn: parts.commitLsn,
    onCommitAdvanced: parts.commitLsn && (() => parts.state.capRaised()),
    positionCheck: parts.positionCheck,
    spool: parts.spool,
    slots: parts.slots,
    stateFloor: () => parts.state.appliedLsn(),
    term: parts.mirror?.term ?? config.term,
    mirror: parts.mirror !== undefined,
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
    slotReclaimAfterMs: config.slotReclaimAfterMs,
    slotEtaWarnS: config.slotEtaWarnS,
    streamMaxMs: config.streamMaxMs,
    streamUnsentBytesMax: config.streamUnsentBytesMax,
    streamBatchMs: config.streamBatchMs,
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

/**
 * Shutdown. Stop accepting; quiesce the spool (queued appends finish, new ones are refused, held
 * pulls answered, streams fed the last group commits); end every stream and answer every held
 * wait, holding no new one (commit waits, `min_lsn` reads, topology), so no request can keep the
 * server open; then wait for the server, and close the rest in the reverse order of opening.
 */
export async function closeServing(
  opened: OpenedServing,
  server: Listener,
  logger: Logger,
): Promise<void> {
  const { spool, state, primary } = opened;
  const serverDone = server.shutdown();
  await spool.quiesce();
  primary.streams.endAll("shutdown");
  primary.waiter.close();
  state.applied.close();
  primary.epoch.close();
  opened.ticks.stop();
  opened.events.close();
  await _serverDone(serverDone, logger);
  await closeStores(opened);
  logger.info("ferry.stopped", { current_lsn: spool.currentLsn(), slots: opened.slots.size });
}

/**
 * Waits for the server to finish its requests, but not for the last bytes of a response to a
 * client that does not read them (a stopped process behind a stream or a snapshot): the server
 * cannot finish that response, so past the grace shutdown goes on and the exit drops it.
 */
async function _serverDone(serverDone: Promise<void>, logger: Logger): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<"grace">((resolve) => {
    timer = setTimeout(() => resolve("grace"), SHUTDOWN_GRACE_MS);
  });
  const outcome = await Promise.race([serverDone, grace]);
  clearTimeout(timer);
  if (outcome === "grace") {
    logger.warn("ferry.shutdown_grace_passed", {
      grace_ms: SHUTDOWN_GRACE_MS,
      message: "a client is not reading the end of its response; its connection is dropped at exit",
    });
  }
}

/** Closes what `openServing` opened, in reverse order. */
export async function closeStores(opened: OpenedServing): Promise<void> {
  opened.ticks.stop();
  await opened.primary.stop();
  await opened.state.stop();
  await opened.slots.close();
  opened.kv.close();
  await opened.spool.close();
}

function _commitFloor(config: Config): CommitPolicy {
  try {
    return parseCommitPolicy(config.commitPolicy);
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    throw new ConfigError(`setting --commit-policy has a bad value: ${error.message}`);
  }
}
