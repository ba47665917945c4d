/**
 * What a write's commit policy reached: the `commit` object of a write answer (SPEC.md 9.2), as
 * the primary's commit waiter reports it and the client reads it back.
 *
 * @module
 */

/** What one commit wait reached; the `commit` object of a write response (SPEC.md 9.2). */
export interface CommitOutcome {
  /** The policy in its text form (`formatCommitPolicy`). */
  policy: string;
  outcome: "not_required" | "reached" | "timed_out";
  /** Ids, sorted, of the registered replicas whose durable LSN was ≥ the target when it ended. */
  durableReplicas: string[];
  /** Sorted distinct regions of `durableReplicas` (replicas without a region add none). */
  regions: string[];
  /** Time from the start of the hold to its end, by the waiter's clock; 0 when nothing was held. */
  waitedMs: number;
  /** ack_n: N; quorum: floor(registered / 2) + 1; regions: how many are named; local: 0. */
  required: number;
  /** ack_n and quorum: replicas at or past the target; regions: named regions covered; local: 0. */
  observed: number;
}
