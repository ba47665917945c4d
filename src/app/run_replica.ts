/**
 * The replica's life: open its store, serve reads, follow the primary until a signal, then stop
 * the loop and close the store. Needs read and write access to the data directory, `--allow-net`
 * for the listen address and the primary's host.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import { lockDataDir } from "../core/data_lock.ts";
import type { Logger } from "../core/log.ts";
import { isLoopback } from "../http/auth.ts";
import { createReplicaApp } from "../http/replica_app.ts";
import { ReplicaRuntime } from "../replica/runtime.ts";
import { serveUntilSignal } from "./serve.ts";

/** Opens the replica's store, serves reads, and follows the primary until a signal. */
export async function runReplica(config: Config, logger: Logger): Promise<number> {
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
    const server = await serveUntilSignal(config, logger, {
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
