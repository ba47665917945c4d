/**
 * Cluster members as real processes (SPEC.md 13.4): `main.ts node` command lines on ports the test
 * picks, the leader every live node agrees on, and `quorum` writes. Shared by tests/e2e/cluster_test.ts
 * and bench/failover_bench.ts.
 */

import assert from "node:assert/strict";
import { getJson, type Node, printNodeLogs, stop } from "./cluster.ts";
import { ETCD_MISSING, type RunningEtcd, startEtcd } from "./etcd.ts";
import { withTempDir } from "./temp.ts";
import { freePort, startProcess, startTaskArgs, waitUntil } from "./process.ts";

export const MEMBERS = ["n1", "n2", "n3"];
export const LEASE_TTL_S = 2;

/** A node's command line: the start task's, as `node`, granted etcd and every member's port. */
export function nodeArgs(options: {
  dataDir: string;
  port: number;
  id: string;
  etcdUrl: string;
  ports: number[];
  leaseTtlS?: number;
  /** `--members` (default MEMBERS). */
  members?: readonly string[];
}): string[] {
  const etcdHost = new URL(options.etcdUrl).host;
  const hosts = [...options.ports.map((p) => `127.0.0.1:${p}`), etcdHost].join(",");
  return startTaskArgs(options.dataDir, options.port).map((arg) =>
    arg === "primary" ? "node" : arg.startsWith("--allow-net=") ? `--allow-net=${hosts}` : arg
  ).concat([
    "--etcd-endpoints",
    options.etcdUrl,
    "--cluster",
    "test",
    "--node-id",
    options.id,
    "--members",
    (options.members ?? MEMBERS).join(","),
    "--lease-ttl-s",
    String(options.leaseTtlS ?? LEASE_TTL_S),
  ]);
}

export interface Cluster {
  etcd: RunningEtcd;
  nodes: Map<string, Node>;
  ports: Map<string, number>;
  dir: string;
  /** Every process started, the killed ones included. */
  all: Node[];
  /** Other processes a test started (edges): killed with the cluster. */
  extra: Node[];
  /** `--members` of the nodes started from now on (default MEMBERS): an admin may change it. */
  members?: string[];
}

/** No two nodes ever led the same term (from every node's `cluster.leading` lines). */
export function assertOneLeaderPerTerm(cluster: Cluster): void {
  const leaders = new Map<number, Set<string>>();
  for (const node of cluster.all) {
    for (const line of node.process.lines.filter((l) => l.includes('"cluster.leading"'))) {
      const term = JSON.parse(line).term as number;
      leaders.set(term, (leaders.get(term) ?? new Set()).add(node.name));
    }
  }
  assert.ok(leaders.size > 0);
  for (const [term, names] of leaders) assert.equal(names.size, 1, `term ${term}: ${[...names]}`);
}

/** A cluster of MEMBERS on ports picked now, none started yet, its data under `dir`. */
export function newCluster(etcd: RunningEtcd, dir: string): Cluster {
  return {
    etcd,
    nodes: new Map(),
    ports: new Map(MEMBERS.map((id) => [id, freePort()])),
    dir,
    all: [],
    extra: [],
  };
}

export async function startNode(
  cluster: Cluster,
  id: string,
  options: { leaseTtlS?: number; env?: Record<string, string>; extraArgs?: string[] } = {},
): Promise<Node> {
  const port = cluster.ports.get(id)!;
  const dataDir = `${cluster.dir}/${id}`;
  const args = nodeArgs({
    dataDir,
    port,
    id,
    etcdUrl: cluster.etcd.url,
    ports: [...cluster.ports.values()],
    leaseTtlS: options.leaseTtlS,
    members: cluster.members,
  }).concat(options.extraArgs ?? []);
  const process = startProcess(args, options.env);
  await process.waitFor("ferry.started");
  const node = { name: id, port, base: `http://127.0.0.1:${port}`, dataDir, process, args };
  cluster.nodes.set(id, node);
  cluster.all.push(node);
  return node;
}

/** The leader every live node agrees on (from `/v1/topology`). */
export async function agreedLeader(cluster: Cluster, except?: string): Promise<Node> {
  return await waitUntil("one leader every live node names", async () => {
    const named = new Set<string>();
    for (const [id, node] of cluster.nodes) {
      if (id === except) continue;
      const topology = await getJson(node.base, "/v1/topology").catch(() => undefined);
      const leader = topology?.leader as { node_id: string } | null | undefined;
      if (!leader) return undefined;
      named.add(leader.node_id);
    }
    if (named.size !== 1) return undefined;
    const id = [...named][0]!;
    const status = await getJson(cluster.nodes.get(id)!.base, "/v1/status").catch(() => undefined);
    return status?.role === "primary" ? cluster.nodes.get(id) : undefined;
  }, 30_000);
}

/** A `quorum` write of `key`; the LSN when acknowledged as reached, else undefined. */
export async function quorumWrite(
  base: string,
  key: string,
  value: number,
): Promise<number | undefined> {
  const answer = await policyWrite(base, key, value, "quorum");
  return quorumReached(answer) ? answer!.body.last_lsn : undefined;
}

/** Whether a write's answer says its commit policy was reached. */
export function quorumReached(answer: Awaited<ReturnType<typeof policyWrite>>): boolean {
  return answer?.status === 200 && answer.body.commit?.outcome === "reached";
}

/** One write of `key` = `value` under `policy`: its status and body, or undefined (no answer). */
export async function policyWrite(
  base: string,
  key: string,
  value: number,
  policy: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any } | undefined> {
  try {
    const response = await fetch(`${base}/v1/records`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        records: [{ op: "put", collection: "items", key, value }],
        commit_policy: policy,
        timeout_ms: 3000,
      }),
      redirect: "manual",
    });
    return { status: response.status, body: await response.json() };
  } catch {
    return undefined;
  }
}

/**
 * An edge's command line (`startReplica`'s `args`) made to list every member in `--primary-url`,
 * `first` first, with `--allow-net` for each (SPEC.md 13.4: an edge follows the cluster).
 */
export function clusterEdgeArgs(args: string[], first: Node, nodes: Node[]): string[] {
  const ordered = [first, ...nodes.filter((node) => node.name !== first.name)];
  const urls = ordered.map((node) => node.base).join(",");
  const hosts = ordered.map((node) => `127.0.0.1:${node.port}`);
  return args.map((arg, i) => {
    if (args[i - 1] === "--primary-url") return urls;
    if (!arg.startsWith("--allow-net=")) return arg;
    const own = arg.slice("--allow-net=".length).split(",")[0];
    return `--allow-net=${[own, ...hosts].join(",")}`;
  });
}

/**
 * One cluster e2e test (SPEC.md 13.4): a real etcd on loopback and a cluster under a temporary
 * directory, skipped (saying why) when etcd is missing. When it fails, each process's cluster
 * lines are printed; after, every process it started (`all`, `extra`) is killed and etcd stopped.
 */
export function clusterTest(
  name: string,
  fn: (cluster: Cluster, dir: string) => Promise<void>,
): void {
  Deno.test({
    name: ETCD_MISSING ? `${name} (skipped: ${ETCD_MISSING})` : name,
    ignore: ETCD_MISSING !== undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withTempDir(async (dir) => {
        const etcd = await startEtcd();
        const cluster = newCluster(etcd, dir);
        try {
          await fn(cluster, dir);
        } catch (error) {
          await printClusterStatus(cluster);
          printClusterLogs(cluster);
          throw error;
        } finally {
          const nodes = new Set([...cluster.extra, ...cluster.all, ...cluster.nodes.values()]);
          for (const node of nodes) await stop(node, "SIGKILL").catch(() => {});
          try {
            etcd.resume(); // a test may have paused it
          } catch {
            // already gone
          }
          await etcd.stop();
        }
      }),
  });
}

/** Each process's cluster lines, warnings, errors and replica states: why a run failed. */
export function printClusterLogs(cluster: Cluster): void {
  printNodeLogs([...cluster.all, ...cluster.extra], {
    notable: (line) =>
      line.includes('"cluster.') || line.includes('"level":"error"') ||
      line.includes('"level":"warn"') || line.includes('"replica.state"'),
    notableMax: CLUSTER_LOG_LINES,
    tail: 0,
  });
}

/** What each running node's `/v1/status` says, printed (cut short) when a cluster test fails. */
async function printClusterStatus(cluster: Cluster): Promise<void> {
  for (const [id, node] of cluster.nodes) {
    const text = await fetch(`${node.base}/v1/status`, { signal: AbortSignal.timeout(STATUS_MS) })
      .then((response) => response.text())
      .catch((error) => `no answer: ${error}`);
    console.error(`--- ${id} /v1/status: ${text.slice(0, STATUS_CHARS_MAX)}`);
  }
}

/** How long a failed test waits for each node's status, and how much of it is printed. */
const STATUS_MS = 2_000;
const STATUS_CHARS_MAX = 2_000;

/** The last notable lines of each node printed when a cluster test fails. */
const CLUSTER_LOG_LINES = 60;
