/**
 * Serving until a signal: `Deno.serve` on the configured address, the `ferry.started` log line,
 * and the first SIGINT or SIGTERM. Needs `--allow-net` for the listen address.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import type { Logger } from "../core/log.ts";
import { grantedSummary } from "../core/permissions.ts";

/**
 * Serves `fetch` on the configured address (logging `ferry.started` with `started()` and the granted
 * permissions), calls `onServing`, and returns the server once SIGINT or SIGTERM arrives.
 */
export async function serveUntilSignal(
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
