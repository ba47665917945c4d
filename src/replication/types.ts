/**
 * What the primary's core takes and answers (`primary.ts`): its options, and the register, pull,
 * ack and write requests and results as the routes hand them over after validation.
 *
 * @module
 */

import type { Logger } from "../core/log.ts";
import type { CommitOutcome } from "../model/commit.ts";
import type { RetentionCaps } from "../slots/slot.ts";
import type { SlotStore } from "../slots/slot_store.ts";
import type { DecodedFrame } from "../wal/frame.ts";
import type { AppendResult, Spool } from "../wal/spool.ts";
import type { RawFrames } from "../wal/range_read.ts";
import type { CommitPolicy } from "./commit_policy.ts";
import type { CommitWaiter } from "./commit_waiter.ts";

/** Options of `new Primary()`. */
export interface PrimaryOptions {
  spool: Spool;
  slots: SlotStore;
  waiter?: CommitWaiter;
  /** The term served; a relay's follows its upstream's frames (a function). */
  term: number | (() => number);
  timeline: number;
  /** A relay's log: records come from upstream (`Spool.appendFrames`), never from `append`. */
  mirror?: boolean;
  /**
   * In a cluster (SPEC.md 13.4): the other members' ids (the standbys). Their durable acks make the
   * commit LSN and `quorum`; every other replica is an edge.
   */
  members?: ReadonlySet<string>;
  /**
   * In a cluster: the commit LSN, the highest LSN durable on a majority of the members. Edges,
   * relays, snapshots and segment lists get only records at or below it; members get everything.
   */
  commitLsn?: () => number;
  /**
   * A cluster leader (SPEC.md 13.4 failover slots): its control records carry the live slots of its
   * edges (not the members'), so the standbys keep their WAL and a new leader can adopt them.
   */
  failoverSlots?: boolean;
  /** Called when the commit LSN may have risen (the materialised state's cap rises with it). */
  onCommitAdvanced?: () => void;
  /**
   * In a cluster: judges a pull's `(since_lsn, term)` against the timeline history, throwing
   * `TimelineDivergedError` off it (SPEC.md 13.4). Without it the term must equal this primary's.
   */
  positionCheck?: (position: { lsn: number; term: number }) => void;
  region: string;
  advertiseUrl: string;
  caps: RetentionCaps;
  retentionIntervalMs: number;
  /** Recent WAL always kept, so replicas without a slot can still catch up. */
  walRetainBytesMin: number;
  healthyWithinMs: number;
  commitPolicyFloor: CommitPolicy;
  commitTimeoutMs: number;
  logger?: Logger;
  clock?: () => number;
  /** LSN through which the materialised state has applied: WAL after it is never pruned. */
  stateFloor?: () => number;
  /** One more floor retention never prunes past (a standby's mirrored failover slots). */
  pruneFloor?: () => number;
  /** An invalidated slot is dropped this long after its invalidation (0 = never). */
  slotReclaimAfterMs?: number;
  /** Warn when a slot's predicted invalidation is closer than this many seconds (0 = never). */
  slotEtaWarnS?: number;
  /** A stream ends after this long (`STREAM_MAX_MS_DEFAULT`). */
  streamMaxMs?: number;
  /** A stream ends past this many unsent bytes (`STREAM_UNSENT_BYTES_DEFAULT`). */
  streamUnsentBytesMax?: number;
  /** Streams get group commits at most once per this interval (`STREAM_BATCH_MS_DEFAULT`). */
  streamBatchMs?: number;
  /**
   * Fencing (SPEC.md 13.4): false once this node may no longer serve frames (its lease is past
   * its deadline); streams check it before serving and end ("fenced"). Always true by default.
   */
  mayServe?: () => boolean;
}

/** Answer to a register call. */
export interface RegisterResult {
  resumeLsn: number;
  term: number;
  timeline: number;
  currentLsn: number;
}

/** A pull request, after HTTP validation. */
export interface PullRequest {
  replicaId?: string;
  sinceLsn?: number;
  maxCount: number;
  maxBytes: number;
  awaitTimeoutMs: number;
  term?: number;
  signal?: AbortSignal;
}

/** Where the primary stands, sent with every pull. */
export interface PullPosition {
  startLsn: number;
  currentLsn: number;
  oldestLsn: number;
  term: number;
  timeline: number;
}

/** What a pull serves: decoded, CRC-checked frames (JSON pulls). */
export interface PullResult extends PullPosition {
  frames: DecodedFrame[];
}

/** What a raw-frame pull serves: the records as the bytes stored. */
export interface RawPullResult extends PullPosition {
  raw: RawFrames;
}

/** A streaming pull request (SPEC.md 13.1), after HTTP validation. */
export interface StreamRequest {
  replicaId?: string;
  sinceLsn?: number;
  /** Records and bytes of each catch-up read (the stream itself has no such bound). */
  maxCount: number;
  maxBytes: number;
  term?: number;
  /** Aborts when the client goes away: the stream ends at once. */
  signal?: AbortSignal;
}

/** An open stream: its body (frames and control records) and where the primary stood. */
export interface StreamOpened extends PullPosition {
  body: ReadableStream<Uint8Array>;
}

/** An ack, after HTTP validation. */
export interface AckRequest {
  appliedLsn: number;
  durableLsn?: number;
  applyErrorsTotal?: number;
  divergenceTotal?: number;
}

/** A durable write and what its commit policy reached. */
export interface WriteResult extends AppendResult {
  term: number;
  timeline: number;
  commit: CommitOutcome;
}
