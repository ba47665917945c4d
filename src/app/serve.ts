/**
 * Serving until a signal: `Deno.serve` on the configured address (HTTPS with `--tls-cert`), the
 * `ferry.started` log line, SIGHUP reloads (tokens, TLS files, and what the runner adds), and the
 * first SIGINT or SIGTERM. Needs `--allow-net` for the listen address and read access to the
 * tokens and TLS files.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import { grantedSummary } from "../core/permissions.ts";
import { Listener } from "./listener.ts";
import { reloadTokens, rereadTls, type Security } from "./security.ts";
import { listenFailure } from "./start_checks.ts";
import type { TlsPair } from "./tls.ts";
import { TLS_SWAP_SETTLE_MS } from "../core/limits.ts";
import { sleep } from "../core/waiter.ts";

/** What the runner serves and how it hears about the steps. */
export interface ServeOptions {
  fetch: (request: Request) => Response | Promise<Response>;
  started: () => Record<string, unknown>;
  onServing: () => void;
  security: Security;
  /** SIGHUP: more files to re-read after the tokens (the replica's CA bundle); logs its own. */
  onReload?: () => Promise<void>;
}

/**
 * Serves `fetch` on the configured address (logging `ferry.started` with `started()` and the granted
 * permissions), calls `onServing`, reloads on each SIGHUP, and returns the listener once SIGINT or
 * SIGTERM arrives (after a running reload ends). A port in use throws `StartupError`.
 */
export async function serveUntilSignal(
  config: Config,
  logger: Logger,
  options: ServeOptions,
): Promise<Listener> {
  const stopping = _shutdownSignal();
  let listener: Listener;
  try {
    listener = Listener.start(config, options.fetch, options.security.tls);
  } catch (error) {
    throw listenFailure(config, error);
  }
  logger.info("ferry.started", {
    address: listener.address,
    transport: options.security.tls ? "https" : "http",
    ...options.started(),
    permissions: grantedSummary(config),
  });
  options.onServing();
  const reloads = _reloadOnHangup(config, logger, listener, options);
  const signal = await stopping;
  logger.info("ferry.stopping", { signal });
  await reloads.stop();
  return listener;
}

/** SIGHUP: tokens, then `onReload`, then the TLS files; one reload at a time, none once stopping. */
function _reloadOnHangup(
  config: Config,
  logger: Logger,
  listener: Listener,
  options: ServeOptions,
): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const reload = async () => {
    logger.info("ferry.reloading", { signal: "SIGHUP" });
    await reloadTokens(config, options.security, logger);
    await options.onReload?.();
    const tls = await rereadTls(config, options.security, logger);
    if (tls) await _swapTls(listener, tls, options.security, logger);
  };
  // The listener stays after shutdown begins: removing it would let a late SIGHUP kill the process.
  Deno.addSignalListener("SIGHUP", () => {
    if (stopped) return;
    running = running.then(reload).catch((error) => logger.error("ferry.reload_failed", { error }));
  });
  return {
    stop() {
      stopped = true;
      return running;
    },
  };
}

async function _swapTls(
  listener: Listener,
  tls: TlsPair,
  security: Security,
  logger: Logger,
): Promise<void> {
  if (!listener.reloadable) {
    logger.error("tls.reload_failed", {
      message: "serving a new certificate without dropping connections needs SO_REUSEPORT, " +
        "which Deno 2.9 offers only with --unstable-net; the certificate in use stays",
    });
    return;
  }
  try {
    listener.swap(tls);
  } catch (error) {
    // Deno.serve refuses bad key material with plain Errors; anything else is not ours to judge.
    if (!(error instanceof Error)) throw error;
    logger.error("tls.reload_failed", {
      message: `${error.message}; the certificate in use stays`,
    });
    return;
  }
  security.tls = tls;
  // The old listener closes on a later turn of the runtime: a connection it still takes in that
  // moment is reset (unless net.ipv4.tcp_migrate_req moves it). Announce the reload once it has.
  await sleep(TLS_SWAP_SETTLE_MS);
  logger.info("tls.reloaded", { address: listener.address });
}

/** Resolves on the first SIGINT or SIGTERM. */
function _shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}
