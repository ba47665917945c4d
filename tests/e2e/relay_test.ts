// Relays (SPEC.md 13.3) between real processes: primary → relay (`--serve-wal`) → 3 downstream
// replicas. The relay keeps the primary's frames byte for byte in its own spool and serves its
// own slots; writes sent to it are redirected to the primary. Killed with SIGKILL under writes, it
// restarts from its own log: the downstream replicas resume partially (no snapshot), none of them
// ever held a frame the relay had not made durable, and everything converges to the primary's
// state, key by key.

import assert from "node:assert/strict";
import {
  assertSameState,
  dumpState,
  getJson,
  type Node,
  restart,
  startPrimary,
  startReplica,
  stop,
  waitApplied,
  waitStateAtHead,
  waitUntil,
  write,
  writeLoad,
} from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { Spool } from "../../src/wal/spool.ts";

const DOWNSTREAM = 3;

/** Every record of a stopped node's spool, as stored, in LSN order. */
async function walBytes(dataDir: string): Promise<Uint8Array> {
  const spool = await Spool.open({ walDir: `${dataDir}/wal`, timeline: 1, term: 1 });
  try {
    const raw = await spool.readRawSince(0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    return concatBytes(raw.chunks, raw.byteLength);
  } finally {
    await spool.close();
  }
}

async function startRelay(primary: Node, dataDir: string): Promise<Node> {
  return await startReplica(primary, { dataDir, replicaId: "relay-1", extra: ["--serve-wal"] });
}

Deno.test("primary → relay → 3 replicas: the relay killed under writes restarts, its replicas resume partially and converge", async () => {
  await withTempDir(async (dir) => {
    const primary = await startPrimary(`${dir}/primary`);
    let relay = await startRelay(primary, `${dir}/relay`);
    const downstream: Node[] = [];
    try {
      for (let i = 0; i < DOWNSTREAM; i++) {
        downstream.push(
          await startReplica(relay, { dataDir: `${dir}/edge-${i}`, replicaId: `edge-${i}` }),
        );
      }
      const first = await writeLoad(primary.base, {
        writers: 4,
        perWriter: 50,
        keys: 64,
        tag: "a",
      });
      const firstLsn = Math.max(...first.map((w) => w.lsn));
      for (const node of downstream) await waitApplied(node.base, firstLsn);

      // A write sent to the relay is redirected to the primary, and nothing is written there.
      const redirected = await fetch(`${relay.base}/v1/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ records: [{ op: "put", collection: "items", key: "x", value: 1 }] }),
        redirect: "manual",
      });
      assert.equal(redirected.status, 307);
      assert.equal(redirected.headers.get("location"), `${primary.base}/v1/records`);
      await redirected.body?.cancel();

      // Kill -9 the relay while writers run; its replicas freeze where the relay left them.
      const writes = writeLoad(primary.base, { writers: 2, perWriter: 150, keys: 64, tag: "b" });
      await waitUntil("the relay to keep some of the second load", async () => {
        const s = await getJson(relay.base, "/v1/status");
        return (s.current_lsn as number) > firstLsn + 30;
      });
      await stop(relay, "SIGKILL");
      const frozen = await Promise.all(
        downstream.map(async (node) =>
          (await getJson(node.base, "/v1/status")).applied_lsn as number
        ),
      );
      relay = await restart(relay);
      const recovered = JSON.parse(relay.process.lines.find((l) => l.includes("ferry.recovered"))!);
      // Served only once durable: the relay's recovered log holds all any replica applied.
      for (const lsn of frozen) {
        assert.ok(lsn <= recovered.current_lsn, `${lsn} > ${recovered.current_lsn}`);
      }
      await writes;
      const tail = await write(primary.base, [{
        op: "put",
        collection: "items",
        key: "last",
        value: 1,
      }]);
      const current = tail.body.last_lsn as number;
      for (const node of downstream) await waitApplied(node.base, current);
      await waitApplied(relay.base, current);

      const relayStatus = await getJson(relay.base, "/v1/status");
      assert.equal(relayStatus.role, "relay");
      assert.equal((relayStatus.upstream as Record<string, unknown>).durable_lsn, current);
      assert.equal(relayStatus.full_resync_total, 0, "no downstream replica needed a snapshot");
      assert.ok(
        (relayStatus.partial_resync_total as number) >= DOWNSTREAM,
        "each resumed partially",
      );
      for (const node of downstream) {
        const s = await getJson(node.base, "/v1/status");
        assert.equal(s.rebootstraps_total, 0, `${node.name} loaded no snapshot`);
        assert.equal(s.divergence_total, 0);
        assert.equal(s.state, "healthy");
      }
      // The primary sees the relay, not the replicas behind it.
      const primaryStatus = await getJson(primary.base, "/v1/status");
      const seen = (primaryStatus.replicas as Array<{ id: string }>).map((r) => r.id);
      assert.deepEqual(seen, ["relay-1"]);

      await waitStateAtHead(primary.base);
      for (const node of downstream) await stop(node);
      await stop(relay);
      await stop(primary);
      await assertSameState(primary, downstream);
      assert.deepEqual(
        await dumpState(`${relay.dataDir}/ferry.kv`),
        await dumpState(`${primary.dataDir}/ferry.kv`),
      );
      assert.deepEqual(
        await walBytes(relay.dataDir),
        await walBytes(primary.dataDir),
        "same bytes",
      );
    } finally {
      for (const node of [...downstream, relay, primary]) {
        await stop(node, "SIGKILL").catch(() => {});
      }
    }
  });
});
