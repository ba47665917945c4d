// SPEC.md 8: snapshots stream with bounded concurrency. A reader that stops taking bytes must not
// hold one of the places (and a KV listing) for ever.

import assert from "node:assert/strict";
import { SnapshotBusyError } from "../../src/core/errors.ts";
import { SnapshotServer } from "../../src/replication/snapshot.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

/** Entries whose lines pass one stream chunk (64 KiB), so the stream cannot end in one read. */
const ENTRIES = 200;
const VALUE = "v".repeat(1024);
/** How long this test lets a stalled stream hold its place. */
const STALL_MS = 50;
/** Bound on waiting for the stalled stream to give its place back. */
const WAIT_BOUND_MS = 10_000;

Deno.test("a snapshot whose reader stalls ends and gives its place back", async () => {
  await withPrimary({}, async ({ primary, spool, kv }) => {
    for (let i = 0; i < ENTRIES; i++) await spool.append([putPayload(`k${i}`, VALUE)]);
    await withApplier({ spool, kv }, async (state) => {
      assert.ok(await state.waitApplied(ENTRIES, { timeoutMs: WAIT_BOUND_MS }));
      assert.equal(state.skippedRecords, 0, "every record is a change record");
      const snapshots = new SnapshotServer(primary, state, {
        concurrencyMax: 1,
        stallTimeoutMs: STALL_MS,
      });
      const stalled = (await snapshots.open("r1")).body.getReader();
      await stalled.read(); // the header; then this reader takes nothing more
      await assert.rejects(snapshots.open("r2"), SnapshotBusyError, "one place, taken");
      const deadline = Date.now() + WAIT_BOUND_MS;
      while (snapshots.active > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(snapshots.active, 0, "the stalled stream gave its place back");
      const next = await snapshots.open("r2");
      assert.equal(next.entries, ENTRIES, "the entry count as the snapshot starts");
      const text = await new Response(next.body).text();
      const trailer = JSON.parse(text.trimEnd().split("\n").at(-1)!);
      assert.deepEqual(
        [trailer.type, trailer.count],
        ["trailer", ENTRIES],
        "the next one is whole",
      );
      await stalled.read().then(() => undefined, () => undefined);
    });
  });
});
