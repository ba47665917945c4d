/**
 * ferry's command line: `main.ts primary [settings]` or `main.ts replica [settings]` run a node;
 * `main.ts status|slots|drop-slot <id>|token <role>` are the operator's commands (`src/app/cli.ts`).
 *
 * Parses the config once, checks permissions, and hands off to `src/app/` (which opens the stores
 * in order and closes them in reverse order on SIGINT/SIGTERM).
 *
 * @module
 */

import { type Config, parseConfig, type Role, settingsHelp } from "./src/core/config.ts";
import { ConfigError, FerryError, StartupError } from "./src/core/errors.ts";
import { createLogger, type Logger } from "./src/core/log.ts";
import {
  missingPermissionFlags,
  missingPermissionsMessage,
  readGrantedEnv,
} from "./src/core/permissions.ts";
import { CLI_COMMANDS, runCli } from "./src/app/cli.ts";
import { runPrimary } from "./src/app/run_primary.ts";
import { runReplica } from "./src/app/run_replica.ts";
import { runRelay } from "./src/app/run_relay.ts";
import { runNode } from "./src/app/run_node.ts";

const USAGE =
  "usage: main.ts primary|replica|node [settings]   (main.ts primary --help lists them)\n" +
  "       main.ts status|slots|drop-slot <id>|token <role> [--url u] [--token t] [--json]";

/**
 * Runs the command line and returns the exit code: 0 after a clean shutdown, 2 when a setting
 * stops the start (bad value, missing permission, refused address, port in use, unusable data
 * directory or file), 1 when the data is damaged or in use.
 */
export async function main(args: readonly string[]): Promise<number> {
  const [role, ...rest] = args;
  if (role !== undefined && CLI_COMMANDS.has(role)) return await _cli(args);
  if (role !== "primary" && role !== "replica" && role !== "node") {
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
    if (role === "primary") return await runPrimary(config, logger);
    if (role === "node") return await runNode(config, logger);
    // A replica that keeps the log runs a primary's serving side over it (SPEC.md 13.3).
    return config.keepWal ? await runRelay(config, logger) : await runReplica(config, logger);
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    logger.error("ferry.start_failed", {
      ...error.details,
      code: error.code,
      message: error.message,
    });
    // 2: a setting to change (the line names it); 1: damaged or busy data.
    return error instanceof StartupError || error instanceof ConfigError ? 2 : 1;
  }
}

async function _cli(args: readonly string[]): Promise<number> {
  const outcome = await runCli(args, readGrantedEnv);
  for (const line of outcome.stdout) console.log(line);
  for (const line of outcome.stderr) console.error(line);
  return outcome.code;
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

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
