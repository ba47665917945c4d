// A replica pulling raw frames is where a damaged payload is found when the primary serves the
// file's bytes without decoding them: the runtime checks every CRC of a pull in one pass, applies
// the frames before the damaged one, stops in `apply_error` (fail closed), never acks past the
// damage, and asks for the same records again until they arrive intact. Driven by a scripted
// primary; each check happens when a request arrives, never after a delay.

import assert from "node:assert/strict";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { framesResponse, idlePull, scriptedPrimary } from "../helpers/scripted_primary.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();

function frame(lsn: number): Uint8Array {
  const payload = utf8.encode(
    JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value: lsn, ts: 1 }),
  );
  return encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn, timestampMs: 1, payload });
}

Deno.test("ReplicaRuntime: a flipped payload bit in a raw pull stops the replica in apply_error after the frames before it, with no ack past it, until the frames arrive intact", async () => {
  const frames = [1, 2, 3, 4].map(frame);
  const damaged = frames[2]!.slice();
  damaged[50]! ^= 0x08; // inside LSN 3's payload: only its CRC can tell
  let healed = false;
  const body = (since: number) => {
    const served = (healed ? frames : [frames[0]!, frames[1]!, damaged, frames[3]!]).slice(since);
    return concatBytes(served, served.reduce((n, f) => n + f.byteLength, 0)) as Uint8Array<
      ArrayBuffer
    >;
  };
  const primary = scriptedPrimary({
    currentLsn: 4,
    wal: (request) => {
      const since = Number(request.query.get("since_lsn"));
      return since >= 4 ? idlePull(request, 4) : framesResponse(body(since), 4);
    },
  });
  await withTempDir(async (dataDir) => {
    const runtime = await ReplicaRuntime.open({
      dataDir,
      replicaId: "r1",
      primaryUrl: "http://primary.test",
      client: primary.client,
      logger: createMemoryLogger(),
      backoffMsMin: 1,
      backoffMsMax: 5,
    });
    runtime.start();
    try {
      // The pull after the damaged one asks again from LSN 2: the runtime stopped before LSN 3.
      await primary.waitFor("wal", (r) => r.index > 0 && r.query.get("since_lsn") === "2");
      const status = runtime.status();
      assert.equal(status.state, "apply_error");
      assert.equal(status.applied_lsn, 2, "LSNs 1 and 2 applied, nothing from the damage on");
      assert.ok(status.apply_errors_total >= 1);
      assert.equal((await runtime.get("c", "k2"))?.value, 2);
      assert.equal(await runtime.get("c", "k4"), undefined, "LSN 4, after the damage, not applied");
      const acks = primary.requests.filter((r) => r.route === "ack");
      assert.ok(acks.length >= 1, "the error is reported to the primary");
      assert.ok(acks.every((ack) => (ack.json?.applied_lsn as number) <= 2), "no ack past it");
      assert.ok(acks.every((ack) => (ack.json?.apply_errors_total as number) >= 1));
      healed = true;
      await primary.waitFor("wal", (r) => r.query.get("since_lsn") === "4");
      assert.equal(runtime.status().state, "healthy");
      assert.equal((await runtime.get("c", "k4"))?.value, 4);
    } finally {
      await runtime.stop();
    }
  });
});
