/**
 * The election rule of SPEC 13.4 as a pure function: a member promotes itself to term T+1 only with
 * fresh answers from a majority of the fixed member list (itself included), and only when no answer
 * is ahead of it. Positions compare by (last_term, durable_lsn): a log whose last record has a
 * higher term holds every record committed before that term began; with equal last terms the
 * longer log holds the shorter one (one leader per term writes one history).
 *
 * Every member that sees no leader answers (that answer is also its candidacy), so the member that
 * is furthest ahead among a majority promotes itself, and members behind it wait for it. Answers
 * are bound to each member's lease, so the answer of a member that died goes with its lease: a
 * dead member's stale position can neither elect nor block forever.
 *
 * @module
 */

/** One member's answer for an election round. */
export interface VoteAnswer {
  node_id: string;
  /** Where the member serves (for leader discovery and fetching). */
  url: string;
  /** Highest LSN durable in the member's log. */
  durable_lsn: number;
  /** Term of the record at `durable_lsn` (0 when the log is empty). */
  last_term: number;
  /** Timeline of the member's log. */
  timeline: number;
}

/** What a member does with the answers it sees. */
export type ElectionDecision =
  | { kind: "promote"; voters: string[] }
  | { kind: "wait"; reason: "no_majority"; answered: number; needed: number }
  | { kind: "defer"; reason: "member_ahead"; ahead: VoteAnswer };

/** The smallest majority of `memberCount` members. */
export function majorityOf(memberCount: number): number {
  return Math.floor(memberCount / 2) + 1;
}

/** -1, 0 or 1 as position `a` is behind, level with or ahead of position `b`. */
export function comparePositions(
  a: Pick<VoteAnswer, "durable_lsn" | "last_term">,
  b: Pick<VoteAnswer, "durable_lsn" | "last_term">,
): number {
  if (a.last_term !== b.last_term) return a.last_term < b.last_term ? -1 : 1;
  if (a.durable_lsn !== b.durable_lsn) return a.durable_lsn < b.durable_lsn ? -1 : 1;
  return 0;
}

/**
 * Decides for member `self` given the answers of the current round. Answers from outside the member
 * list are ignored, so the majority is always of the fixed list and never shrinks.
 */
export function decideElection(
  self: VoteAnswer,
  answers: readonly VoteAnswer[],
  members: readonly string[],
): ElectionDecision {
  const byMember = new Map<string, VoteAnswer>();
  for (const answer of answers) {
    if (members.includes(answer.node_id)) byMember.set(answer.node_id, answer);
  }
  byMember.set(self.node_id, self);
  const needed = majorityOf(members.length);
  if (byMember.size < needed) {
    return { kind: "wait", reason: "no_majority", answered: byMember.size, needed };
  }
  let ahead: VoteAnswer | undefined;
  for (const answer of byMember.values()) {
    if (comparePositions(answer, ahead ?? self) > 0) ahead = answer;
  }
  if (ahead) return { kind: "defer", reason: "member_ahead", ahead };
  // Level members both try; etcd's transaction lets exactly one of them raise the term.
  return { kind: "promote", voters: [...byMember.keys()].sort() };
}
