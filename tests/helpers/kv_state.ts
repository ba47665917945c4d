/**
 * Test helpers for the materialised state in Deno KV (`src/state/kv_state.ts`).
 */

import { DENO_KV_LIST_BATCH_ENTRIES_MAX } from "../../src/core/limits.ts";
import { KV_STATE_PREFIX } from "../../src/state/kv_state.ts";

/**
 * How many keys the state in `kv` holds, counted by listing every main entry (not read from the
 * meta's entry count, so tests can check that count against what is really stored).
 */
export async function countStateEntries(kv: Deno.Kv): Promise<number> {
  let count = 0;
  const selector = { prefix: [...KV_STATE_PREFIX] };
  const options = { batchSize: DENO_KV_LIST_BATCH_ENTRIES_MAX };
  for await (const _entry of kv.list(selector, options)) count += 1;
  return count;
}
