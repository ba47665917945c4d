/**
 * The one typed, frozen `Config` (SPEC.md section 10). Settings come from flags (`--data-dir x` or
 * `--data-dir=x`) with `FERRY_*` environment fallbacks, then defaults. Parsed and validated once;
 * a bad value stops the start with a message naming the setting and the value.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import {
  GIB_BYTES,
  GROUP_COMMIT_BYTES_MAX,
  MIB_BYTES,
  RECORD_BYTES_DEFAULT,
  REQUEST_BYTES_DEFAULT,
  REQUEST_RECORDS_DEFAULT,
  SEGMENT_BYTES_DEFAULT,
  SEGMENT_BYTES_MAX,
  SEGMENT_BYTES_MIN,
  TAIL_BYTES_DEFAULT,
  TAIL_BYTES_MAX,
} from "./limits.ts";

/** Which process this is. */
export type Role = "primary" | "replica";

/** Every setting, after parsing. Frozen. */
export interface Config {
  readonly role: Role;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly tokensFile: string | undefined;
  readonly region: string;
  /** URL other nodes reach this one at (topology); defaults to http://host:port. */
  readonly advertiseUrl: string;
  readonly term: number;
  readonly timeline: number;
  readonly segmentBytesMax: number;
  readonly tailBytesMax: number;
  readonly recordBytesMax: number;
  readonly requestBytesMax: number;
  readonly requestRecordsMax: number;
  readonly slotLagMaxRecords: number;
  readonly slotRetainedBytesMax: number;
  readonly slotIdleTimeoutMs: number;
  readonly retentionIntervalMs: number;
  readonly walRetainBytesMin: number;
  readonly slotFlushIntervalMs: number;
  readonly healthyWithinMs: number;
  readonly commitPolicy: string;
  readonly commitTimeoutMs: number;
  readonly failOnCommitTimeout: boolean;
  readonly snapshotConcurrencyMax: number;
  readonly primaryUrl: string | undefined;
  readonly replicaId: string | undefined;
  readonly replicaToken: string | undefined;
}

type _Kind = "string" | "int" | "bytes" | "bool";

interface _Setting {
  key: keyof Config;
  flag: string;
  kind: _Kind;
  /** The default, or a function of the role. */
  byDefault: string | number | boolean | undefined | ((role: Role) => string | number | undefined);
  min?: number;
  max?: number;
  help: string;
}

const _DAY_MS = 24 * 60 * 60 * 1000;

/** Every setting: flag, kind, default, bounds. The env name is `FERRY_` + the flag in UPPER_SNAKE. */
export const SETTINGS: readonly _Setting[] = [
  {
    key: "dataDir",
    flag: "data-dir",
    kind: "string",
    byDefault: (role) => role === "primary" ? "./data" : "./replica-data",
    help: "data directory",
  },
  { key: "host", flag: "host", kind: "string", byDefault: "127.0.0.1", help: "listen address" },
  {
    key: "port",
    flag: "port",
    kind: "int",
    byDefault: (role) => role === "primary" ? 8787 : 8788,
    min: 0,
    max: 65535,
    help: "listen port",
  },
  {
    key: "tokensFile",
    flag: "tokens-file",
    kind: "string",
    byDefault: undefined,
    help: "JSON tokens file (auth on when set)",
  },
  {
    key: "region",
    flag: "region",
    kind: "string",
    byDefault: "local",
    help: "region advertised for this node",
  },
  {
    key: "advertiseUrl",
    flag: "advertise-url",
    kind: "string",
    byDefault: undefined,
    help: "URL advertised in topology",
  },
  {
    key: "term",
    flag: "term",
    kind: "int",
    byDefault: 1,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    help: "replication term",
  },
  {
    key: "timeline",
    flag: "timeline",
    kind: "int",
    byDefault: 1,
    min: 1,
    max: 0xffff_ffff,
    help: "WAL timeline",
  },
  {
    key: "segmentBytesMax",
    flag: "segment-bytes-max",
    kind: "bytes",
    byDefault: SEGMENT_BYTES_DEFAULT,
    min: SEGMENT_BYTES_MIN,
    max: SEGMENT_BYTES_MAX,
    help: "seal a segment past this size",
  },
  {
    key: "tailBytesMax",
    flag: "tail-bytes-max",
    kind: "bytes",
    byDefault: TAIL_BYTES_DEFAULT,
    min: 0,
    max: TAIL_BYTES_MAX,
    help: "in-memory tail budget",
  },
  {
    key: "recordBytesMax",
    flag: "record-bytes-max",
    kind: "bytes",
    byDefault: RECORD_BYTES_DEFAULT,
    min: 64,
    max: REQUEST_BYTES_DEFAULT * 4,
    help: "largest record payload",
  },
  {
    key: "requestBytesMax",
    flag: "request-bytes-max",
    kind: "bytes",
    byDefault: REQUEST_BYTES_DEFAULT,
    min: 1024,
    max: GROUP_COMMIT_BYTES_MAX / 2,
    help: "largest write request body",
  },
  {
    key: "requestRecordsMax",
    flag: "request-records-max",
    kind: "int",
    byDefault: REQUEST_RECORDS_DEFAULT,
    min: 1,
    max: 10_000,
    help: "most records per write request",
  },
  {
    key: "slotLagMaxRecords",
    flag: "slot-lag-max-records",
    kind: "int",
    byDefault: 100_000,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "invalidate a slot this far behind (0 = off)",
  },
  {
    key: "slotRetainedBytesMax",
    flag: "slot-retained-bytes-max",
    kind: "bytes",
    byDefault: GIB_BYTES,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "invalidate a slot retaining more WAL (0 = off)",
  },
  {
    key: "slotIdleTimeoutMs",
    flag: "slot-idle-timeout-ms",
    kind: "int",
    byDefault: _DAY_MS,
    min: 0,
    max: 365 * _DAY_MS,
    help: "invalidate a slot idle this long (0 = off)",
  },
  {
    key: "retentionIntervalMs",
    flag: "retention-interval-ms",
    kind: "int",
    byDefault: 1000,
    min: 10,
    max: 3_600_000,
    help: "how often retention runs",
  },
  {
    key: "walRetainBytesMin",
    flag: "wal-retain-bytes-min",
    kind: "bytes",
    byDefault: 256 * MIB_BYTES,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "recent WAL always kept",
  },
  {
    key: "slotFlushIntervalMs",
    flag: "slot-flush-interval-ms",
    kind: "int",
    byDefault: 200,
    min: 1,
    max: 60_000,
    help: "coalescing window for slot persistence",
  },
  {
    key: "healthyWithinMs",
    flag: "healthy-within-ms",
    kind: "int",
    byDefault: 5000,
    min: 100,
    max: 3_600_000,
    help: "a replica seen within this is healthy",
  },
  {
    key: "commitPolicy",
    flag: "commit-policy",
    kind: "string",
    byDefault: "local",
    help: "server commit policy floor",
  },
  {
    key: "commitTimeoutMs",
    flag: "commit-timeout-ms",
    kind: "int",
    byDefault: 5000,
    min: 1,
    max: 600_000,
    help: "commit wait timeout",
  },
  {
    key: "failOnCommitTimeout",
    flag: "fail-on-commit-timeout",
    kind: "bool",
    byDefault: false,
    help: "answer 504 when a commit wait times out",
  },
  {
    key: "snapshotConcurrencyMax",
    flag: "snapshot-concurrency-max",
    kind: "int",
    byDefault: 2,
    min: 1,
    max: 64,
    help: "snapshots served at once",
  },
  {
    key: "primaryUrl",
    flag: "primary-url",
    kind: "string",
    byDefault: undefined,
    help: "replica: the primary's base URL",
  },
  {
    key: "replicaId",
    flag: "replica-id",
    kind: "string",
    byDefault: undefined,
    help: "replica: its id",
  },
  {
    key: "replicaToken",
    flag: "replica-token",
    kind: "string",
    byDefault: undefined,
    help: "replica: bearer token for the primary",
  },
];

/** Environment name of a setting: `FERRY_` + flag in UPPER_SNAKE. */
export function envName(flag: string): string {
  return "FERRY_" + flag.toUpperCase().replaceAll("-", "_");
}

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

function _parseValue(setting: _Setting, raw: string, source: string): string | number | boolean {
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
function _parseFlags(args: readonly string[]): Map<string, string> {
  const known = new Map(SETTINGS.map((s) => [s.flag, s]));
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument "${arg}"`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const setting = known.get(name);
    if (!setting) throw new ConfigError(`unknown setting --${name} (see --help)`);
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
  const flags = _parseFlags(args);
  const values: Record<string, unknown> = { role };
  for (const setting of SETTINGS) {
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
  values.advertiseUrl ??= `http://${values.host}:${values.port}`;
  const config = Object.freeze(values) as unknown as Config;
  _validate(config);
  return config;
}

function _validate(config: Config): void {
  if (config.requestBytesMax < config.recordBytesMax) {
    throw new ConfigError(
      `--request-bytes-max (${config.requestBytesMax}) must be at least --record-bytes-max (${config.recordBytesMax})`,
    );
  }
  if (config.role === "replica") {
    for (const flag of ["primary-url", "replica-id"] as const) {
      const setting = SETTINGS.find((s) => s.flag === flag)!;
      if (config[setting.key] === undefined) {
        throw new ConfigError(`a replica needs --${flag} (or ${envName(flag)})`);
      }
    }
    try {
      new URL(config.primaryUrl!);
    } catch {
      throw new ConfigError(
        `setting --primary-url has a bad value "${config.primaryUrl}": not a URL`,
      );
    }
  }
}

/** A help text listing every setting, its env name and default. */
export function settingsHelp(role: Role): string {
  const lines = SETTINGS.map((s) => {
    const fallback = typeof s.byDefault === "function" ? s.byDefault(role) : s.byDefault;
    const shown = fallback === undefined ? "" : ` (default ${fallback})`;
    return `  --${s.flag.padEnd(26)} ${envName(s.flag).padEnd(32)} ${s.help}${shown}`;
  });
  return [`usage: main.ts ${role} [settings]`, ...lines].join("\n");
}
