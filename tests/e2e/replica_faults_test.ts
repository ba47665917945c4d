// A real replica process against a fake primary (served by this test) that sends damaged or
// conflicting frames: every CRC is checked (a flipped bit is rejected and nothing past it is
// applied), and a different payload at an already applied LSN stops the replica in `divergence`.

import assert from "node:assert/strict";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { getJson, type Node, startReplica, stop, waitUntil } from "../helpers/cluster.ts";
import { freePort } from "../helpers/process.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();

function frame(lsn: number, value: unknown): Uint8Array {
  const payload = utf8.encode(
    JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value, ts: 1 }),
  );
  return encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn, timestampMs: Date.now(), payload });
}

/** A fake primary: serves `framesFor(since)` to pulls and records acks. */
function fakePrimary(framesFor: (since: number) => Uint8Array[]) {
  const port = freePort();
  const acks: Array<Record<string, number>> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const json = (body: unknown) => Response.json(body);
    if (request.method === "PUT" && url.pathname.endsWith("/rebootstrapping")) {
      return json({ ok: true });
    }
    if (request.method === "PUT") {
      return json({ resume_lsn: 0, term: 1, timeline: 1, current_lsn: 3 });
    }
    if (request.method === "POST" && url.pathname.endsWith("/ack")) {
      const ack = await request.json();
      acks.push(ack);
      return json({
        ok: true,
        replica_id: "r1",
        applied_lsn: ack.applied_lsn,
        durable_lsn: ack.durable_lsn ?? ack.applied_lsn,
        apply_errors_total: 0,
        divergence_total: 0,
      });
    }
    if (url.pathname === "/v1/wal") {
      const since = Number(url.searchParams.get("since_lsn") ?? "0");
      const frames = framesFor(since);
      const body = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
      let offset = 0;
      for (const f of frames) {
        body.set(f, offset);
        offset += f.byteLength;
      }
      return new Response(body, {
        headers: {
          "content-type": "application/x-ferry-frames",
          "x-ferry-current-lsn": "4",
          "x-ferry-oldest-lsn": "1",
          "x-ferry-term": "1",
          "x-ferry-timeline": "1",
          "x-ferry-start-lsn": String(since),
          "x-ferry-record-count": String(frames.length),
        },
      });
    }
    return Response.json({ error: "not_found", message: "fake" }, { status: 404 });
  });
  return { port, base: `http://127.0.0.1:${port}`, acks, server };
}

Deno.test("a replica rejects a frame with a flipped bit and does not advance past it", async () => {
  await withTempDir(async (dir) => {
    const good = [frame(1, "one"), frame(2, "two"), frame(3, "three")];
    const damaged = good[1]!.slice();
    damaged[50]! ^= 0x08; // inside the payload: only the CRC can tell
    let healed = false;
    const history = () => healed ? good : [good[0]!, damaged, good[2]!];
    const fake = fakePrimary((since) => history().slice(since));
    const primaryNode = { port: fake.port } as Node;
    let replica: Node | undefined;
    try {
      replica = await startReplica(primaryNode, { dataDir: `${dir}/r1`, replicaId: "r1" });
      const status = await waitUntil("the replica to reject the damaged frame", async () => {
        const s = await getJson(replica!.base, "/v1/status");
        return (s.apply_errors_total as number) >= 1 ? s : undefined;
      });
      assert.equal(status.applied_lsn, 1, "frame 1 applied, nothing past the damaged frame 2");
      assert.equal(status.state, "apply_error");
      assert.equal((await getJson(replica.base, "/v1/records/c/k1")).value, "one");
      assert.equal(
        (await fetch(`${replica.base}/v1/records/c/k3`)).status,
        404,
        "frame 3 was not applied",
      );
      assert.ok(
        fake.acks.every((ack) => (ack.applied_lsn ?? 0) <= 1),
        "never acked past the damage",
      );
      healed = true;
      await waitUntil("the replica to recover once the frame is intact", async () => {
        const s = await getJson(replica!.base, "/v1/status");
        return s.applied_lsn === 3 && s.state === "healthy";
      });
    } finally {
      if (replica) await stop(replica);
      await fake.server.shutdown();
    }
  });
});

Deno.test("a replica shown a different payload at an LSN it applied stops in divergence, visible in status", async () => {
  await withTempDir(async (dir) => {
    const original = [frame(1, "a"), frame(2, "b"), frame(3, "c")];
    let rewritten = false;
    // Once rewritten, the fake serves from since_lsn inclusive: LSN 3 again, with other content.
    const fake = fakePrimary((since) =>
      rewritten ? [frame(3, "not c"), frame(4, "d")] : original.slice(since)
    );
    let replica: Node | undefined;
    try {
      replica = await startReplica({ port: fake.port } as Node, {
        dataDir: `${dir}/r1`,
        replicaId: "r1",
      });
      await waitUntil(
        "the replica to apply 1..3",
        async () => (await getJson(replica!.base, "/v1/status")).applied_lsn === 3,
      );
      rewritten = true;
      const status = await waitUntil("divergence", async () => {
        const s = await getJson(replica!.base, "/v1/status");
        return s.state === "divergence" ? s : undefined;
      });
      assert.equal(status.divergence_total, 1);
      assert.equal(status.applied_lsn, 3, "nothing after the divergence is applied");
      assert.equal(
        (await getJson(replica.base, "/v1/records/c/k3")).value,
        "c",
        "reads still answer, from what was applied",
      );
      assert.equal((await fetch(`${replica.base}/v1/records/c/k4`)).status, 404);
      await waitUntil(
        "the primary to hear about it",
        () => fake.acks.some((ack) => ack.divergence_total === 1),
      );
      assert.ok(replica.process.lines.some((l) => l.includes('"to":"divergence"')), "logged");
      const metrics = await (await fetch(`${replica.base}/metrics`)).text();
      assert.match(metrics, /ferry_replica_state\{state="divergence"\} 1/);
    } finally {
      if (replica) await stop(replica);
      await fake.server.shutdown();
    }
  });
});
