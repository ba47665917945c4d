/**
 * Failover (SPEC.md 13.4): a real etcd and three `main.ts node` members on loopback (lease TTL 2 s),
 * a writer sending `quorum` writes to the leader, and FAILOVER_CYCLES kills (SIGKILL) of the
 * leader. Per cycle: the failover time (the kill to the first `quorum` write the new leader
 * acknowledges) and the rejoin time (the killed node restarted to its log holding the leader's
 * current LSN as a standby). Every acknowledged value is checked on the last leader at the end.
 *
 * Run: `deno task bench failover` (`--quick` or FERRY_BENCH_QUICK=1: 3 cycles).
 */

import {
  getJson,
  type Node,
  restart,
  startReplica,
  stop,
  waitApplied,
  waitUntil,
} from "../tests/helpers/cluster.ts";
import {
  agreedLeader,
  assertOneLeaderPerTerm,
  type Cluster,
  clusterEdgeArgs,
  LEASE_TTL_S,
  MEMBERS,
  newCluster,
  quorumWrite,
  startNode,
} from "../tests/helpers/cluster_nodes.ts";
import { startEtcd } from "../tests/helpers/etcd.ts";
import { appendResults } from "./results.ts";
import { quickMode } from "./args.ts";

const CYCLES_FULL = 20;
const CYCLES_QUICK = 3;
/** Keys the writer cycles over (each acknowledged value is checked at the end). */
const KEYS = 25;
/** `quorum` writes before each kill. */
const WRITES_BEFORE_KILL = 50;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A table row: p50, p99 and max of sorted milliseconds. */
function _row(measure: string, sorted: number[]): string {
  const ms = (v: number) => v.toFixed(0);
  return `| ${measure} | ${ms(percentile(sorted, 50))} | ${ms(percentile(sorted, 99))} | ${
    ms(sorted.at(-1)!)
  } |`;
}

/** One cycle: writes, the kill, the first acknowledged write on the new leader, the rejoin. */
async function cycle(
  cluster: Cluster,
  acked: Map<string, number>,
  next: { n: number },
  edges: Node[],
) {
  const leader = await agreedLeader(cluster);
  for (let i = 0; i < WRITES_BEFORE_KILL; i++) {
    const key = `k${next.n % KEYS}`;
    const value = ++next.n;
    if ((await quorumWrite(leader.base, key, value)) !== undefined) acked.set(key, value);
  }
  const killedAt = performance.now();
  await stop(leader, "SIGKILL");
  let failoverMs = 0;
  let firstLsn = 0;
  const key = `k${next.n % KEYS}`;
  const value = ++next.n;
  await waitUntil("a new leader to acknowledge a quorum write", async () => {
    for (const node of cluster.nodes.values()) {
      if (node === leader) continue;
      const lsn = await quorumWrite(node.base, key, value);
      if (lsn !== undefined) {
        failoverMs = performance.now() - killedAt;
        firstLsn = lsn;
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
  const rejoinMs = performance.now() - restartedAt;
  // Edges resume without a snapshot: the kill to each edge holding the new leader's first write.
  const edgeMs = await Promise.all(edges.map(async (edge) => {
    await waitApplied(edge.base, firstLsn, 60_000);
    return performance.now() - killedAt;
  }));
  return { failoverMs, rejoinMs, edgeMs };
}

export async function runFailoverBench(): Promise<void> {
  const cycles = quickMode() ? CYCLES_QUICK : CYCLES_FULL;
  const dir = await Deno.makeTempDir({ prefix: "ferry-failover-bench-" });
  const etcd = await startEtcd();
  const cluster = newCluster(etcd, dir);
  const failovers: number[] = [];
  const rejoins: number[] = [];
  const edgeResumes: number[] = [];
  const edges: Node[] = [];
  const acked = new Map<string, number>();
  try {
    for (const id of MEMBERS) await startNode(cluster, id);
    // Two edges, each listing every member (n1, then n2 first): an edge moves to the new leader.
    for (const [i, id] of ["n1", "n2"].entries()) {
      const node = cluster.nodes.get(id)!;
      const started = await startReplica(node, {
        dataDir: `${dir}/edge-${i}`,
        replicaId: `edge-${i}`,
      });
      await stop(started);
      const args = clusterEdgeArgs(started.args, node, [...cluster.nodes.values()]);
      edges.push(await restart({ ...started, args }));
    }
    const next = { n: 0 };
    for (let i = 0; i < cycles; i++) {
      const { failoverMs, rejoinMs, edgeMs } = await cycle(cluster, acked, next, edges);
      failovers.push(failoverMs);
      rejoins.push(rejoinMs);
      edgeResumes.push(...edgeMs);
      const edgeText = edgeMs.map((ms) => ms.toFixed(0)).join(" / ");
      console.log(
        `cycle ${i + 1}/${cycles}: failover ${failoverMs.toFixed(0)} ms, rejoin ` +
          `${rejoinMs.toFixed(0)} ms, edges ${edgeText} ms`,
      );
    }
    let snapshots = 0;
    for (const edge of edges) {
      snapshots += (await getJson(edge.base, "/v1/status")).rebootstraps_total as number;
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
    edgeResumes.sort((a, b) => a - b);
    const lines = [
      `${cycles} cycles: three nodes (lease TTL ${LEASE_TTL_S} s, etcd ${etcd.url} on loopback), ` +
      `${WRITES_BEFORE_KILL} \`quorum\` writes before each SIGKILL of the leader.`,
      "",
      "| measure | p50 ms | p99 ms | max ms |",
      "|---|---:|---:|---:|",
      _row("failover: kill → first acknowledged `quorum` write on the new leader", failovers),
      _row("rejoin: restart of the killed node → its log at the leader's LSN", rejoins),
      _row(
        "edge resume: kill → each of 2 edges (listing every member) holds the new leader's first write",
        edgeResumes,
      ),
      "",
      `Acknowledged \`quorum\` values checked on the last leader: ${acked.size} keys, ${lost} lost. ` +
      "One leader per term (from every node's `cluster.leading` lines). " +
      `Snapshots loaded by the edges: ${snapshots}. An edge whose node was the one killed moves to ` +
      "the new leader (`--primary-url` lists every member).",
    ];
    for (const line of lines) console.log(line);
    await appendResults("HA: failover and rejoin through etcd", lines);
    if (lost > 0) throw new Error(`${lost} acknowledged quorum writes were lost`);
  } finally {
    for (const node of [...edges, ...cluster.nodes.values()]) {
      await stop(node, "SIGKILL").catch(() => {});
    }
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
