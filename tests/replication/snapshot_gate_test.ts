// SPEC.md 13.4, "Commit LSN": a snapshot shows only committed records. Its start is the state's
// applied LSN, which a capped state applier keeps at or below the commit LSN; a state found ahead
// of it (an applier left uncapped) is refused rather than streamed.

import assert from "node:assert/strict";
import { UnavailableError } from "../../src/core/errors.ts";
import { SnapshotServer } from "../../src/replication/snapshot.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const WAIT_BOUND_MS = 10_000;

function gatedOptions(gate: { lsn: number }) {
  return { primary: { members: new Set(["m1"]), commitLsn: () => gate.lsn } };
}

Deno.test("a snapshot of a state capped at the commit LSN starts at it and holds only committed entries", async () => {
  const gate = { lsn: 2 };
  await withPrimary(gatedOptions(gate), async ({ primary, kv }) => {
    for (let i = 1; i <= 4; i++) await primary.append([putPayload(`k${i}`)]);
    await withApplier({ spool: primary.spool, kv, applyUpTo: () => gate.lsn }, async (state) => {
      assert.ok(await state.waitApplied(2, { timeoutMs: WAIT_BOUND_MS }));
      const snapshots = new SnapshotServer(primary, state, { concurrencyMax: 1 });
      const opened = await snapshots.open("e1");
      assert.equal(opened.startLsn, 2);
      const lines = (await new Response(opened.body).text()).trimEnd().split("\n");
      const parsed = lines.map((line) => JSON.parse(line));
      assert.equal(parsed[0].start_lsn, 2);
      const keys = parsed.slice(1, -1).map((entry) => entry.key);
      assert.deepEqual(keys, ["k1", "k2"], "LSNs 3 and 4 are durable here, not committed");
      assert.equal(parsed.at(-1).end_lsn, 2);
    });
  });
});

Deno.test("a snapshot of a state ahead of the commit LSN is refused, never streamed", async () => {
  const gate = { lsn: 1 };
  await withPrimary(gatedOptions(gate), async ({ primary, kv }) => {
    for (let i = 1; i <= 3; i++) await primary.append([putPayload(`k${i}`)]);
    await withApplier({ spool: primary.spool, kv }, async (state) => {
      assert.ok(await state.waitApplied(3, { timeoutMs: WAIT_BOUND_MS }));
      const snapshots = new SnapshotServer(primary, state, { concurrencyMax: 1 });
      await assert.rejects(snapshots.open("e1"), UnavailableError);
      assert.equal(snapshots.active, 0, "the refused snapshot gave its place back");
      assert.equal(primary.slots.get("e1"), undefined, "nothing was pinned for it");
    });
  });
});
