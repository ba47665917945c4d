/**
 * The replica's life: open its store, serve reads under the primary's auth rules, follow the
 * primary until a signal (reloading tokens, TLS files and the primary's CA bundle on SIGHUP), then
 * stop the loop and close the store. Needs read and write access to the data directory, read
 * access to the tokens, TLS and CA files, `--allow-net` for the listen address and the primary's
 * host.
 *
 * @module
 */

import { type Config, primaryUrlList } from "../core/config.ts";
import { ConfigError, StartupError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { EventHub, publishingLogger } from "../core/events.ts";
import { FerryClient } from "../client/client.ts";
import { SegmentClient } from "../client/segments.ts";
import { createReplicaApp } from "../http/replica_app.ts";
import { ReplicaRuntime } from "../replica/runtime.ts";
import { REPLICA_EVENTS, startTicks } from "./events.ts";
import type { Listener } from "./listener.ts";
import { loadSecurity, type Security } from "./security.ts";
import { serveUntilSignal } from "./serve.ts";
import { lockUsableDataDir, probeListenAddress } from "./start_checks.ts";
import { PrimaryCa } from "./tls.ts";

/**
 * Opens the replica's store, serves reads, and follows the primary until a signal. Returns 2 when
 * the security rules refuse the start; a setting that cannot work throws `StartupError`.
 */
export function runReplica(config: Config, baseLogger: Logger): Promise<number> {
  return startFollower(config, baseLogger, { eventNames: REPLICA_EVENTS, run: _run });
}

/** What a replica's or relay's run gets from `startFollower`. */
export interface FollowerStart {
  security: Security;
  primaryCa: PrimaryCa | undefined;
  events: EventHub;
}

/**
 * The start every follower shares (a replica, a relay): its events and logger, the security rules
 * (2 when they refuse), the upstream's CA bundle, the listen address probed and the data directory
 * locked while `checks` and `run` run.
 */
export async function startFollower(
  config: Config,
  baseLogger: Logger,
  parts: {
    eventNames: ReadonlySet<string>;
    checks?: () => Promise<void>;
    run: (config: Config, logger: Logger, start: FollowerStart) => Promise<number>;
  },
): Promise<number> {
  const events = new EventHub();
  const logger = publishingLogger(baseLogger, events, parts.eventNames);
  const security = await loadSecurity(config, logger);
  if (!security) return 2;
  const primaryCa = await loadPrimaryCa(config);
  try {
    probeListenAddress(config);
    const lock = await lockUsableDataDir(config.dataDir);
    try {
      await parts.checks?.();
      return await parts.run(config, logger, { security, primaryCa, events });
    } finally {
      lock.release();
    }
  } finally {
    primaryCa?.close();
  }
}

async function _run(config: Config, logger: Logger, parts: FollowerStart): Promise<number> {
  const { security, primaryCa, events } = parts;
  const runtime = await ReplicaRuntime.open({
    dataDir: config.dataDir,
    replicaId: config.replicaId!,
    region: config.region,
    ..._upstreams(config, primaryCa),
    streamPulls: config.streamPulls,
    logger,
  });
  let ready = false;
  const app = createReplicaApp(runtime, {
    auth: security.auth,
    logger,
    isReady: () => ready,
    events,
  });
  const ticks = startTicks(events, {
    status: () => ({ ...runtime.status() }),
    currentLsn: () => runtime.appliedLsn(),
  });
  let server: Listener;
  try {
    server = await serveUntilSignal(config, logger, {
      fetch: app.fetch,
      started: () => ({
        replica_id: config.replicaId,
        primary_url: config.primaryUrl,
        applied_lsn: runtime.appliedLsn(),
        auth: security.auth.enabled ? "tokens" : "off (loopback only)",
      }),
      onServing: () => {
        runtime.start();
        ready = true;
      },
      security,
      onReload: primaryCa && (() => reloadPrimaryCa(primaryCa, logger)),
    });
  } catch (error) {
    ticks.stop();
    await runtime.stop();
    throw error;
  }
  ready = false;
  // Held `min_lsn` reads are answered (and no new one held) before waiting for the server.
  const serverDone = server.shutdown();
  runtime.applied.close();
  ticks.stop();
  events.close();
  await serverDone;
  await runtime.stop();
  logger.info("ferry.stopped", { applied_lsn: runtime.appliedLsn() });
  return 0;
}

/** The nodes of `--primary-url` and their clients: each shares the token, CA and segments cache. */
function _upstreams(config: Config, primaryCa: PrimaryCa | undefined) {
  const upstreamUrls = primaryUrlList(config);
  const clientFor = (url: string) =>
    new FerryClient(url, { token: config.replicaToken, fetch: primaryCa?.fetch });
  const segmentsFor = (url: string) =>
    new SegmentClient({
      primaryUrl: url,
      segmentsUrl: config.segmentsUrl,
      token: config.replicaToken,
      fetch: primaryCa?.fetch,
    });
  const primaryUrl = upstreamUrls[0]!;
  return {
    primaryUrl,
    upstreamUrls,
    clientFor,
    segmentsFor,
    client: clientFor(primaryUrl),
    segments: segmentsFor(primaryUrl),
  };
}

export async function loadPrimaryCa(config: Config): Promise<PrimaryCa | undefined> {
  if (config.primaryCa === undefined) return undefined;
  try {
    return await PrimaryCa.load(config.primaryCa);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new StartupError("ca_unusable", error.message, { flag: "--primary-ca" });
  }
}

/** SIGHUP: re-reads the CA bundle; one that does not parse keeps the bundle in use. */
export async function reloadPrimaryCa(primaryCa: PrimaryCa, logger: Logger): Promise<void> {
  try {
    await primaryCa.reload();
    logger.info("primary_ca.reloaded", { path: primaryCa.path });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logger.error("primary_ca.reload_failed", {
      path: primaryCa.path,
      message: `${error.message}; the bundle in use stays`,
    });
  }
}
