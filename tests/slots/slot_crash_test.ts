// SPEC.md section 4, persistence under kill -9: a child churns slots (register, ack, drop,
// invalidation by a lag cap, pruning) and is killed at random points. After each kill:
// - no slot reloads newer than what was acked (announcements are printed before the act);
// - every reloaded live slot still has its WAL (oldest retained LSN ≤ restart_lsn + 1);
// - every drop or invalidation that a completed prune relied on is still there.

import assert from "node:assert/strict";
import { SlotStore } from "../../src/slots/slot_store.ts";
import { isLive } from "../../src/slots/slot.ts";
import { Spool } from "../../src/wal/spool.ts";
import { withTempDir } from "../helpers/temp.ts";
import { runUntilKilled } from "../helpers/process.ts";

const CYCLES = 10;
const CHURN_SCRIPT = new URL("../fixtures/slot_churn.ts", import.meta.url).pathname;

/** Runs the churn child and kills it 200..1400 lines after it is ready. */
function runAndKill(dir: string, cycle: number): Promise<string[]> {
  let killAt = Infinity;
  return runUntilKilled(
    ["run", "-A", "--unstable-kv", CHURN_SCRIPT, dir, String(cycle)],
    (lines) => {
      if (killAt === Infinity && lines.includes("ready")) {
        killAt = lines.length + 200 + Math.floor(Math.random() * 1200);
      }
      return lines.length >= killAt;
    },
  );
}

Deno.test("slots never reload newer than acked, and keep every drop and invalidation a prune relied on", async () => {
  await withTempDir(async (dir) => {
    const maxAnnounced = new Map<string, number>();
    const mustBeGone = new Set<string>();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      for (const line of await runAndKill(dir, cycle)) {
        const [what, a, b] = line.split(" ");
        if (what === "reg" || what === "ack") {
          maxAnnounced.set(a!, Math.max(maxAnnounced.get(a!) ?? 0, Number(b)));
        }
        if (what === "pruned" && b) { for (const id of b.split(",")) mustBeGone.add(id); }
      }
      const spool = await Spool.open({
        walDir: `${dir}/wal`,
        timeline: 1,
        term: 1,
        segmentBytesMax: 4096,
      });
      const kv = await Deno.openKv(`${dir}/ferry.kv`);
      const slots = await SlotStore.open({ dataDir: dir, kv, timeline: 1, flushIntervalMs: 1000 });
      try {
        for (const slot of slots.all()) {
          const announced = maxAnnounced.get(slot.replicaId);
          assert.ok(announced !== undefined, `slot ${slot.replicaId} was announced`);
          assert.ok(
            slot.restartLsn <= announced,
            `${slot.replicaId}: ${slot.restartLsn} <= ${announced}`,
          );
          if (isLive(slot)) {
            assert.ok(!mustBeGone.has(slot.replicaId), `${slot.replicaId} came back to life`);
            assert.ok(
              spool.oldestLsn() <= slot.restartLsn + 1,
              `WAL after ${slot.restartLsn} is retained`,
            );
          }
        }
      } finally {
        await slots.close();
        kv.close();
        await spool.close();
      }
    }
    assert.ok(mustBeGone.size > 0, "the run exercised invalidations and drops");
  });
});
