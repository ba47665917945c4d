// `ferry status` prints the slots as a table: where each stands and why it is kept or not.

import assert from "node:assert/strict";
import { slotsTable } from "../../src/app/cli_tables.ts";

const SLOT = {
  restart_lsn: 10,
  retained_bytes: 2048,
  growth_bytes_per_s: null,
  eta_invalidation_s: null,
  invalidation_reason: null,
  horizon_deferred: false,
};

Deno.test("slotsTable() says which slots are live, invalidated, or kept past a cap for the state", () => {
  const lines = slotsTable([
    { ...SLOT, replica_id: "a" },
    { ...SLOT, replica_id: "b", invalidation_reason: "horizon" },
    { ...SLOT, replica_id: "c", horizon_deferred: true },
  ]);
  assert.match(lines[0]!, /^SLOT\s+RESTART_LSN\s+RETAINED\s+GROWTH\s+INVALIDATED_IN\s+STATE$/);
  assert.match(lines[1]!, /^a\s.*\slive$/);
  assert.match(lines[2]!, /^b\s.*\sinvalidated \(horizon\)$/);
  assert.match(lines[3]!, /^c\s.*\slive \(past a cap; the state keeps its WAL\)$/);
});
