// Leader discovery for edges (SPEC.md 13.4) between real processes: an edge replica given every
// member's URL in `--primary-url` follows one node; when that node dies (kill -9 of the leader,
// twice, the killed leaders left down for a while), it moves to the new leader the live nodes
// name, resumes where it was without a snapshot, and its state equals the leader's key by key.

import assert from "node:assert/strict";
import {
  dumpState,
  getJson,
  type Node,
  replicaKvPath,
  restart,
  startReplica,
  stop,
  waitApplied,
  waitUntil,
} from "../helpers/cluster.ts";
import {
  agreedLeader,
  assertOneLeaderPerTerm,
  clusterEdgeArgs,
  clusterTest,
  MEMBERS,
  quorumWrite,
  startNode,
} from "../helpers/cluster_nodes.ts";

/** Leaders killed in turn (each kill leaves two live members: a majority of three). */
const KILLS = 2;
/** Quorum writes between kills. */
const WRITES_PER_ROUND = 40;
/** Keys the writes cycle over. */
const KEYS = 25;

/** A quorum write sent until the leader acknowledges it (its standbys follow it within moments). */
async function ackedWrite(leader: Node, key: string, value: number): Promise<void> {
  await waitUntil(`a quorum write of ${key} on ${leader.name}`, async () => {
    return (await quorumWrite(leader.base, key, value)) !== undefined || undefined;
  });
}

clusterTest(
  `an edge listing every member follows the new leader after kill -9, no snapshot`,
  async (cluster, dir) => {
    let edge: Node | undefined;
    for (const id of MEMBERS) await startNode(cluster, id);
    let leader = await agreedLeader(cluster);
    const started = await startReplica(leader, { dataDir: `${dir}/edge`, replicaId: "edge-1" });
    await stop(started);
    edge = await restart({
      ...started,
      args: clusterEdgeArgs(started.args, leader, [...cluster.nodes.values()]),
    });
    cluster.extra.push(edge);
    let n = 0;
    for (let kill = 0; kill <= KILLS; kill++) {
      for (let i = 0; i < WRITES_PER_ROUND; i++) await ackedWrite(leader, `k${n % KEYS}`, ++n);
      const current = (await getJson(leader.base, "/v1/status")).current_lsn as number;
      const status = await waitApplied(edge.base, current);
      assert.equal(
        status.primary_url,
        leader.base,
        `round ${kill}: the edge follows the leader`,
      );
      assert.equal(status.rebootstraps_total, 0, `round ${kill}: no snapshot`);
      assert.equal(status.upstream_switches_total, kill, `round ${kill}: one move per kill`);
      if (kill === KILLS) break;
      // The leader dies; it stays down until the edge has moved, then rejoins as a standby.
      await stop(leader, "SIGKILL");
      const dead = leader;
      leader = await agreedLeader(cluster, dead.name);
      await ackedWrite(leader, `k${n % KEYS}`, ++n);
      await waitUntil("the edge to move to the new leader", async () => {
        const now = await getJson(edge!.base, "/v1/status").catch(() => undefined);
        return now?.primary_url === leader.base || undefined;
      });
      const back = await restart(dead);
      cluster.nodes.set(dead.name, back);
      cluster.all.push(back);
    }
    assert.ok(
      edge.process.lines.some((line) => line.includes('"replica.upstream_switched"')),
      "the move is logged",
    );
    const edgeDir = edge.dataDir;
    await stop(edge);
    edge = undefined;
    await waitApplied(
      leader.base,
      (await getJson(leader.base, "/v1/status")).current_lsn as number,
    );
    await stop(leader);
    assert.deepEqual(
      await dumpState(replicaKvPath(edgeDir)),
      await dumpState(`${leader.dataDir}/ferry.kv`),
      "the edge's state equals the leader's, key by key",
    );
    assertOneLeaderPerTerm(cluster);
  },
);
