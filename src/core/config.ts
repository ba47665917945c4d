/**
 * The one typed, frozen `Config` (SPEC.md section 10). Settings come from flags (`--data-dir x` or
 * `--data-dir=x`) with `FERRY_*` environment fallbacks, then defaults. Parsed and validated once;
 * a bad value stops the start with a message naming the setting and the value.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import { GIB_BYTES, MIB_BYTES, UPSTREAM_URLS_MAX } from "./limits.ts";
import {
  type Config,
  envName,
  type Role,
  type Setting,
  SETTINGS,
  settingsOf,
  takesSetting,
} from "./settings.ts";
import { validateNodeConfig } from "./node_settings.ts";

export { type Config, envName, type Role, SETTINGS, settingsOf };

const _BYTE_SUFFIXES: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  k: 1024,
  mib: MIB_BYTES,
  m: MIB_BYTES,
  gib: GIB_BYTES,
  g: GIB_BYTES,
};

function _parseValue(setting: Setting, raw: string, source: string): string | number | boolean {
  const fail = (why: string) =>
    new ConfigError(`setting --${setting.flag} (${source}) has a bad value "${raw}": ${why}`, {
      setting: setting.flag,
      value: raw,
    });
  if (setting.kind === "string") {
    if (raw.length === 0) throw fail("it is empty");
    return raw;
  }
  if (setting.kind === "bool") {
    if (["1", "true", "yes", "on"].includes(raw)) return true;
    if (["0", "false", "no", "off"].includes(raw)) return false;
    throw fail("expected true or false");
  }
  const match = setting.kind === "bytes"
    ? /^(\d+)\s*([a-zA-Z]*)$/.exec(raw)
    : /^(\d+)()$/.exec(raw);
  const unit = _BYTE_SUFFIXES[match?.[2]?.toLowerCase() ?? "?"];
  if (!match || unit === undefined) {
    throw fail(
      setting.kind === "bytes" ? "expected bytes like 65536 or 64MiB" : "expected a whole number",
    );
  }
  const value = Number(match[1]) * unit;
  if (!Number.isSafeInteger(value)) throw fail("too large");
  if (setting.min !== undefined && value < setting.min) {
    throw fail(`below the minimum ${setting.min}`);
  }
  if (setting.max !== undefined && value > setting.max) {
    throw fail(`above the maximum ${setting.max}`);
  }
  return value;
}

/** Splits `--name value` / `--name=value` / `--flag` arguments into a map; unknown flags throw. */
function _parseFlags(role: Role, args: readonly string[]): Map<string, string> {
  const known = new Map(settingsOf(role).map((s) => [s.flag, s]));
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}"`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const setting = known.get(name);
    if (!setting) throw new ConfigError(_unknownFlagMessage(role, name));
    if (inline !== undefined) flags.set(name, inline);
    else if (
      setting.kind === "bool" && !(args[i + 1] ?? "").match(/^(true|false|1|0|yes|no|on|off)$/)
    ) {
      flags.set(name, "true");
    } else {
      const next = args[i + 1];
      if (next === undefined) throw new ConfigError(`setting --${name} needs a value`);
      flags.set(name, next);
      i += 1;
    }
  }
  return flags;
}

/**
 * Parses the settings of `role` from `args`, then `env`, then defaults, and validates them.
 *
 * @example
 * ```ts
 * const config = parseConfig("primary", ["--port", "9000"], () => undefined);
 * config.port; // 9000
 * ```
 */
export function parseConfig(
  role: Role,
  args: readonly string[],
  env: (name: string) => string | undefined,
): Config {
  const flags = _parseFlags(role, args);
  const values: Record<string, unknown> = { role };
  for (const setting of SETTINGS) {
    if (!takesSetting(role, setting)) {
      // The other role's setting keeps its default, so every Config has every field.
      const fallback = setting.byDefault;
      values[setting.key] = typeof fallback === "function" ? fallback(role) : fallback;
      continue;
    }
    const fromFlag = flags.get(setting.flag);
    const fromEnv = env(envName(setting.flag));
    if (fromFlag !== undefined) values[setting.key] = _parseValue(setting, fromFlag, "flag");
    else if (fromEnv !== undefined) {
      values[setting.key] = _parseValue(setting, fromEnv, envName(setting.flag));
    } else {
      const fallback = setting.byDefault;
      values[setting.key] = typeof fallback === "function" ? fallback(role) : fallback;
    }
  }
  const scheme = values.tlsCert === undefined ? "http" : "https";
  values.advertiseUrl ??= `${scheme}://${values.host}:${values.port}`;
  if (values.serveWal === true) values.keepWal = true;
  const config = Object.freeze(values) as unknown as Config;
  _validate(config);
  if (config.role === "node") validateNodeConfig(config);
  _checkRelayFlags(config, flags);
  return config;
}

function _validate(config: Config): void {
  if (config.requestBytesMax < config.recordBytesMax) {
    throw new ConfigError(
      `--request-bytes-max (${config.requestBytesMax}) must be at least --record-bytes-max (${config.recordBytesMax})`,
    );
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError(
      "--tls-cert and --tls-key go together: set both to serve HTTPS, or neither",
      { setting: config.tlsCert === undefined ? "tls-cert" : "tls-key" },
    );
  }
  if (config.role === "replica") {
    for (const flag of ["primary-url", "replica-id"] as const) {
      const setting = SETTINGS.find((s) => s.flag === flag)!;
      if (config[setting.key] === undefined) {
        throw new ConfigError(`a replica needs --${flag} (or ${envName(flag)})`);
      }
    }
    const urls = [
      ...primaryUrlList(config).map((url) => ["primary-url", url] as const),
      ["segments-url", config.segmentsUrl] as const,
    ];
    for (const [flag, url] of urls) {
      if (url !== undefined && !URL.canParse(url)) {
        throw new ConfigError(`setting --${flag} has a bad value "${url}": not a URL`);
      }
    }
  }
}

/**
 * The nodes of `--primary-url`: one URL, or a comma list of a cluster's members (an edge replica
 * follows whichever works, SPEC.md 13.4). A relay follows one upstream.
 */
export function primaryUrlList(config: Config): string[] {
  const urls = (config.primaryUrl ?? "").split(",").map((url) => url.trim()).filter((url) => url);
  if (urls.length > UPSTREAM_URLS_MAX) {
    throw new ConfigError(`--primary-url lists ${urls.length} URLs; at most ${UPSTREAM_URLS_MAX}`);
  }
  if (urls.length > 1 && config.keepWal) {
    throw new ConfigError(
      "--primary-url lists several URLs, but a replica that keeps a log (--keep-wal, --serve-wal) " +
        "follows one upstream: give it one URL",
    );
  }
  return urls;
}

/** A primary's setting given as a flag to a replica that keeps no log: refused, not ignored. */
function _checkRelayFlags(config: Config, flags: Map<string, string>): void {
  if (config.role !== "replica" || config.keepWal) return;
  const given = SETTINGS.find((s) => s.relay === true && flags.has(s.flag));
  if (given) {
    throw new ConfigError(
      `--${given.flag} applies to a replica only with --keep-wal or --serve-wal (its own log)`,
      { setting: given.flag },
    );
  }
}

/** Why a flag is refused: another role's setting, or no setting at all. */
function _unknownFlagMessage(role: Role, name: string): string {
  const other = SETTINGS.find((s) => s.flag === name);
  if (other?.only !== undefined) {
    return `--${name} is a ${other.only} setting; \`main.ts ${role} --help\` lists the ${role}'s`;
  }
  return `unknown setting --${name} (see --help)`;
}

/** A help text listing the settings of `role`, each with its env name and default. */
export function settingsHelp(role: Role): string {
  const lines = settingsOf(role).map((s) => {
    const fallback = typeof s.byDefault === "function" ? s.byDefault(role) : s.byDefault;
    const shown = fallback === undefined ? "" : ` (default ${fallback})`;
    const relay = role === "replica" && s.relay ? " [with --keep-wal or --serve-wal]" : "";
    return `  --${s.flag.padEnd(26)} ${envName(s.flag).padEnd(32)} ${s.help}${shown}${relay}`;
  });
  return [`usage: main.ts ${role} [settings]`, ...lines].join("\n");
}
