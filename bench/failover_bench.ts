/**
 * Failover (SPEC.md 13.4): a real etcd and three `main.ts node` members on loopback (lease TTL 2 s),
 * a writer sending `quorum` writes to the leader, and FAILOVER_CYCLES kills (SIGKILL) of the
 * leader. Per cycle: the failover time (the kill to the first `quorum` write the new leader
 * acknowledges) and the rejoin time (the killed node restarted to its log holding the leader's
 * current LSN as a standby). Every acknowledged value is checked on the last leader at the end.
 *
 * Run: `deno task bench failover` (`--quick` or FERRY_BENCH_QUICK=1: 3 cycles).
 */

import { getJson, stop, waitUntil } from "../tests/helpers/cluster.ts";
import {
  agreedLeader,
  assertOneLeaderPerTerm,
  type Cluster,
  LEASE_TTL_S,
  MEMBERS,
  quorumWrite,
  startNode,
} from "../tests/helpers/cluster_nodes.ts";
import { startEtcd } from "../tests/helpers/etcd.ts";
import { freePort } from "../tests/helpers/process.ts";
import { appendResults } from "./results.ts";
import { quickMode } from "./replication_bench.ts";

const CYCLES_FULL = 20;
const CYCLES_QUICK = 3;
/** Keys the writer cycles over (each acknowledged value is checked at the end). */
const KEYS = 25;
/** `quorum` writes before each kill. */
const WRITES_BEFORE_KILL = 50;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** One cycle: writes, the kill, the first acknowledged write on the new leader, the rejoin. */
async function cycle(cluster: Cluster, acked: Map<string, number>, next: { n: number }) {
  const leader = await agreedLeader(cluster);
  for (let i = 0; i < WRITES_BEFORE_KILL; i++) {
    const key = `k${next.n % KEYS}`;
    const value = ++next.n;
    if ((await quorumWrite(leader.base, key, value)) !== undefined) acked.set(key, value);
  }
  const killedAt = performance.now();
  await stop(leader, "SIGKILL");
  let failoverMs = 0;
  const key = `k${next.n % KEYS}`;
  const value = ++next.n;
  await waitUntil("a new leader to acknowledge a quorum write", async () => {
    for (const node of cluster.nodes.values()) {
      if (node === leader) continue;
      if ((await quorumWrite(node.base, key, value)) !== undefined) {
        failoverMs = performance.now() - killedAt;
        return true;
      }
    }
    return undefined;
  }, 60_000);
  acked.set(key, value);
  const restartedAt = performance.now();
  const back = await startNode(cluster, leader.name);
  const current = await agreedLeader(cluster, leader.name);
  const target = (await getJson(current.base, "/v1/status")).current_lsn as number;
  await waitUntil("the killed node to rejoin", async () => {
    const status = await getJson(back.base, "/v1/status").catch(() => undefined);
    const upstream = status?.upstream as { durable_lsn?: number } | undefined;
    return (upstream?.durable_lsn ?? 0) >= target ? true : undefined;
  }, 60_000);
  return { failoverMs, rejoinMs: performance.now() - restartedAt };
}

export async function runFailoverBench(): Promise<void> {
  const cycles = quickMode() ? CYCLES_QUICK : CYCLES_FULL;
  const dir = await Deno.makeTempDir({ prefix: "ferry-failover-bench-" });
  const etcd = await startEtcd();
  const cluster: Cluster = {
    etcd,
    nodes: new Map(),
    ports: new Map(MEMBERS.map((id) => [id, freePort()])),
    dir,
    all: [],
  };
  const failovers: number[] = [];
  const rejoins: number[] = [];
  const acked = new Map<string, number>();
  try {
    for (const id of MEMBERS) await startNode(cluster, id);
    const next = { n: 0 };
    for (let i = 0; i < cycles; i++) {
      const { failoverMs, rejoinMs } = await cycle(cluster, acked, next);
      failovers.push(failoverMs);
      rejoins.push(rejoinMs);
      console.log(
        `cycle ${i + 1}/${cycles}: failover ${failoverMs.toFixed(0)} ms, rejoin ${
          rejoinMs.toFixed(0)
        } ms`,
      );
    }
    const leader = await agreedLeader(cluster);
    let lost = 0;
    for (const [key, value] of acked) {
      const read = await getJson(leader.base, `/v1/records/items/${key}`).catch(() => undefined);
      if (!read || (read.value as number) < value) lost += 1;
    }
    assertOneLeaderPerTerm(cluster);
    failovers.sort((a, b) => a - b);
    rejoins.sort((a, b) => a - b);
    const ms = (v: number) => v.toFixed(0);
    const lines = [
      `${cycles} cycles: three nodes (lease TTL ${LEASE_TTL_S} s, etcd ${etcd.url} on loopback), ` +
      `${WRITES_BEFORE_KILL} \`quorum\` writes before each SIGKILL of the leader.`,
      "",
      "| measure | p50 ms | p99 ms | max ms |",
      "|---|---:|---:|---:|",
      `| failover: kill → first acknowledged \`quorum\` write on the new leader | ${
        ms(percentile(failovers, 50))
      } | ${ms(percentile(failovers, 99))} | ${ms(failovers.at(-1)!)} |`,
      `| rejoin: restart of the killed node → its log at the leader's LSN | ${
        ms(percentile(rejoins, 50))
      } | ${ms(percentile(rejoins, 99))} | ${ms(rejoins.at(-1)!)} |`,
      "",
      `Acknowledged \`quorum\` values checked on the last leader: ${acked.size} keys, ${lost} lost. ` +
      "One leader per term (from every node's `cluster.leading` lines).",
    ];
    for (const line of lines) console.log(line);
    await appendResults("HA: failover and rejoin through etcd", lines);
    if (lost > 0) throw new Error(`${lost} acknowledged quorum writes were lost`);
  } finally {
    for (const node of cluster.nodes.values()) await stop(node, "SIGKILL").catch(() => {});
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
