/**
 * What a replica reports of itself (SPEC.md 9.7): its state machine's states and its status
 * document.
 *
 * @module
 */

import type { RebootstrapView } from "./rebootstrap_progress.ts";

/** What the replica is doing (SPEC.md 9.7). */
export type ReplicaStateName =
  | "connecting"
  | "healthy"
  | "rebootstrapping"
  | "gap"
  | "divergence"
  | "stale_term"
  | "apply_error";

/** The replica's status document (SPEC.md 9.7). */
export interface ReplicaStatus {
  role: "replica";
  replica_id: string;
  region: string | null;
  primary_url: string;
  /** Times this replica moved to another `--primary-url` node (a cluster's members). */
  upstream_switches_total: number;
  state: ReplicaStateName;
  applied_lsn: number;
  durable_lsn: number;
  primary_current_lsn: number;
  term: number;
  timeline: number;
  apply_errors_total: number;
  divergence_total: number;
  rebootstraps_total: number;
  last_error: string | null;
  applied_records_total: number;
  /** While re-bootstrapping: how far the snapshot got. */
  rebootstrap?: RebootstrapView;
}
