// High availability through etcd (SPEC.md 13.4) between real processes: a real etcd on loopback,
// three `main.ts node` members. A node that cannot reach etcd at start says so in one line and
// exits 2. Killed with SIGKILL under `quorum` writes, the leader is replaced: a standby promotes
// and accepts writes, no `quorum`-acknowledged write is lost (checked key by key), writes sent to a
// standby are redirected to the leader, and the killed node rejoins as a standby whose state
// equals the leader's. CI runs FAILOVER_CYCLES cycles; `deno task bench failover` runs more.

import assert from "node:assert/strict";
import {
  dumpState,
  getJson,
  type Node,
  replicaKvPath,
  startReplica,
  stop,
  waitApplied,
  waitUntil,
} from "../helpers/cluster.ts";
import {
  agreedLeader,
  assertOneLeaderPerTerm,
  type Cluster,
  clusterTest,
  LEASE_TTL_S,
  MEMBERS,
  nodeArgs,
  policyWrite,
  quorumReached,
  quorumWrite,
  startNode,
} from "../helpers/cluster_nodes.ts";
import { freePort } from "../helpers/process.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { decodeFrameRun } from "../../src/wal/frame.ts";
import { Spool } from "../../src/wal/spool.ts";
import type { StateEntry } from "../../src/state/kv_state.ts";
import { withTempDir } from "../helpers/temp.ts";

const FAILOVER_CYCLES = Number(Deno.env.get("FERRY_FAILOVER_CYCLES") ?? "2");
/** How long a read waits for its bookmark to be applied. */
const READ_WAIT_MS = 10_000;
/**
 * A `quorum` write acknowledged by `base`, sent again until it is (a new leader's standbys follow
 * it within moments of its promotion; the same key and value, so a repeat changes nothing).
 */
async function ackedWrite(base: string, key: string, value: number): Promise<void> {
  await waitUntil(`a quorum write of ${key}`, async () => {
    return (await quorumWrite(base, key, value)) !== undefined || undefined;
  });
}

/** Small segments, no minimum WAL kept, retention often: pruned as soon as no slot needs them. */
const PRUNING_ARGS = [
  "--segment-bytes-max",
  "4096",
  "--wal-retain-bytes-min",
  "0",
  "--retention-interval-ms",
  "100",
];
/** The lease of the etcd-outage test. */
const OUTAGE_TTL_S = 5;
/**
 * Its short outage, as a share of the TTL: well under the quarter TTL at which an unlucky
 * keepalive phase fences (SPEC.md 13.4), leaving 0.75 s for a late keepalive answer.
 */
const SHORT_OUTAGE_OF_TTL = 0.1;
/** How long after the outage a leader may take to acknowledge a quorum write (an election or two). */
const QUORUM_AFTER_OUTAGE_MS = 60_000;
/** The writers' policies, in turn. */
const POLICIES = ["quorum", "quorum", "local", "quorum", "ack_n=1", "quorum", "quorum"];

/** A stopped node's log: its bytes, and each record's term (index LSN - 1). */
async function nodeLog(node: Node): Promise<{ bytes: Uint8Array; terms: number[] }> {
  const spool = await Spool.open({ walDir: `${node.dataDir}/wal`, timeline: 1, term: 1 });
  try {
    const raw = await spool.readRawSince(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const bytes = concatBytes(raw.chunks, raw.byteLength);
    return { bytes, terms: decodeFrameRun(bytes).frames.map((frame) => frame.term) };
  } finally {
    await spool.close();
  }
}

Deno.test({
  name: "a node that cannot reach etcd at start logs one line and exits 2",
  fn: async () => {
    await withTempDir(async (dir) => {
      const port = freePort();
      const args = nodeArgs({
        dataDir: dir,
        port,
        id: "n1",
        etcdUrl: `http://127.0.0.1:${freePort()}`,
        ports: [port],
      });
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(code, 2);
      const lines = new TextDecoder().decode(stderr).trim().split("\n").filter((l) =>
        l.includes('"level":"error"')
      );
      assert.equal(lines.length, 1, lines.join("\n"));
      const line = JSON.parse(lines[0]!);
      assert.equal(line.event, "ferry.start_failed");
      assert.equal(line.code, "etcd_unavailable");
      assert.match(line.message, /cannot reach etcd/);
    });
  },
});

clusterTest(
  `three nodes: the leader killed under quorum writes is replaced, nothing acknowledged is lost, it rejoins`,
  async (cluster, dir) => {
    const edges = cluster.extra;
    for (const id of MEMBERS) await startNode(cluster, id);
    // Two edge replicas, each following one node (a standby serves its log as a relay does).
    for (const [i, id] of ["n1", "n2"].entries()) {
      const node = cluster.nodes.get(id)!;
      edges.push(
        await startReplica(node, { dataDir: `${dir}/edge-${i}`, replicaId: `edge-${i}` }),
      );
    }
    const acked = new Map<string, number>();
    const unknown: Array<{ term: number; lsn: number }> = [];
    /** Kill to the new leader's first acknowledged write, per cycle (ms). */
    const failoverMs: number[] = [];
    let n = 0;
    let ackedLsn = 0;
    // Mostly `quorum` writes, some `local` and `ack_n=1` (which a failover may lose).
    const mixedWrite = async (base: string) => {
      const key = `k${n % 25}`;
      const value = ++n;
      const policy = POLICIES[n % POLICIES.length]!;
      const answer = await policyWrite(base, key, value, policy);
      if (answer?.status === 503 && answer.body.error === "commit_unknown") {
        unknown.push({ term: answer.body.term, lsn: answer.body.last_lsn });
      }
      const reached = answer?.status === 200 && answer.body.commit?.outcome === "reached";
      if (policy === "quorum" && reached) {
        acked.set(key, value);
        ackedLsn = Math.max(ackedLsn, answer.body.last_lsn);
      }
    };
    for (let cycle = 0; cycle < FAILOVER_CYCLES; cycle++) {
      const leader = await agreedLeader(cluster);
      // A write sent to a standby is redirected to the leader.
      const standby = [...cluster.nodes.values()].find((node) => node !== leader)!;
      const redirected = await fetch(`${standby.base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
        redirect: "manual",
      });
      await redirected.body?.cancel();
      assert.equal(redirected.status, 307);
      assert.equal(redirected.headers.get("location"), `${leader.base}/v1/records`);
      for (let i = 0; i < 40; i++) await mixedWrite(leader.base);
      assert.ok(acked.size > 0, "quorum writes were acknowledged");
      // Writes go on while the leader is killed.
      const killedAt = performance.now();
      const load = (async () => {
        for (let i = 0; i < 20; i++) await mixedWrite(leader.base);
      })();
      await stop(leader, "SIGKILL");
      await load;
      const next = await agreedLeader(cluster, leader.name);
      assert.notEqual(next.name, leader.name);
      const key = `k${n % 25}`;
      const value = ++n;
      await waitUntil("the new leader to acknowledge a quorum write", async () => {
        const lsn = await quorumWrite(next.base, key, value);
        if (lsn !== undefined) ackedLsn = Math.max(ackedLsn, lsn);
        return lsn !== undefined;
      }, 30_000);
      acked.set(key, value);
      failoverMs.push(Math.round(performance.now() - killedAt));
      console.log(
        `cycle ${cycle}: a new leader acknowledged a write ${failoverMs.at(-1)} ms after the kill`,
      );
      // The killed node comes back as a standby.
      const back = await startNode(cluster, leader.name);
      await waitUntil("the killed node to rejoin as a standby", async () => {
        const s = await getJson(back.base, "/v1/status").catch(() => undefined);
        const up = s?.upstream as { durable_lsn?: number } | undefined;
        const current = (await getJson(next.base, "/v1/status")).current_lsn as number;
        return s?.role === "relay" && up?.durable_lsn === current ? true : undefined;
      }, 30_000);
    }
    // Every acknowledged value is the leader's, key by key; every node holds the same state.
    const leader = await agreedLeader(cluster);
    for (const [key, value] of acked) {
      const read = await readApplied(leader.base, key, ackedLsn);
      assert.ok(read, `${key} survived`);
      assert.ok(
        (read.value as number) >= value,
        `${key}: ${read.value} < acknowledged ${value}`,
      );
    }
    const current = (await getJson(leader.base, "/v1/status")).current_lsn as number;
    for (const node of cluster.nodes.values()) {
      await waitUntil(`${node.name} to apply ${current}`, async () => {
        const s = await getJson(node.base, "/v1/status").catch(() => undefined);
        return s && (s.applied_lsn as number) >= current ? true : undefined;
      });
    }
    // Every commit_unknown is settled by /v1/commits on the leader.
    const settled = new Map<string, string>();
    for (const write of unknown) {
      const outcome = await waitUntil("a final outcome", async () => {
        const answer = await getJson(leader.base, `/v1/commits/${write.term}/${write.lsn}`);
        return answer.outcome === "unknown" ? undefined : answer.outcome as string;
      }, 30_000);
      settled.set(`${write.term}/${write.lsn}`, outcome);
    }
    // The edges resumed across every failover without a snapshot.
    for (const edge of edges) {
      const status = await waitApplied(edge.base, current);
      assert.equal(status.rebootstraps_total, 0, `${edge.name} loaded no snapshot`);
      assert.equal(status.divergence_total, 0);
    }
    failoverMs.sort((a, b) => a - b);
    const at = (q: number) =>
      failoverMs[Math.min(failoverMs.length - 1, Math.floor(q * failoverMs.length))];
    console.log(
      `kill to a write on the new leader: p50 ${at(0.5)} ms, p99 ${
        at(0.99)
      } ms (TTL ${LEASE_TTL_S} s)`,
    );
    assertOneLeaderPerTerm(cluster);
    for (const node of [...edges, ...cluster.nodes.values()]) await stop(node);
    const states = await Promise.all([
      ...[...cluster.nodes.values()].map((node) => dumpState(`${node.dataDir}/ferry.kv`)),
      ...edges.map((edge) => dumpState(replicaKvPath(edge.dataDir))),
    ]);
    for (const state of states.slice(1)) assert.deepEqual(state, states[0]);
    // Every node holds the same log, byte for byte, its terms never going down: no two nodes
    // wrote the same LSN in one term.
    const logs = await Promise.all([...cluster.nodes.values()].map((node) => nodeLog(node)));
    for (const log of logs.slice(1)) assert.deepEqual(log.bytes, logs[0]!.bytes);
    const terms = logs[0]!.terms;
    assert.ok(
      terms.every((term, i) => i === 0 || term >= terms[i - 1]!),
      "terms never go down",
    );
    // Each commit_unknown answer settled as what the log holds: committed ⇔ its record is there.
    for (const write of unknown) {
      const outcome = settled.get(`${write.term}/${write.lsn}`);
      assert.equal(
        outcome === "committed",
        terms[write.lsn - 1] === write.term,
        JSON.stringify(write),
      );
    }
  },
);

/** Anonymous (edge) JSON pulls after `sinceLsn`, sent in a loop until stopped; the answers. */
function probePulls(base: string, sinceLsn: number): { stop: () => Promise<string[]> } {
  const bodies: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const url = `${base}/v1/wal?since_lsn=${sinceLsn}&max_count=100`;
      const response = await fetch(url).catch(() => undefined);
      if (response) bodies.push(`${response.status} ${await response.text()}`);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return bodies;
    },
  };
}

/**
 * Every node applies `leader`'s current LSN, one leader led each term, and, all stopped, every
 * node holds the same state: returned.
 */
async function settledState(cluster: Cluster, leader: Node): Promise<StateEntry[]> {
  const current = (await getJson(leader.base, "/v1/status")).current_lsn as number;
  for (const node of cluster.nodes.values()) {
    await waitUntil(`${node.name} to apply ${current}`, async () => {
      const s = await getJson(node.base, "/v1/status").catch(() => undefined);
      return s && (s.applied_lsn as number) >= current ? true : undefined;
    });
  }
  assertOneLeaderPerTerm(cluster);
  for (const node of cluster.nodes.values()) await stop(node);
  const states = await Promise.all(
    [...cluster.nodes.values()].map((node) => dumpState(`${node.dataDir}/ferry.kv`)),
  );
  for (const state of states) assert.deepEqual(state, states[0]);
  return states[0]!;
}

/**
 * `key` as `base` has it once its state has applied `lsn` (the bookmark of the last acknowledged
 * write: a read without one may come before the state applied it), or undefined.
 */
function readApplied(base: string, key: string, lsn: number) {
  const path = `/v1/records/items/${key}?min_lsn=${lsn}&await_timeout_ms=${READ_WAIT_MS}`;
  return getJson(base, path).catch(() => undefined);
}

/** SIGSTOP or SIGCONT to a node's process. */
function signal(node: Node, sig: "SIGSTOP" | "SIGCONT"): void {
  Deno.kill(node.process.child.pid, sig);
}

clusterTest(
  `the acking standby frozen and the leader killed: no promotion with one live member of three; after SIGCONT a leader, nothing lost`,
  async (cluster) => {
    for (const id of MEMBERS) await startNode(cluster, id);
    const leader = await agreedLeader(cluster);
    const [first, second] = [...cluster.nodes.values()].filter((node) => node !== leader);
    const acked = new Map<string, number>();
    let ackedLsn = 0;
    for (let i = 0; i < 20; i++) {
      const lsn = await quorumWrite(leader.base, `k${i}`, i);
      if (lsn === undefined) continue;
      acked.set(`k${i}`, i);
      ackedLsn = Math.max(ackedLsn, lsn);
    }
    assert.equal(acked.size, 20);
    const frozen = first!;
    signal(frozen, "SIGSTOP");
    await stop(leader, "SIGKILL");
    cluster.nodes.delete(leader.name);
    // Several lease lifetimes with one live member of three: it never promotes.
    const until = Date.now() + 4 * LEASE_TTL_S * 1000;
    while (Date.now() < until) {
      const status = await getJson(second!.base, "/v1/status");
      assert.notEqual(status.role, "primary", "a lone member promoted itself");
      const write = await fetch(`${second!.base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
        redirect: "manual",
      });
      await write.body?.cancel();
      assert.ok(write.status === 503 || write.status === 307, `a write got ${write.status}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    signal(frozen, "SIGCONT");
    const next = await agreedLeader(cluster);
    for (const [key, value] of acked) {
      const read = await readApplied(next.base, key, ackedLsn);
      assert.equal(read?.value, value, `${key} survived`);
    }
  },
);

clusterTest(
  `etcd out of reach: a short outage changes nothing; a long one fences the leader within half the TTL, and it leads again after`,
  async (cluster) => {
    const etcd = cluster.etcd;
    // The default lease (5 s): at 2 s a keepalive delayed by etcd's own catch-up after the
    // pause could outlive the fence's margin; the rule is the same at every TTL.
    for (const id of MEMBERS) await startNode(cluster, id, { leaseTtlS: OUTAGE_TTL_S });
    const leader = await agreedLeader(cluster);
    const term = (await getJson(leader.base, "/v1/status")).term;
    // Short enough that no keepalive phase can fence: the deadline is the last answered
    // keepalive's send time plus half the TTL, and that send may be a quarter TTL old when etcd
    // stops answering, so an outage fences once it outlasts a quarter TTL less the answer's delay.
    etcd.pause();
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_TTL_S * 1000 * SHORT_OUTAGE_OF_TTL));
    etcd.resume();
    assert.notEqual(await quorumWrite(leader.base, "a", 1), undefined);
    assert.equal((await getJson(leader.base, "/v1/status")).term, term, "the same term");
    // Longer: the leader stops answering writes (503) within about half the TTL.
    etcd.pause();
    const pausedAt = performance.now();
    await waitUntil("the leader to refuse writes", async () => {
      const response = await fetch(`${leader.base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          records: [{ op: "put", collection: "items", key: "b", value: 2 }],
        }),
      });
      const body = await response.json();
      return response.status === 503 ? body : undefined;
    }, 30_000);
    console.log(`fenced ${Math.round(performance.now() - pausedAt)} ms after etcd paused`);
    etcd.resume();
    // A leader again, asked afresh on every try: the fenced leader may still be named by every
    // member for a moment after the resume, until its next step lets its lease go and a new
    // election (which it may or may not win) names the leader of a new term. Its standbys
    // follow it within moments of its promotion: the first quorum write may wait.
    let answer: Awaited<ReturnType<typeof policyWrite>>;
    const next = await waitUntil("a leader to acknowledge a quorum write", async () => {
      const named = await agreedLeader(cluster);
      answer = await policyWrite(named.base, "c", 3, "quorum");
      return quorumReached(answer) ? named : undefined;
    }, QUORUM_AFTER_OUTAGE_MS).catch((error) => {
      throw new Error(`${error.message}; its last answer: ${JSON.stringify(answer)}`);
    });
    assert.ok(((await getJson(next.base, "/v1/status")).term as number) >= (term as number));
    assertOneLeaderPerTerm(cluster);
  },
);

clusterTest(
  `an old leader with local writes no standby holds truncates them when it rejoins, and its state equals the new leader's`,
  async (cluster) => {
    for (const id of MEMBERS) await startNode(cluster, id);
    const leader = await agreedLeader(cluster);
    for (let i = 0; i < 10; i++) {
      assert.notEqual(await quorumWrite(leader.base, `q${i}`, i), undefined);
    }
    // Both standbys killed: `local` writes are durable on the leader alone (a stopped process
    // could still read frames its socket buffered; a killed one cannot).
    const standbys = [...cluster.nodes.values()].filter((node) => node !== leader);
    for (const node of standbys) await stop(node, "SIGKILL");
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${leader.base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          records: [{ op: "put", collection: "items", key: `local${i}`, value: i }],
          commit_policy: "local",
        }),
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    }
    await stop(leader, "SIGKILL");
    for (const node of standbys) await startNode(cluster, node.name);
    const next = await agreedLeader(cluster, leader.name);
    const back = await startNode(cluster, leader.name);
    // Edges get committed records only (SPEC.md 13.4): until it reconciles with the history,
    // the returning leader serves no edge the records only it holds.
    const served = probePulls(back.base, 10);
    const truncated = await back.process.waitFor("cluster.truncated");
    const bodies = await served.stop();
    assert.ok(bodies.length > 0, "pulls were answered before the truncation");
    for (const body of bodies) assert.doesNotMatch(body, /"local\d"/);
    assert.equal(truncated.dropped_records, 5, "the five local writes no standby held");
    await ackedWrite(next.base, "after", 1);
    const state = await settledState(cluster, next);
    assert.ok(!state.some((entry) => entry.key.startsWith("local")), "lost local writes are gone");
    assert.equal(state.filter((entry) => entry.key.startsWith("q")).length, 10);
  },
);

clusterTest(
  `a commit wait open at a step-down answers 503 commit_unknown, and /v1/commits settles it as what survived`,
  async (cluster) => {
    const etcd = cluster.etcd;
    const frozen: Node[] = [];
    for (const id of MEMBERS) await startNode(cluster, id);
    const leader = await agreedLeader(cluster);
    assert.notEqual(await quorumWrite(leader.base, "before", 1), undefined);
    frozen.push(...[...cluster.nodes.values()].filter((node) => node !== leader));
    for (const node of frozen) signal(node, "SIGSTOP");
    // No standby can ack: the quorum wait stays open until the leader steps down.
    const pending = fetch(`${leader.base}/v1/records`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        records: [{ op: "put", collection: "items", key: "open", value: 2 }],
        commit_policy: "quorum",
        timeout_ms: 60_000,
      }),
    });
    await waitUntil("the write to wait for its quorum", async () => {
      const metrics = await (await fetch(`${leader.base}/metrics`)).text();
      return /^ferry_commit_waits_pending [1-9]/m.test(metrics) ? true : undefined;
    });
    etcd.pause();
    const answer = await pending;
    const body = await answer.json();
    assert.equal(answer.status, 503);
    assert.equal(body.error, "commit_unknown");
    assert.equal(body.first_lsn, body.last_lsn);
    etcd.resume();
    for (const node of frozen.splice(0)) signal(node, "SIGCONT");
    const next = await agreedLeader(cluster);
    const settled = await waitUntil("a final outcome", async () => {
      const outcome = await getJson(next.base, `/v1/commits/${body.term}/${body.last_lsn}`);
      return outcome.outcome === "unknown" ? undefined : outcome;
    }, 30_000);
    // Read once the leader's state holds that LSN (its applier runs behind the commit LSN).
    const read = await fetch(
      `${next.base}/v1/records/items/open?min_lsn=${body.last_lsn}&await_timeout_ms=10000`,
    );
    await read.body?.cancel();
    assert.equal(read.status === 200, settled.outcome === "committed", JSON.stringify(settled));
  },
);

clusterTest(
  `a 1.5 s block of the leader's event loop with a 5 s lease causes no step-down`,
  async (cluster) => {
    const options = { leaseTtlS: 5, env: { FERRY_TEST_BLOCK_MS: "1500" } };
    for (const id of MEMBERS) await startNode(cluster, id, options);
    const leader = await agreedLeader(cluster);
    const term = (await getJson(leader.base, "/v1/status")).term;
    for (let round = 0; round < 3; round++) {
      const blocked = leader.process.lines.length;
      Deno.kill(leader.process.child.pid, "SIGUSR2");
      await waitUntil(
        "the block to happen",
        () =>
          leader.process.lines.slice(blocked).some((l) => l.includes("test.event_loop_blocked")) ||
          undefined,
      );
      assert.notEqual(await quorumWrite(leader.base, `after-block-${round}`, round), undefined);
    }
    assert.equal((await getJson(leader.base, "/v1/status")).term, term, "the same term");
    assert.ok(!leader.process.lines.some((l) => l.includes("cluster.fenced")), "never fenced");
    assertOneLeaderPerTerm(cluster);
  },
);

clusterTest(
  `failover slots: an edge stopped before the leader dies resumes on the new leader without a snapshot`,
  async (cluster, dir) => {
    // Without failover slots the standbys prune what the stopped edge still needs.
    const extraArgs = PRUNING_ARGS;
    let edge: Node | undefined;
    for (const id of MEMBERS) await startNode(cluster, id, { extraArgs });
    const leader = await agreedLeader(cluster);
    const standbys = [...cluster.nodes.values()].filter((node) => node !== leader);
    const edgeOptions = { dataDir: `${dir}/edge`, replicaId: "edge-fs" };
    edge = await startReplica(leader, edgeOptions);
    cluster.extra.push(edge);
    let n = 0;
    for (let i = 0; i < 30; i++) assert.ok(await quorumWrite(leader.base, `k${n % 40}`, ++n));
    await waitApplied(
      edge.base,
      (await getJson(leader.base, "/v1/status")).current_lsn as number,
    );
    // Both standbys mirror the edge's slot from the leader's control records.
    for (const standby of standbys) {
      await waitUntil(
        `${standby.name} to mirror the edge's slot`,
        () =>
          standby.process.lines.some((line) =>
            line.includes('"cluster.slots_mirrored"') && line.includes('"edge-fs"')
          ),
      );
    }
    await stop(edge);
    // Many segments' worth of writes while the edge is away: each standby's retention runs.
    for (let i = 0; i < 200; i++) await quorumWrite(leader.base, `k${n % 40}`, ++n);
    await stop(leader, "SIGKILL");
    const next = await agreedLeader(cluster, leader.name);
    cluster.nodes.delete(leader.name);
    await waitUntil("the new leader to acknowledge a quorum write", async () => {
      return (await quorumWrite(next.base, `k${n % 40}`, n + 1)) !== undefined;
    }, 30_000);
    n += 1;
    for (let i = 0; i < 60; i++) await quorumWrite(next.base, `k${n % 40}`, ++n);
    // The edge comes back pointing at the new leader, with the same data and replica id.
    edge = await startReplica(next, edgeOptions);
    cluster.extra.push(edge);
    const current = (await getJson(next.base, "/v1/status")).current_lsn as number;
    const status = await waitApplied(edge.base, current);
    assert.equal(status.rebootstraps_total, 0, "the edge loaded no snapshot");
    const leaderStatus = await getJson(next.base, "/v1/status");
    assert.ok((leaderStatus.partial_resync_total as number) >= 1, "served partially");
    await waitApplied(next.base, current);
    await stop(edge);
    await stop(next);
    assert.deepEqual(
      await dumpState(replicaKvPath(edge.dataDir)),
      await dumpState(`${next.dataDir}/ferry.kv`),
    );
  },
);

clusterTest(
  `an old leader whose pruned log cannot rebuild its state reloads it from the new leader's snapshot`,
  async (cluster) => {
    // No log keeps LSN 1 for long.
    const extraArgs = PRUNING_ARGS;
    for (const id of MEMBERS) await startNode(cluster, id, { extraArgs });
    const leader = await agreedLeader(cluster);
    // Both standbys hold a slot before the writes: the leader prunes past a member with none.
    const others = MEMBERS.filter((id) => id !== leader.name);
    await waitUntil("a slot for every standby", async () => {
      const s = await getJson(leader.base, "/v1/status").catch(() => undefined);
      const ids = ((s?.slots ?? []) as { replica_id: string }[]).map((slot) => slot.replica_id);
      return others.every((id) => ids.includes(id)) ? true : undefined;
    }, 30_000);
    for (let i = 0; i < 150; i++) {
      assert.notEqual(await quorumWrite(leader.base, `q${i % 40}`, i), undefined);
    }
    for (const node of cluster.nodes.values()) {
      await waitUntil(`${node.name} to prune LSN 1`, async () => {
        const s = await getJson(node.base, "/v1/status").catch(() => undefined);
        return s && (s.oldest_lsn as number) > 1 ? true : undefined;
      }).catch(async (error) => {
        // Says where the node stood (its role, its upstream's state) when it did not prune.
        const s = await getJson(node.base, "/v1/status").catch(() => undefined);
        throw new Error(`${(error as Error).message}: ${JSON.stringify(s)}`);
      });
    }
    const standbys = [...cluster.nodes.values()].filter((node) => node !== leader);
    for (const node of standbys) await stop(node, "SIGKILL");
    for (let i = 0; i < 5; i++) {
      const answer = await policyWrite(leader.base, `local${i}`, i, "local");
      assert.equal(answer?.status, 200);
    }
    await stop(leader, "SIGKILL");
    for (const node of standbys) await startNode(cluster, node.name, { extraArgs });
    const next = await agreedLeader(cluster, leader.name);
    // Few enough that the new leader still holds the records after the fork point.
    for (let i = 0; i < 3; i++) {
      await ackedWrite(next.base, `n${i}`, i);
    }
    const back = await startNode(cluster, leader.name, { extraArgs });
    const truncated = await back.process.waitFor("cluster.truncated");
    assert.equal(truncated.dropped_records, 5, "the five local writes no standby held");
    assert.ok((truncated.oldest_lsn as number) > 1, "the log no longer starts at LSN 1");
    const rebuilt = await back.process.waitFor("cluster.state_rebuilt");
    assert.ok((rebuilt.snapshot_start_lsn as number) >= (truncated.fork_lsn as number));
    assert.ok((rebuilt.entries as number) > 0);
    await ackedWrite(next.base, "after", 1);
    const state = await settledState(cluster, next);
    assert.ok(!state.some((entry) => entry.key.startsWith("local")), "local writes gone");
    assert.equal(state.filter((entry) => entry.key.startsWith("q")).length, 40);
    assert.equal(state.filter((entry) => entry.key.startsWith("n")).length, 3);
  },
);
