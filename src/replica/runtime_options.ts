/**
 * The options of `ReplicaRuntime.open` (`runtime.ts`).
 *
 * @module
 */

import type { FileSystem } from "../core/files.ts";
import type { Logger } from "../core/log.ts";
import type { FerryClient } from "../client/client.ts";
import type { SegmentClient } from "../client/segments.ts";

/** Options of `ReplicaRuntime.open`. */
export interface ReplicaRuntimeOptions {
  dataDir: string;
  replicaId: string;
  region?: string;
  primaryUrl: string;
  token?: string;
  /** A client to use instead of one built from `primaryUrl` and `token` (tests). */
  client?: FerryClient;
  /**
   * Every node this replica may follow, `primaryUrl` first (SPEC.md 13.4): with more than one, a
   * failing node is left for the leader or another node (`upstreams.ts`). `clientFor` and
   * `segmentsFor` build a node's clients when the replica moves.
   */
  upstreamUrls?: string[];
  clientFor?: (url: string) => FerryClient;
  segmentsFor?: (url: string) => SegmentClient;
  pullWaitMs?: number;
  pullMaxCount?: number;
  /** Snapshot responses to try before a re-bootstrap starts over; `REPLICA_SNAPSHOT_ATTEMPTS_MAX`. */
  snapshotAttemptsMax?: number;
  /** First backoff after an error (it doubles, with jitter); `REPLICA_BACKOFF_MS_MIN`. */
  backoffMsMin?: number;
  /** Longest backoff; `REPLICA_BACKOFF_MS_MAX`. */
  backoffMsMax?: number;
  logger?: Logger;
  fs?: FileSystem;
  /**
   * Lists and fetches sealed segments (`segment_catchup.ts`): after each register the replica
   * catches up through those it lacks before it pulls. Without it, it catches up by pulls alone.
   */
  segments?: SegmentClient;
  /** Follow the primary with streaming pulls (default true; false: long-polls only). */
  streamPulls?: boolean;
  /** A streaming replica acks at least this often; `REPLICA_STREAM_ACK_MS` (tests shorten it). */
  streamAckMs?: number;
  /** A stream that brings nothing this long is given up; `REPLICA_STREAM_IDLE_MS`. */
  streamIdleMs?: number;
}
