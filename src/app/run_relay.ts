/**
 * A replica that keeps the log (SPEC.md 13.3): `--keep-wal` writes every frame it receives into
 * its own spool (`LogFollower`, durable before the ack), and materialises its state from that spool
 * as a primary does; `--serve-wal` also serves pulls, streams, registration, acks, segments and
 * snapshots downstream, with its own slots and retention. It is a primary's serving side over a
 * mirrored log: writes answer 307 to the upstream. Needs what a primary needs of its data
 * directory and listen address, plus `--allow-net` for the upstream's host.
 *
 * @module
 */

import { lastRecordTerm } from "./log_terms.ts";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import { FerryClient } from "../client/client.ts";
import { LogFollower } from "../replica/log_follower.ts";
import { PRIMARY_EVENTS } from "./events.ts";
import type { Listener } from "./listener.ts";
import {
  closeServing,
  closeStores,
  type OpenedServing,
  openServing,
  servingApp,
} from "./run_primary.ts";
import { type FollowerStart, reloadPrimaryCa, startFollower } from "./run_replica.ts";
import { serveUntilSignal } from "./serve.ts";
import { checkDataDirTimeline } from "./timeline_check.ts";
import type { PrimaryCa } from "./tls.ts";

/** Relays never take writes: the commit policy of the (absent) writes here is `local`. */
const RELAY_COMMIT_FLOOR = { kind: "local" } as const;

/**
 * Opens the relay's stores, serves, and follows the upstream until a signal. Returns 2 when the
 * security rules refuse the start; a setting that cannot work throws `StartupError`.
 */
export function runRelay(config: Config, baseLogger: Logger): Promise<number> {
  return startFollower(config, baseLogger, {
    eventNames: PRIMARY_EVENTS,
    checks: () => checkDataDirTimeline(config.dataDir, config.timeline),
    run: _run,
  });
}

async function _run(config: Config, logger: Logger, parts: FollowerStart): Promise<number> {
  const { security, primaryCa, events } = parts;
  // The log is opened before the follower that feeds it: the term is read through this holder.
  const holder: { follower?: LogFollower } = {};
  const opened = await openServing(config, logger, {
    floor: RELAY_COMMIT_FLOOR,
    events,
    mirror: { term: () => holder.follower?.term ?? 0 },
  });
  const upstream = holder.follower = await _follower(config, logger, opened, primaryCa);
  let ready = false;
  const app = servingApp(config, logger, opened, {
    auth: security.auth,
    isReady: () => ready && opened.spool.isWritable(),
    relay: {
      writesGoTo: () => config.primaryUrl!,
      upstream: () => ({ ...upstream.status() }),
      servesLog: config.serveWal,
    },
  });
  let server: Listener;
  try {
    server = await serveUntilSignal(config, logger, {
      fetch: app.fetch,
      started: () => ({
        role: config.serveWal ? "relay" : "replica (keeps its log)",
        replica_id: config.replicaId,
        primary_url: config.primaryUrl,
        current_lsn: opened.spool.currentLsn(),
        auth: security.auth.enabled ? "tokens" : "off (loopback only)",
      }),
      onServing: () => {
        upstream.start();
        ready = true;
      },
      security,
      onReload: primaryCa && (() => reloadPrimaryCa(primaryCa, logger)),
    });
  } catch (error) {
    await upstream.stop();
    await closeStores(opened);
    throw error;
  }
  ready = false;
  // The follower stops first: nothing is appended to the spool while it closes.
  await upstream.stop();
  await closeServing(opened, server, logger);
  return 0;
}

async function _follower(
  config: Config,
  logger: Logger,
  opened: OpenedServing,
  primaryCa: PrimaryCa | undefined,
): Promise<LogFollower> {
  return new LogFollower({
    client: new FerryClient(config.primaryUrl!, {
      token: config.replicaToken,
      fetch: primaryCa?.fetch,
    }),
    replicaId: config.replicaId!,
    region: config.region,
    upstreamUrl: config.primaryUrl!,
    spool: opened.spool,
    appliedLsn: () => opened.state.appliedLsn(),
    streamPulls: config.streamPulls,
    logger,
  }, await lastRecordTerm(opened.spool));
}
