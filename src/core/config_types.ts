/**
 * The shapes of ferry's settings: the roles, the parsed `Config`, and one `Setting`'s description.
 * The settings themselves are in `settings.ts` (and the cluster's in `node_settings.ts`).
 *
 * @module
 */

/** `node`: a cluster member (SPEC.md 13.4): a primary's settings, plus the cluster's. */
export type Role = "primary" | "replica" | "node";

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
  /** Writes wait while the primary's state has not applied more WAL than this (0: never). */
  readonly stateBacklogBytesMax: number;
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
  readonly streamBatchMs: number;
  readonly streamPulls: boolean;
  /** A replica that keeps the log in its own spool (SPEC.md 13.3). */
  readonly keepWal: boolean;
  /** A relay: a replica that serves its log downstream (implies `keepWal`). */
  readonly serveWal: boolean;
  /** A cluster member (`node`): etcd, the cluster, this node, the fixed member list, the lease. */
  readonly etcdEndpoints: string | undefined;
  readonly cluster: string | undefined;
  readonly nodeId: string | undefined;
  readonly members: string | undefined;
  readonly leaseTtlS: number;
  readonly etcdCa: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly insecurePlainHttp: boolean;
  readonly primaryUrl: string | undefined;
  readonly replicaId: string | undefined;
  readonly replicaToken: string | undefined;
  readonly primaryCa: string | undefined;
  readonly segmentsUrl: string | undefined;
}

export type SettingKind = "string" | "int" | "bytes" | "bool";

export interface Setting {
  key: keyof Config;
  flag: string;
  kind: SettingKind;
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
