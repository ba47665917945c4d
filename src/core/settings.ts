/**
 * Every setting of ferry (SPEC.md section 10): its flag, `FERRY_*` variable, kind, default, bounds
 * and role. `config.ts` parses them into the frozen `Config`.
 *
 * @module
 */

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
  SLOT_ETA_WARN_S_DEFAULT,
  SNAPSHOT_STALL_TIMEOUT_MS_DEFAULT,
  STREAM_MAX_MS_DEFAULT,
  STREAM_MAX_MS_MAX,
  STREAM_MAX_MS_MIN,
  STREAM_UNSENT_BYTES_DEFAULT,
  STREAM_UNSENT_BYTES_MAX,
  STREAM_UNSENT_BYTES_MIN,
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
  readonly slotReclaimAfterMs: number;
  readonly slotEtaWarnS: number;
  readonly snapshotStallTimeoutMs: number;
  readonly streamMaxMs: number;
  readonly streamUnsentBytesMax: number;
  readonly streamPulls: boolean;
  /** A replica that keeps the log in its own spool (SPEC.md 13.3). */
  readonly keepWal: boolean;
  /** A relay: a replica that serves its log downstream (implies `keepWal`). */
  readonly serveWal: boolean;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly insecurePlainHttp: boolean;
  readonly primaryUrl: string | undefined;
  readonly replicaId: string | undefined;
  readonly replicaToken: string | undefined;
  readonly primaryCa: string | undefined;
  readonly segmentsUrl: string | undefined;
}

type _Kind = "string" | "int" | "bytes" | "bool";

export interface Setting {
  key: keyof Config;
  flag: string;
  kind: _Kind;
  /** The default, or a function of the role. */
  byDefault: string | number | boolean | undefined | ((role: Role) => string | number | undefined);
  min?: number;
  max?: number;
  help: string;
  /** The one role the setting belongs to; both when absent. */
  only?: Role;
  /** A primary's setting that a replica keeping the log (`--keep-wal`, `--serve-wal`) takes too. */
  relay?: true;
}

const _DAY_MS = 24 * 60 * 60 * 1000;

/** Every setting: flag, kind, default, bounds. The env name is `FERRY_` + the flag in UPPER_SNAKE. */
export const SETTINGS: readonly Setting[] = [
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
    only: "primary",
    relay: true,
  },
  {
    key: "term",
    flag: "term",
    kind: "int",
    byDefault: 1,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    help: "replication term",
    only: "primary",
  },
  {
    key: "timeline",
    flag: "timeline",
    kind: "int",
    byDefault: 1,
    min: 1,
    max: 0xffff_ffff,
    help: "WAL timeline",
    only: "primary",
    relay: true,
  },
  {
    key: "segmentBytesMax",
    flag: "segment-bytes-max",
    kind: "bytes",
    byDefault: SEGMENT_BYTES_DEFAULT,
    min: SEGMENT_BYTES_MIN,
    max: SEGMENT_BYTES_MAX,
    help: "seal a segment past this size",
    only: "primary",
    relay: true,
  },
  {
    key: "tailBytesMax",
    flag: "tail-bytes-max",
    kind: "bytes",
    byDefault: TAIL_BYTES_DEFAULT,
    min: 0,
    max: TAIL_BYTES_MAX,
    help: "in-memory tail budget",
    only: "primary",
    relay: true,
  },
  {
    key: "recordBytesMax",
    flag: "record-bytes-max",
    kind: "bytes",
    byDefault: RECORD_BYTES_DEFAULT,
    min: 64,
    max: REQUEST_BYTES_DEFAULT * 4,
    help: "largest record payload",
    only: "primary",
  },
  {
    key: "requestBytesMax",
    flag: "request-bytes-max",
    kind: "bytes",
    byDefault: REQUEST_BYTES_DEFAULT,
    min: 1024,
    max: GROUP_COMMIT_BYTES_MAX / 2,
    help: "largest write request body",
    only: "primary",
  },
  {
    key: "requestRecordsMax",
    flag: "request-records-max",
    kind: "int",
    byDefault: REQUEST_RECORDS_DEFAULT,
    min: 1,
    max: 10_000,
    help: "most records per write request",
    only: "primary",
  },
  {
    key: "slotLagMaxRecords",
    flag: "slot-lag-max-records",
    kind: "int",
    byDefault: 100_000,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "invalidate a slot this far behind (0 = off)",
    only: "primary",
    relay: true,
  },
  {
    key: "slotRetainedBytesMax",
    flag: "slot-retained-bytes-max",
    kind: "bytes",
    byDefault: GIB_BYTES,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "invalidate a slot retaining more WAL (0 = off)",
    only: "primary",
    relay: true,
  },
  {
    key: "slotIdleTimeoutMs",
    flag: "slot-idle-timeout-ms",
    kind: "int",
    byDefault: _DAY_MS,
    min: 0,
    max: 365 * _DAY_MS,
    help: "invalidate a slot idle this long (0 = off)",
    only: "primary",
    relay: true,
  },
  {
    key: "retentionIntervalMs",
    flag: "retention-interval-ms",
    kind: "int",
    byDefault: 1000,
    min: 10,
    max: 3_600_000,
    help: "how often retention runs",
    only: "primary",
    relay: true,
  },
  {
    key: "walRetainBytesMin",
    flag: "wal-retain-bytes-min",
    kind: "bytes",
    byDefault: 256 * MIB_BYTES,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    help: "recent WAL always kept",
    only: "primary",
    relay: true,
  },
  {
    key: "slotFlushIntervalMs",
    flag: "slot-flush-interval-ms",
    kind: "int",
    byDefault: 200,
    min: 1,
    max: 60_000,
    help: "coalescing window for slot persistence",
    only: "primary",
    relay: true,
  },
  {
    key: "healthyWithinMs",
    flag: "healthy-within-ms",
    kind: "int",
    byDefault: 5000,
    min: 100,
    max: 3_600_000,
    help: "a replica seen within this is healthy",
    only: "primary",
    relay: true,
  },
  {
    key: "commitPolicy",
    flag: "commit-policy",
    kind: "string",
    byDefault: "local",
    help: "server commit policy floor",
    only: "primary",
  },
  {
    key: "commitTimeoutMs",
    flag: "commit-timeout-ms",
    kind: "int",
    byDefault: 5000,
    min: 1,
    max: 600_000,
    help: "commit wait timeout",
    only: "primary",
  },
  {
    key: "failOnCommitTimeout",
    flag: "fail-on-commit-timeout",
    kind: "bool",
    byDefault: false,
    help: "answer 504 when a commit wait times out",
    only: "primary",
  },
  {
    key: "snapshotConcurrencyMax",
    flag: "snapshot-concurrency-max",
    kind: "int",
    byDefault: 2,
    min: 1,
    max: 64,
    help: "snapshots served at once",
    only: "primary",
    relay: true,
  },
  {
    key: "slotReclaimAfterMs",
    flag: "slot-reclaim-after-ms",
    kind: "int",
    byDefault: _DAY_MS,
    min: 0,
    max: 365 * _DAY_MS,
    help: "drop an invalidated slot this long after its invalidation (0 = never)",
    only: "primary",
    relay: true,
  },
  {
    key: "slotEtaWarnS",
    flag: "slot-eta-warn-s",
    kind: "int",
    byDefault: SLOT_ETA_WARN_S_DEFAULT,
    min: 0,
    max: 365 * 24 * 3600,
    help: "warn when a slot's predicted invalidation is closer than this (0 = never)",
    only: "primary",
    relay: true,
  },
  {
    key: "snapshotStallTimeoutMs",
    flag: "snapshot-stall-timeout-ms",
    kind: "int",
    byDefault: SNAPSHOT_STALL_TIMEOUT_MS_DEFAULT,
    min: 100,
    max: 3_600_000,
    help: "end a snapshot stream whose reader takes nothing for this long",
    only: "primary",
    relay: true,
  },
  {
    key: "streamMaxMs",
    flag: "stream-max-ms",
    kind: "int",
    byDefault: STREAM_MAX_MS_DEFAULT,
    min: STREAM_MAX_MS_MIN,
    max: STREAM_MAX_MS_MAX,
    help: "end a streaming pull after this long (the replica resumes from its last LSN)",
    only: "primary",
    relay: true,
  },
  {
    key: "streamUnsentBytesMax",
    flag: "stream-unsent-bytes-max",
    kind: "bytes",
    byDefault: STREAM_UNSENT_BYTES_DEFAULT,
    min: STREAM_UNSENT_BYTES_MIN,
    max: STREAM_UNSENT_BYTES_MAX,
    help: "end a streaming pull whose reader leaves more than this unsent",
    only: "primary",
    relay: true,
  },
  {
    key: "streamPulls",
    flag: "stream-pulls",
    kind: "bool",
    byDefault: true,
    help: "follow the primary with a streaming pull (false: long-polls only)",
    only: "replica",
  },
  {
    key: "tlsCert",
    flag: "tls-cert",
    kind: "string",
    byDefault: undefined,
    help: "PEM certificate chain: serve HTTPS (with --tls-key)",
  },
  {
    key: "tlsKey",
    flag: "tls-key",
    kind: "string",
    byDefault: undefined,
    help: "PEM private key of --tls-cert",
  },
  {
    key: "insecurePlainHttp",
    flag: "insecure-plain-http",
    kind: "bool",
    byDefault: false,
    help: "allow plain HTTP beyond loopback (tokens travel in clear text)",
  },
  {
    key: "keepWal",
    flag: "keep-wal",
    kind: "bool",
    byDefault: false,
    help: "also keep every frame received in this replica's own spool, durable before the ack",
    only: "replica",
  },
  {
    key: "serveWal",
    flag: "serve-wal",
    kind: "bool",
    byDefault: false,
    help: "relay: serve pulls, streams, segments and snapshots downstream (implies --keep-wal)",
    only: "replica",
  },
  {
    key: "primaryUrl",
    flag: "primary-url",
    kind: "string",
    byDefault: undefined,
    help: "the primary's base URL",
    only: "replica",
  },
  {
    key: "replicaId",
    flag: "replica-id",
    kind: "string",
    byDefault: undefined,
    help: "this replica's id",
    only: "replica",
  },
  {
    key: "replicaToken",
    flag: "replica-token",
    kind: "string",
    byDefault: undefined,
    help: "bearer token for the primary",
    only: "replica",
  },
  {
    key: "primaryCa",
    flag: "primary-ca",
    kind: "string",
    byDefault: undefined,
    help: "PEM CA bundle that signs the primary's certificate",
    only: "replica",
  },
  {
    key: "segmentsUrl",
    flag: "segments-url",
    kind: "string",
    byDefault: undefined,
    help: "fetch sealed segments through this HTTP cache or CDN (default: the primary)",
    only: "replica",
  },
];

/** Whether `role` takes `setting` (a replica takes a relay's settings: `relay`). */
export function takesSetting(role: Role, setting: Setting): boolean {
  return setting.only === undefined || setting.only === role ||
    (setting.relay === true && role === "replica");
}

/** The settings of `role`. */
export function settingsOf(role: Role): Setting[] {
  return SETTINGS.filter((setting) => takesSetting(role, setting));
}

/** Environment name of a setting: `FERRY_` + flag in UPPER_SNAKE. */
export function envName(flag: string): string {
  return "FERRY_" + flag.toUpperCase().replaceAll("-", "_");
}
