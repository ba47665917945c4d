/**
 * The timeline history as rules (SPEC 13.4, "Divergence by (lsn, term)" and `GET /v1/commits`).
 *
 * Every promotion appends one entry `{timeline, parent, fork_lsn, term}`: the new leader's log up to
 * `fork_lsn` is the history, and whatever any term wrote past a later fork is gone. So a record of
 * term X at LSN L is on the history when L is at most the smallest `fork_lsn` of every entry made
 * after X (Kafka's OffsetForLeaderEpoch asks the same question of its leader epochs).
 *
 * @module
 */

import type { TimelineEntry } from "./coordinator.ts";

/** Where a position stands against the history. */
export type HistoryCheck =
  | { onHistory: true }
  | { onHistory: false; forkLsn: number; timeline: number };

/**
 * The last LSN of term `term` that the history keeps: the smallest fork of every later entry, or
 * Infinity while no later term exists (the term is the current one).
 */
export function lastLsnOfTerm(term: number, history: readonly TimelineEntry[]): number {
  let last = Infinity;
  for (const entry of history) {
    if (entry.term > term) last = Math.min(last, entry.fork_lsn);
  }
  return last;
}

/**
 * Whether the position `(lsn, term)` (the LSN a node holds and the term of the record there) is on
 * the history. Term 0 (an empty log, or frames written before the cluster) is on it when no fork
 * lies below `lsn`. Off it, `forkLsn` is where the node must truncate to.
 */
export function checkPosition(
  position: { lsn: number; term: number },
  history: readonly TimelineEntry[],
): HistoryCheck {
  const last = lastLsnOfTerm(position.term, history);
  if (position.lsn <= last) return { onHistory: true };
  const newest = history.reduce((a, b) => (b.timeline > a.timeline ? b : a));
  return { onHistory: false, forkLsn: last, timeline: newest.timeline };
}

/** What became of a write: SPEC 13.4 `GET /v1/commits/:term/:lsn`. */
export type CommitOutcome = "committed" | "lost" | "unknown";

/**
 * The fate of the record written in `term` at `lsn`, judged from the history and the commit LSN of
 * the current leader. `committed` and `lost` are final; `unknown` means ask again later.
 *
 * - A later term exists and forked below `lsn`: lost (no leader after it holds the record).
 * - The record is at or below the commit LSN of a leader whose term is `term` or later, and no later
 *   fork cut it: committed (a majority holds it, and every future leader will).
 * - Otherwise unknown (not yet majority-durable, or this node does not know the leader's position).
 */
export function commitOutcome(
  write: { term: number; lsn: number },
  known: { history: readonly TimelineEntry[]; leaderTerm: number; commitLsn: number },
): CommitOutcome {
  const { history, leaderTerm, commitLsn } = known;
  if (!history.some((entry) => entry.term === write.term)) {
    return history.some((entry) => entry.term > write.term) ? "lost" : "unknown";
  }
  if (write.lsn > lastLsnOfTerm(write.term, history)) return "lost";
  if (leaderTerm >= write.term && write.lsn <= commitLsn) return "committed";
  return "unknown";
}
