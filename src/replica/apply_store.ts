/**
 * Applying a planned run of frames (`apply_plan.ts`) to a replica's store: the records and the
 * applied LSN (with the term and the frame's hash) move together in each atomic commit.
 *
 * @module
 */

import type { KvState } from "../state/kv_state.ts";
import type { ApplyPlan } from "./apply_plan.ts";

/** Stores the applies of `plan` (nothing when it has none). */
export async function applyToStore(store: KvState, plan: ApplyPlan): Promise<void> {
  if (plan.applies.length === 0) return;
  const firstLsn = plan.applies[0]!.lsn;
  const term = plan.position.lastTerm;
  await store.apply(
    plan.applies.map((a) => ({ lsn: a.lsn, record: a.record })),
    (lsn) => ({
      applied_lsn: lsn,
      last_term: term,
      // The applies have consecutive LSNs: the hash of `lsn` is found by its offset.
      last_hash: plan.applies[lsn - firstLsn]?.hash ?? null,
    }),
  );
}
