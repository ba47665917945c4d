/**
 * The crash loop (issue: reliability harness): a primary with two replicas under concurrent writes,
 * killed with SIGKILL again and again. After every restart, every write that was acknowledged to a
 * writer must be on the primary (same LSN, same record), and the replicas must catch up to it; at
 * the end all three hold exactly the same state.
 */

import assert from "node:assert/strict";
import {
  assertSameState,
  converge,
  getJson,
  type Node,
  restart,
  startPrimary,
  startReplica,
  stop,
  waitUntil,
  writeLoad,
} from "./cluster.ts";

/** What the loop measured. */
export interface CrashLoopReport {
  cycles: number;
  acknowledgedWrites: number;
  finalLsn: number;
  /** Time from the kill to the restarted primary's "ferry.started", per cycle (ms). */
  restartMs: number[];
  /** Time from "ferry.started" until both replicas applied everything, per cycle (ms). */
  convergeMs: number[];
}

/** Every record the primary holds, by LSN (pulled as JSON in pages). */
async function pullAll(primary: Node): Promise<Map<number, Record<string, unknown>>> {
  const pulled = new Map<number, Record<string, unknown>>();
  for (let since = 0;;) {
    const page = await getJson(primary.base, `/v1/wal?since_lsn=${since}&max_count=10000`);
    const records = page.records as Array<{ lsn: number; record: Record<string, unknown> }>;
    if (records.length === 0) return pulled;
    for (const r of records) pulled.set(r.lsn, r.record);
    since = records[records.length - 1]!.lsn;
  }
}

/** Runs `cycles` kill -9 cycles in `dir` and checks every acknowledged write after each. */
export async function runCrashLoop(dir: string, cycles: number): Promise<CrashLoopReport> {
  let primary = await startPrimary(`${dir}/p`);
  const replicas = [
    await startReplica(primary, { dataDir: `${dir}/r1`, replicaId: "r1", region: "eu" }),
    await startReplica(primary, { dataDir: `${dir}/r2`, replicaId: "r2", region: "us" }),
  ];
  const acknowledged = new Map<number, Record<string, unknown>>();
  const report: CrashLoopReport = {
    cycles,
    acknowledgedWrites: 0,
    finalLsn: 0,
    restartMs: [],
    convergeMs: [],
  };
  try {
    for (let cycle = 0; cycle < cycles; cycle++) {
      const before = (await getJson(primary.base, "/v1/status")).current_lsn as number;
      const target = before + 200 + Math.floor(Math.random() * 1500);
      const load = writeLoad(primary.base, {
        writers: 4,
        perWriter: 1_000_000,
        keys: 2000,
        tag: `c${cycle}`,
        stopOnError: true,
      });
      await waitUntil(
        "writes to land",
        async () => ((await getJson(primary.base, "/v1/status")).current_lsn as number) >= target,
      );
      const killedAt = performance.now();
      await stop(primary, "SIGKILL");
      for (const { lsn, record } of await load) acknowledged.set(lsn, record);
      primary = await restart(primary);
      report.restartMs.push(performance.now() - killedAt);
      const stored = await pullAll(primary);
      for (const [lsn, record] of acknowledged) {
        const found = stored.get(lsn);
        assert.ok(found, `cycle ${cycle}: acknowledged LSN ${lsn} is on the restarted primary`);
        assert.equal(found.key, record.key);
        assert.deepEqual(found.value, record.value);
      }
      const started = performance.now();
      await converge(primary, replicas);
      report.convergeMs.push(performance.now() - started);
    }
    report.acknowledgedWrites = acknowledged.size;
    report.finalLsn = (await getJson(primary.base, "/v1/status")).current_lsn as number;
  } finally {
    await Promise.all(replicas.map((r) => stop(r).catch(() => undefined)));
    await stop(primary).catch(() => undefined);
  }
  await assertSameState(primary, replicas);
  return report;
}
