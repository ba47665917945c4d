import assert from "node:assert/strict";
import { EtcdCoordinator, type Promotion } from "../../src/cluster/coordinator.ts";
import type { VoteAnswer } from "../../src/cluster/election.ts";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { ETCD_MISSING, startEtcd } from "../helpers/etcd.ts";
import { waitUntil } from "../helpers/process.ts";

const ignore = ETCD_MISSING !== undefined;

function promotion(nodeId: string, fromTerm: number, timeline: number): Promotion {
  return {
    fromTerm,
    leader: { node_id: nodeId, url: `http://${nodeId}`, term: fromTerm + 1, timeline, fork_lsn: 0 },
    timeline: { timeline, parent: timeline - 1, fork_lsn: 0, term: fromTerm + 1 },
  };
}

function answer(nodeId: string, durable_lsn: number): VoteAnswer {
  return { node_id: nodeId, url: `http://${nodeId}`, durable_lsn, last_term: 1, timeline: 1 };
}

Deno.test({
  name: "EtcdCoordinator.promote() lets exactly one of two racing members raise the term",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const coordinator = new EtcdCoordinator(client, "race");
    const leases = [await coordinator.startLease(5), await coordinator.startLease(5)];
    try {
      const won = await Promise.all([
        coordinator.promote(promotion("a", 0, 1), leases[0]!.id),
        coordinator.promote(promotion("b", 0, 1), leases[1]!.id),
      ]);
      assert.deepEqual(won.filter(Boolean).length, 1);
      assert.equal(await coordinator.readTerm(), 1);
      const leader = await coordinator.readLeader();
      assert.equal(leader?.term, 1);
      assert.deepEqual((await coordinator.readTimelines()).map((t) => t.timeline), [1]);
    } finally {
      for (const lease of leases) lease.stop();
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdCoordinator never reuses a term: a leader that dies at once still used its term",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const coordinator = new EtcdCoordinator(client, "terms");
    try {
      const first = await coordinator.startLease(2);
      assert.ok(await coordinator.promote(promotion("a", 0, 1), first.id));
      first.stop();
      await client.revokeLease(first.id);
      assert.equal(await coordinator.readLeader(), undefined, "the leader key went with its lease");
      const second = await coordinator.startLease(2);
      // A candidate that read "no leader, last term 0" before the first promotion loses.
      assert.equal(await coordinator.promote(promotion("b", 0, 2), second.id), false);
      assert.ok(await coordinator.promote(promotion("b", 1, 2), second.id));
      assert.equal(await coordinator.readTerm(), 2);
      assert.deepEqual(
        (await coordinator.readTimelines()).map((t) => [t.timeline, t.term]),
        [[1, 1], [2, 2]],
      );
      await coordinator.resign(second.id);
      assert.equal(await coordinator.readLeader(), undefined);
      second.stop();
    } finally {
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdCoordinator answers are bound to the member's lease: a dead member's answer goes",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const coordinator = new EtcdCoordinator(client, "votes");
    const alive = await coordinator.startLease(5);
    const dying = await coordinator.startLease(2);
    try {
      await coordinator.answer(1, answer("b", 10), alive.id);
      await coordinator.answer(1, answer("c", 11), dying.id);
      assert.deepEqual((await coordinator.answers(1)).map((a) => a.node_id), ["b", "c"]);
      dying.stop(); // c's process froze or died: its keepalives stop
      await waitUntil("c's answer to expire", async () => {
        const answers = await coordinator.answers(1);
        return answers.length === 1 && answers[0]!.node_id === "b";
      }, 15_000);
    } finally {
      alive.stop();
      dying.stop();
      client.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdCoordinator records the member list once, then changes it only at the revision read",
  ignore,
  async fn() {
    const etcd = await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.url] });
    const coordinator = new EtcdCoordinator(client, "members");
    try {
      assert.equal(await coordinator.readMembers(), undefined);
      assert.equal(await coordinator.writeMembers(["n2", "n1", "n3"], undefined), true);
      assert.equal(await coordinator.writeMembers(["n1"], undefined), false, "created once");
      const first = await coordinator.readMembers();
      assert.deepEqual(first?.members, ["n1", "n2", "n3"]);
      assert.equal(await coordinator.writeMembers(["n1", "n2", "n3", "n4"], first!.revision), true);
      assert.equal(
        await coordinator.writeMembers(["n1", "n2"], first!.revision),
        false,
        "a revision another start moved",
      );
      assert.deepEqual((await coordinator.readMembers())?.members, ["n1", "n2", "n3", "n4"]);
    } finally {
      client.close();
      await etcd.stop();
    }
  },
});
