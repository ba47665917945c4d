// Changing the member list (SPEC.md 13.4: fixed, changed by an explicit admin operation), exactly as
// the README's HA section documents it: stop every node, change `--members` on all of them, start
// them again. Real `main.ts node` processes and a real etcd. Grown from three members to four: a
// leader is elected, the new member (a fresh data directory) catches up to the leader's state key
// by key, a `quorum` write and an election now need three of the four, and no acknowledged write
// is lost. Shrunk from four to three: a leader is elected and two of the three make a quorum.
// Changed by two members at once: the start is refused (etcd records the list; one change at most).

import assert from "node:assert/strict";
import { dumpState, getJson, type Node, stop, waitUntil } from "../helpers/cluster.ts";
import {
  agreedLeader,
  type Cluster,
  clusterTest,
  LEASE_TTL_S,
  MEMBERS,
  nodeArgs,
  policyWrite,
  quorumWrite,
  startNode,
} from "../helpers/cluster_nodes.ts";
import { EtcdCoordinator } from "../../src/cluster/coordinator.ts";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { freePort } from "../helpers/process.ts";

/** How long a read waits for the leader's state to hold its log (after a restart of all). */
const READ_WAIT_MS = 10_000;

/** `--cluster` of the test nodes (tests/helpers/cluster_nodes.ts). */
const CLUSTER = "test";
/** The three members and a fourth added by the admin. */
const GROWN = [...MEMBERS, "n4"];
/** `quorum` writes in each phase. */
const WRITES_PER_PHASE = 10;
/** Several lease lifetimes: an election that could happen would have happened. */
const NO_ELECTION_MS = 4 * LEASE_TTL_S * 1000;
/** How often the test looks at a node that must not lead. */
const ROLE_POLL_MS = 200;

/** Key → the value last acknowledged under `quorum`. */
type Acked = Map<string, number>;

/**
 * `count` `quorum` writes of `<prefix><i>`, each sent again until acknowledged (a new leader's
 * standbys follow it within moments; the same key and value, so a repeat changes nothing).
 */
async function writeAcked(base: string, acked: Acked, prefix: string, count: number) {
  for (let i = 0; i < count; i++) {
    const key = `${prefix}${i}`;
    await waitUntil(`a quorum write of ${key}`, async () => {
      return (await quorumWrite(base, key, i)) !== undefined || undefined;
    });
    acked.set(key, i);
  }
}

/** Starts `ids` at once, as an admin restarting every node would. */
async function startAll(cluster: Cluster, ids: readonly string[]): Promise<void> {
  await Promise.all(ids.map((id) => startNode(cluster, id)));
  for (const id of ids) {
    const started = await cluster.nodes.get(id)!.process.waitFor("ferry.started");
    assert.deepEqual([...started.members as string[]].sort(), [...cluster.members!].sort());
  }
}

/** SIGTERM to every running node at once (each exits 0); none is running after. */
async function stopAll(cluster: Cluster): Promise<void> {
  await Promise.all([...cluster.nodes.values()].map((node) => stop(node)));
  cluster.nodes.clear();
}

/** Every acknowledged value is the leader's (read once its state holds its whole log). */
async function assertAckedOn(leader: Node, acked: Acked): Promise<void> {
  const current = (await getJson(leader.base, "/v1/status")).current_lsn as number;
  for (const [key, value] of acked) {
    const path = `/v1/records/items/${key}?min_lsn=${current}&await_timeout_ms=${READ_WAIT_MS}`;
    const read = await getJson(leader.base, path).catch(() => undefined);
    assert.equal(read?.value, value, `${key} survived on ${leader.name}`);
  }
}

/** Waits until every running node applied the leader's last record; returns its LSN. */
async function convergeAll(cluster: Cluster, leader: Node): Promise<number> {
  const current = (await getJson(leader.base, "/v1/status")).current_lsn as number;
  for (const node of cluster.nodes.values()) {
    await waitUntil(`${node.name} to apply ${current}`, async () => {
      const s = await getJson(node.base, "/v1/status").catch(() => undefined);
      return s && (s.applied_lsn as number) >= current ? true : undefined;
    });
  }
  return current;
}

/** Stops every node; each one's state equals the leader's, key by key, and holds `acked`. */
async function assertSameStates(cluster: Cluster, leader: Node, acked: Acked): Promise<void> {
  const nodes = [...cluster.nodes.values()];
  await stopAll(cluster);
  const expected = await dumpState(`${leader.dataDir}/ferry.kv`);
  for (const [key, value] of acked) {
    const entry = expected.find((e) => e.collection === "items" && e.key === key);
    assert.deepEqual(entry?.value, value, `${key} is in the leader's state`);
  }
  for (const node of nodes) {
    const state = await dumpState(`${node.dataDir}/ferry.kv`);
    assert.equal(state.length, expected.length, `${node.name} holds as many keys as the leader`);
    assert.deepEqual(state, expected, `${node.name} holds exactly the leader's state`);
  }
}

/**
 * With `live` up (fewer than a majority of the members), nobody leads for several lease
 * lifetimes though every live member answered the open round in etcd, and each logged an election
 * waiting for `needed` answers.
 */
async function assertNoElection(cluster: Cluster, live: Node[], needed: number): Promise<void> {
  const until = Date.now() + NO_ELECTION_MS;
  while (Date.now() < until) {
    for (const node of live) {
      const status = await getJson(node.base, "/v1/status");
      assert.notEqual(status.role, "primary", `${node.name} promoted itself`);
    }
    await new Promise((resolve) => setTimeout(resolve, ROLE_POLL_MS));
  }
  const client = new EtcdClient({ endpoints: [cluster.etcd.url] });
  try {
    const coordinator = new EtcdCoordinator(client, CLUSTER);
    const answers = await coordinator.answers((await coordinator.readTerm()) + 1);
    assert.deepEqual(answers.map((a) => a.node_id).sort(), live.map((node) => node.name).sort());
  } finally {
    client.close();
  }
  for (const node of live) {
    const waits = node.process.lines.filter((line) => line.includes('"cluster.election"'))
      .map((line) => JSON.parse(line)).filter((line) => line.decision === "wait");
    assert.equal(waits.at(-1)?.needed, needed, `${node.name} waits for ${needed} answers`);
  }
}

/** Three members take writes, stop, and start again as four, n4 with a fresh data directory. */
async function growToFour(cluster: Cluster, acked: Acked): Promise<Node> {
  cluster.members = [...MEMBERS];
  await startAll(cluster, MEMBERS);
  const first = await agreedLeader(cluster);
  await writeAcked(first.base, acked, "three-", WRITES_PER_PHASE);
  await stopAll(cluster);
  cluster.members = GROWN;
  cluster.ports.set("n4", freePort());
  await startAll(cluster, GROWN);
  const leader = await agreedLeader(cluster);
  assert.notEqual(leader.name, "n4", "the empty member is behind the others: it cannot win");
  await assertAckedOn(leader, acked);
  await writeAcked(leader.base, acked, "four-", WRITES_PER_PHASE);
  return leader;
}

/** Four members take writes, stop, and start again as three (n4 stays stopped). */
async function shrinkToThree(cluster: Cluster, acked: Acked): Promise<Node> {
  cluster.members = GROWN;
  await startAll(cluster, GROWN);
  const first = await agreedLeader(cluster);
  await writeAcked(first.base, acked, "four-", WRITES_PER_PHASE);
  await stopAll(cluster);
  cluster.members = [...MEMBERS];
  await startAll(cluster, MEMBERS);
  const leader = await agreedLeader(cluster);
  await assertAckedOn(leader, acked);
  await writeAcked(leader.base, acked, "three-", WRITES_PER_PHASE);
  return leader;
}

/** A `quorum` write's commit outcome and the standbys' acks it asked for and saw. */
async function quorumOutcome(base: string, key: string) {
  const answer = await policyWrite(base, key, 1, "quorum");
  assert.equal(answer?.status, 200, JSON.stringify(answer?.body));
  const { outcome, required, observed } = answer.body.commit;
  return { outcome, required, observed };
}

/**
 * After `killed` (the leader) died: the leader elected holds every acknowledged write and takes
 * more; `killed` rejoins; every node converges to the same state.
 */
async function assertSuccession(cluster: Cluster, killed: Node, acked: Acked): Promise<void> {
  const next = await agreedLeader(cluster, killed.name);
  await assertAckedOn(next, acked);
  await writeAcked(next.base, acked, "after-", WRITES_PER_PHASE);
  await startNode(cluster, killed.name);
  await convergeAll(cluster, next);
  await assertSameStates(cluster, next, acked);
}

clusterTest(
  `--members grown from three to four by restarting every node: the new member catches up, quorum and elections need three of four, nothing acknowledged is lost`,
  async (cluster) => {
    const acked: Acked = new Map();
    const leader = await growToFour(cluster, acked);
    await convergeAll(cluster, leader);
    const [live, stopped] = MEMBERS.filter((id) => id !== leader.name)
      .map((id) => cluster.nodes.get(id)!);
    // The leader and one standby: a majority of the old list, not of the new one.
    for (const node of [cluster.nodes.get("n4")!, stopped!]) await stop(node);
    cluster.nodes.delete("n4");
    cluster.nodes.delete(stopped!.name);
    assert.deepEqual(
      await quorumOutcome(leader.base, "two-of-four"),
      { outcome: "timed_out", required: 2, observed: 1 },
    );
    // The leader dies; with the stopped standby back, two live members of four elect nobody.
    // (The killed leader stays listed until it restarts: `agreedLeader` skips it.)
    await stop(leader, "SIGKILL");
    const back = await startNode(cluster, stopped!.name);
    await assertNoElection(cluster, [live!, back], 3);
    // A third member back: three of four elect a leader, which has every acknowledged write.
    await startNode(cluster, "n4");
    await assertSuccession(cluster, leader, acked);
  },
);

clusterTest(
  `--members shrunk from four to three by restarting every node: a leader is elected, two of three make a quorum, nothing acknowledged is lost`,
  async (cluster) => {
    cluster.ports.set("n4", freePort());
    const acked: Acked = new Map();
    const leader = await shrinkToThree(cluster, acked);
    await convergeAll(cluster, leader);
    const stopped = cluster.nodes.get(MEMBERS.find((id) => id !== leader.name)!)!;
    await stop(stopped);
    cluster.nodes.delete(stopped.name);
    // The leader and one standby: a majority of three (of four it would not be).
    assert.deepEqual(
      await quorumOutcome(leader.base, "two-of-three"),
      { outcome: "reached", required: 1, observed: 1 },
    );
    acked.set("two-of-three", 1);
    // The standby back and the leader killed: two live members of three elect a leader.
    await startNode(cluster, stopped.name);
    await stop(leader, "SIGKILL");
    await assertSuccession(cluster, leader, acked);
  },
);

clusterTest(
  `--members changed by two at once (three to five): the start exits 2 naming members_change_too_large, etcd's list stays`,
  async (cluster, dir) => {
    const etcd = cluster.etcd;
    cluster.members = [...MEMBERS];
    await startAll(cluster, MEMBERS);
    await writeAcked((await agreedLeader(cluster)).base, new Map(), "three-", 1);
    await stopAll(cluster);
    const five = [...MEMBERS, "n4", "n5"];
    const port = cluster.ports.get("n1")!;
    const args = nodeArgs({
      dataDir: `${dir}/n1`,
      port,
      id: "n1",
      etcdUrl: etcd.url,
      ports: [...cluster.ports.values()],
      members: five,
    });
    const run = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 2);
    const failed = new TextDecoder().decode(run.stderr).split("\n")
      .filter((line) => line.includes('"ferry.start_failed"')).map((line) => JSON.parse(line));
    assert.equal(failed.length, 1);
    assert.equal(failed[0].code, "members_change_too_large");
    assert.deepEqual(failed[0].added, ["n4", "n5"]);
    const client = new EtcdClient({ endpoints: [etcd.url] });
    try {
      const recorded = await new EtcdCoordinator(client, CLUSTER).readMembers();
      assert.deepEqual(recorded?.members, [...MEMBERS].sort());
    } finally {
      client.close();
    }
  },
);
