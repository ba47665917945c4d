/**
 * The public shapes of `FerryClient`: its options, and its answers mapped from the wire's
 * snake_case to camelCase (SPEC.md section 9).
 *
 * @module
 */

import type { DecodedFrame } from "../wal/frame.ts";
import type { ControlRecord } from "../wal/stream_codec.ts";
import type { CommitOutcome } from "../model/commit.ts";

/** Options of `new FerryClient()`. */
export interface ClientOptions {
  /** Bearer token, sent as `authorization: Bearer <token>`. */
  token?: string;
  /** The `fetch` to use (tests pass `app.request`); the global one by default. */
  fetch?: typeof fetch;
  userAgent?: string;
  /**
   * Waits `ms` between the retries of a write (`no_leader`, commit resolution); it may resolve
   * early when `signal` aborts. Real timers by default; tests pass one that returns at once.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** A monotonic clock in ms (the commit resolution's budget); `performance.now()` by default. */
  now?: () => number;
}

/** A record to write: a put carries the whole value, a delete none. */
export type WriteRecord =
  | { op: "put"; collection: string; key: string; value: unknown; ts?: number }
  | { op: "delete"; collection: string; key: string; ts?: number };

/** Options of `write()`. */
export interface WriteOptions {
  /** `local`, `ack_n=N`, `quorum` or `regions=a,b`; the server's floor when absent. */
  commitPolicy?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Settle a 503 `commit_unknown` (a cluster leader stepped down during the commit wait) through
   * `GET /v1/commits` before answering (default true); false throws that 503 as a `FerryHttpError`.
   */
  resolveCommitUnknown?: boolean;
}

/** What the commit policy reached (SPEC.md 9.2). */
export type CommitResult = CommitOutcome;

/**
 * Answer to a write: the records are durable on the primary with LSNs `firstLsn..lastLsn`.
 *
 * With `resolvedAfterStepDown`, the server answered 503 `commit_unknown` and `GET /v1/commits` then
 * found the records committed (durable on a majority of the cluster: they survive any failover).
 * `firstLsn`, `lastLsn` and `term` are the server's; what no answer said is filled in: `timeline`
 * is the 503 body's when it has one, else 0 (not known; timelines start at 1); `commit.policy` is
 * the one sent ("" for the server's floor), `commit.outcome` is what "committed" proves of it
 * (`reached` for `quorum`, `not_required` for `local`, `timed_out`, i.e. not confirmed, for any
 * other), `durableReplicas` and `regions` are empty, `required` and `observed` 0, and `waitedMs`
 * is the time the client spent settling it.
 */
export interface WriteResponse {
  firstLsn: number;
  lastLsn: number;
  term: number;
  timeline: number;
  commit: CommitResult;
  resolvedAfterStepDown?: true;
}

/** What became of a write made in one term at one LSN (SPEC.md 13.4); the first two are final. */
export type CommitFate = "committed" | "lost" | "unknown";

/** Options of `commitOutcome()`. */
export interface CommitOutcomeOptions {
  /** Ask this node (e.g. `leader.url` of an earlier answer) instead of the client's base URL. */
  url?: string;
  signal?: AbortSignal;
}

/** Answer of `GET /v1/commits/:term/:lsn`: the write's fate, and the leader the node knows of. */
export interface CommitOutcomeResponse {
  term: number;
  lsn: number;
  outcome: CommitFate;
  leader: { nodeId: string; url: string; term: number } | null;
}

/** Options of `read()`. */
export interface ReadOptions {
  /** Wait until this LSN is applied before reading. */
  minLsn?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A record read from the materialised state (SPEC.md 9.7). */
export interface ReadResponse {
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
  appliedLsn: number;
}

/** Query of a pull (SPEC.md 9.3); absent fields take the server's defaults. */
export interface PullOptions {
  sinceLsn?: number;
  maxCount?: number;
  maxBytes?: number;
  replicaId?: string;
  term?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Where the primary's log stood when it answered a pull. */
export interface PullPosition {
  currentLsn: number;
  oldestLsn: number;
  term: number;
  timeline: number;
}

/** A raw-frame pull: the frames that decoded, and where decoding stopped if one did not. */
export interface FramePull extends PullPosition {
  /** Every frame before the first one that is not "ok", in order; views into the body. */
  frames: DecodedFrame[];
  /** The first frame that did not decode (torn, flipped bit, missing): its body offset and why. */
  corrupt?: { offset: number; reason: string };
  /** The LSN the primary served after (`x-ferry-start-lsn`). */
  startLsn: number;
}

/** Query of a streaming pull (SPEC.md 13.1): a pull's, with no hold (a stream never ends idle). */
export type StreamOptions = Omit<PullOptions, "awaitTimeoutMs">;

/**
 * One item of a streaming pull, each checked in one pass: frames (views into the received bytes),
 * a control record (the primary's position, sent at the start and at least every 5 s while idle),
 * or, last, the first thing that did not decode (a flipped bit, an unknown record): the stream
 * is cancelled there, and nothing after it is yielded.
 */
export type FrameStreamItem =
  | { kind: "frames"; frames: DecodedFrame[] }
  | { kind: "control"; control: ControlRecord }
  | { kind: "corrupt"; offset: number; reason: string };

/**
 * An open streaming pull: where the primary stood when it opened, and its items. Iterating ends
 * when the primary ends the stream (resume from the last LSN received); a cut connection throws
 * the `TypeError` of `fetch`, and a body cut inside an item a `FerryResponseError`, after every
 * whole item before. Breaking out of the loop, or `cancel()`, closes it.
 */
export interface FrameStream extends AsyncIterable<FrameStreamItem> {
  position: PullPosition & { startLsn: number };
  cancel(): Promise<void>;
}

/** One record of a JSON pull. */
export interface PulledRecord {
  lsn: number;
  term: number;
  timestampMs: number;
  /** The change record as the primary parsed it (null when its payload was not JSON); unvalidated. */
  record: unknown;
}

/** A JSON pull. */
export interface JsonPull extends PullPosition {
  records: PulledRecord[];
}

/** Body of `register()`. */
export interface RegisterOptions {
  region?: string;
  /** The replica's own durable position; the slot's restart LSN when absent. */
  sinceLsn?: number;
}

/** Answer to `register()`: resume after `resumeLsn`. */
export interface RegisterResponse {
  resumeLsn: number;
  term: number;
  timeline: number;
  currentLsn: number;
}

/** Body of `ack()`. */
export interface Ack {
  appliedLsn: number;
  durableLsn?: number;
  applyErrorsTotal?: number;
  divergenceTotal?: number;
}

/** Answer to `ack()`: the replica's progress as the primary now records it. */
export interface AckResponse {
  replicaId: string;
  appliedLsn: number;
  durableLsn: number;
  applyErrorsTotal: number;
  divergenceTotal: number;
}

/** Options of `snapshot()`. */
export interface SnapshotOptions {
  /** Resume after this entry (the last one applied before a cut). */
  after?: { collection: string; key: string };
  signal?: AbortSignal;
}

/** First line of a snapshot stream. */
export interface SnapshotHeader {
  type: "header";
  startLsn: number;
  term: number;
  timeline: number;
  format: number;
  /** Entries the primary's state held when the snapshot started (`x-ferry-snapshot-entries`). */
  entriesHint?: number;
}

/** One key of a snapshot stream. */
export interface SnapshotEntry {
  type: "entry";
  collection: string;
  key: string;
  value: unknown;
  lsn: number;
  /**
   * The line exactly as received, without its terminating "\n". The trailer's CRC-32 covers the
   * UTF-8 bytes of `raw + "\n"` of every entry, in order.
   */
  raw: string;
}

/** Last line of a snapshot stream. */
export interface SnapshotTrailer {
  type: "trailer";
  endLsn: number;
  count: number;
  crc32: number;
}

/** One parsed line of a snapshot stream. */
export type SnapshotLine = SnapshotHeader | SnapshotEntry | SnapshotTrailer;

/** Options of `topology()`. */
export interface TopologyOptions {
  /** Hold the request until the epoch differs from this one (or the wait ends). */
  waitEpoch?: number;
  awaitTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A replica as the topology shows it. */
export interface TopologyReplica {
  id: string;
  region: string;
  healthy: boolean;
  rebootstrapping: boolean;
  lastAppliedLsn: number;
  lagLsn: number;
  lagMs: number;
}

/** The topology document (SPEC.md 9.5); `replicas` is empty for unauthenticated callers. */
export interface Topology {
  epoch: number;
  primary: { url: string; region: string; term: number; timeline: number; currentLsn: number };
  replicas: TopologyReplica[];
  /** In a cluster (SPEC.md 13.4): the leader this node knows, null during an election. */
  leader?: TopologyLeader | null;
}

/** The leader a cluster member names in its topology. */
export interface TopologyLeader {
  nodeId: string;
  url: string;
  term: number;
}
