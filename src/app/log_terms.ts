/**
 * The term of a node's newest record: what a relay or a cluster member fences its upstream with,
 * and what a member answers in an election (SPEC.md 13.4).
 *
 * @module
 */

import type { Spool } from "../wal/spool.ts";

/** The term of the newest record `spool` keeps (0 when it keeps none). */
export async function lastRecordTerm(spool: Spool): Promise<number> {
  const current = spool.currentLsn();
  if (current === 0 || spool.oldestLsn() > current) return 0;
  const [last] = await spool.readSince(current - 1, 1, Number.MAX_SAFE_INTEGER);
  return last?.term ?? 0;
}
