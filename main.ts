/**
 * ferry's command line: `main.ts primary [settings]` or `main.ts replica [settings]`.
 *
 * Parses the config once, checks permissions, opens the stores in order, and closes them in reverse
 * order on SIGINT/SIGTERM.
 *
 * @module
 */

import { type Config, parseConfig, type Role, settingsHelp } from "./src/config.ts";
import { ConfigError, FerryError } from "./src/errors.ts";
import { createLogger, type Logger } from "./src/log.ts";
import {
  grantedSummary,
  missingPermissionFlags,
  missingPermissionsMessage,
  readGrantedEnv,
} from "./src/permissions.ts";
import { lockDataDir } from "./src/data_lock.ts";
import { joinPath } from "./src/files.ts";
import { Spool } from "./src/wal/spool.ts";

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
    return role === "primary" ? await runPrimary(config, logger) : 2;
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    logger.error("ferry.start_failed", { code: error.code, message: error.message });
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

/** Opens the primary's stores and (once the HTTP layer exists) serves. */
async function runPrimary(config: Config, logger: Logger): Promise<number> {
  const lock = await lockDataDir(config.dataDir);
  try {
    const spool = await Spool.open({
      walDir: joinPath(config.dataDir, "wal"),
      timeline: config.timeline,
      term: config.term,
      segmentBytesMax: config.segmentBytesMax,
      tailBytesMax: config.tailBytesMax,
      logger,
    });
    logger.info("ferry.recovered", {
      data_dir: config.dataDir,
      oldest_lsn: spool.recovery.oldestLsn,
      current_lsn: spool.recovery.currentLsn,
      segments: spool.recovery.segments,
      truncated_bytes: spool.recovery.truncatedBytes,
    });
    logger.info("ferry.started", {
      address: `${config.host}:${config.port}`,
      permissions: grantedSummary(config),
      note: "the HTTP server is not built yet; the spool opened and recovered, now closing",
    });
    await spool.close();
    logger.info("ferry.stopped", { current_lsn: spool.currentLsn() });
    return 0;
  } finally {
    lock.release();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
