import assert from "node:assert/strict";
import {
  type Coordinator,
  EtcdCoordinator,
  type LeaderRecord,
} from "../../src/cluster/coordinator.ts";
import { EtcdClient } from "../../src/cluster/etcd.ts";
import { checkPosition } from "../../src/cluster/history.ts";
import { ClusterMember, type MemberHooks, type MemberPosition } from "../../src/cluster/member.ts";
import { ETCD_MISSING, startEtcd } from "../helpers/etcd.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { waitUntil } from "../helpers/process.ts";

const ignore = ETCD_MISSING !== undefined;
const MEMBERS = ["a", "b", "c"];
const TTL_S = 2;

/** A member's node, reduced to what an election sees: a position and a role. */
class FakeNode implements MemberHooks {
  log: MemberPosition = { durable_lsn: 0, last_term: 0, timeline: 1 };
  highestTerm = 0;
  role: "leader" | "follower" = "follower";
  following: LeaderRecord | undefined;
  truncatedTo: number | undefined;

  position(): MemberPosition {
    return { ...this.log };
  }
  seeTerm(term: number): Promise<void> {
    this.highestTerm = Math.max(this.highestTerm, term);
    return Promise.resolve();
  }
  reconcile(history: Parameters<MemberHooks["reconcile"]>[0]): Promise<void> {
    if (history.length === 0) return Promise.resolve();
    const check = checkPosition({ lsn: this.log.durable_lsn, term: this.log.last_term }, history);
    if (!check.onHistory) {
      this.truncatedTo = check.forkLsn;
      this.log = { ...this.log, durable_lsn: check.forkLsn };
    }
    return Promise.resolve();
  }
  lead(leader: LeaderRecord): Promise<void> {
    this.role = "leader";
    this.log = { ...this.log, timeline: leader.timeline };
    return Promise.resolve();
  }
  follow(leader: LeaderRecord | undefined): Promise<void> {
    this.role = "follower";
    this.following = leader;
    return Promise.resolve();
  }
}

function member(id: string, coordinator: Coordinator, node: FakeNode): ClusterMember {
  return new ClusterMember({
    nodeId: id,
    url: `http://${id}`,
    members: MEMBERS,
    leaseTtlS: TTL_S,
    coordinator,
    hooks: node,
    logger: createMemoryLogger(),
    pollMs: 50,
  });
}

async function withEtcd(fn: (coordinator: Coordinator) => Promise<void>): Promise<void> {
  const etcd = await startEtcd();
  const client = new EtcdClient({ endpoints: [etcd.url] });
  try {
    await fn(new EtcdCoordinator(client, "members"));
  } finally {
    client.close();
    await etcd.stop();
  }
}

Deno.test({
  name: "ClusterMember: three members elect exactly one leader, and the others follow it",
  ignore,
  async fn() {
    await withEtcd(async (coordinator) => {
      const nodes = MEMBERS.map(() => new FakeNode());
      const members = MEMBERS.map((id, i) => member(id, coordinator, nodes[i]!));
      try {
        await Promise.all(members.map((m) => m.start()));
        await waitUntil("a leader and two followers", () => {
          const leaders = members.filter((m) => m.role === "leader");
          const standbys = members.filter((m) => m.role === "standby");
          return leaders.length === 1 && standbys.length === 2;
        });
        const leader = members.find((m) => m.role === "leader")!;
        assert.equal(leader.leader?.term, 1);
        for (const node of nodes.filter((n) => n.role === "follower")) {
          assert.equal(node.following?.node_id, leader.leader?.node_id);
          assert.ok(node.highestTerm >= 1);
        }
      } finally {
        await Promise.all(members.map((m) => m.stop()));
      }
    });
  },
});

Deno.test({
  name: "ClusterMember: a dead leader is replaced within the TTL plus 2 s, in a new term",
  ignore,
  async fn() {
    await withEtcd(async (coordinator) => {
      const nodes = MEMBERS.map(() => new FakeNode());
      const members = MEMBERS.map((id, i) => member(id, coordinator, nodes[i]!));
      try {
        await Promise.all(members.map((m) => m.start()));
        const first = await waitUntil("a leader", () => members.find((m) => m.role === "leader"));
        const killedAt = performance.now();
        await first.stop({ resign: false }); // like kill -9: the key stays until the lease expires
        const second = await waitUntil(
          "a new leader",
          () => members.find((m) => m !== first && m.role === "leader"),
          (TTL_S + 2) * 1000,
        );
        assert.equal(second.leader?.term, 2, "the term is raised, never reused");
        assert.ok(performance.now() - killedAt < (TTL_S + 2) * 1000);
      } finally {
        await Promise.all(members.map((m) => m.stop()));
      }
    });
  },
});

Deno.test({
  name: "ClusterMember: one live member of three never promotes; the frozen standby that holds " +
    "the last write wins once it is back",
  ignore,
  async fn() {
    await withEtcd(async (coordinator) => {
      const [b, c] = [new FakeNode(), new FakeNode()];
      // a (dead) and c acked write 101; b has only 100.
      b.log = { durable_lsn: 100, last_term: 1, timeline: 1 };
      c.log = { durable_lsn: 101, last_term: 1, timeline: 1 };
      const leaseA = await coordinator.startLease(TTL_S);
      await coordinator.promote({
        fromTerm: 0,
        leader: { node_id: "a", url: "http://a", term: 1, timeline: 1, fork_lsn: 0 },
        timeline: { timeline: 1, parent: 0, fork_lsn: 0, term: 1 },
      }, leaseA.id);
      leaseA.stop(); // a is dead: its lease is never renewed again
      const memberB = member("b", coordinator, b);
      const memberC = member("c", coordinator, c);
      try {
        await memberB.start();
        await new Promise((resolve) => setTimeout(resolve, (TTL_S + 2) * 1000));
        assert.notEqual(memberB.role, "leader", "b alone is no majority");
        assert.equal(b.highestTerm, 2, "b saw the round for term 2");
        await memberC.start(); // SIGCONT
        await waitUntil("c to lead", () => memberC.role === "leader");
        assert.equal(memberC.leader?.fork_lsn, 101, "nothing c acked is lost");
        await waitUntil("b to follow c", () => b.following?.node_id === "c");
        assert.notEqual(memberB.role, "leader");
      } finally {
        await memberB.stop();
        await memberC.stop();
      }
    });
  },
});

Deno.test({
  name: "ClusterMember: a member truncates past the fork before it answers (an old primary's tail)",
  ignore,
  async fn() {
    await withEtcd(async (coordinator) => {
      const lease = await coordinator.startLease(TTL_S);
      await coordinator.promote({
        fromTerm: 0,
        leader: { node_id: "a", url: "http://a", term: 1, timeline: 1, fork_lsn: 0 },
        timeline: { timeline: 1, parent: 0, fork_lsn: 0, term: 1 },
      }, lease.id);
      lease.stop();
      await waitUntil("a's key to expire", async () => !(await coordinator.readLeader()), 10_000);
      const lease2 = await coordinator.startLease(TTL_S);
      await coordinator.promote({
        fromTerm: 1,
        leader: { node_id: "b", url: "http://b", term: 2, timeline: 2, fork_lsn: 100 },
        timeline: { timeline: 2, parent: 1, fork_lsn: 100, term: 2 },
      }, lease2.id);
      lease2.stop();
      // a wrote 101..120 in term 1 that nobody else got: they are not on the history.
      const a = new FakeNode();
      a.log = { durable_lsn: 120, last_term: 1, timeline: 1 };
      const memberA = member("a", coordinator, a);
      try {
        await memberA.start();
        await waitUntil("a to truncate", () => a.truncatedTo !== undefined, 10_000);
        assert.equal(a.truncatedTo, 100);
      } finally {
        await memberA.stop();
      }
    });
  },
});
