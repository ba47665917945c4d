// A cluster standby's follower hands the failover slots of the leader's control records to its
// owner (SPEC.md 13.4), well-formed entries only.

import assert from "node:assert/strict";
import { joinPath } from "../../src/core/files.ts";
import type { MirroredSlot } from "../../src/cluster/failover_slots.ts";
import { LogFollower } from "../../src/replica/log_follower.ts";
import { Spool } from "../../src/wal/spool.ts";
import { encodeControlRecord } from "../../src/wal/stream_codec.ts";
import { scriptedPrimary, streamResponse } from "../helpers/scripted_primary.ts";
import { withTempDir } from "../helpers/temp.ts";
import { waitUntil } from "../helpers/process.ts";

async function followControl(slots: unknown[] | undefined): Promise<MirroredSlot[][]> {
  const handed: MirroredSlot[][] = [];
  await withTempDir(async (dir) => {
    const control = encodeControlRecord({
      currentLsn: 0,
      commitLsn: 0,
      term: 1,
      timeline: 1,
      slots,
    });
    const plain = encodeControlRecord({ currentLsn: 0, commitLsn: 0, term: 1, timeline: 1 });
    const primary = scriptedPrimary({
      currentLsn: 0,
      wal: (request) => streamResponse(request, [control, plain]),
    });
    const spool = await Spool.open({ walDir: joinPath(dir, "wal"), timeline: 1, term: 1 });
    const follower = new LogFollower({
      client: primary.client,
      replicaId: "n2",
      upstreamUrl: "http://leader.test",
      spool,
      appliedLsn: () => 0,
      onSlots: (mirrored) => handed.push(mirrored),
    }, 0);
    follower.start();
    try {
      await primary.waitFor("ack", () => true);
      await waitUntil(
        "the follower to read both control records",
        () => follower.status().state === "healthy",
      );
    } finally {
      await follower.stop();
      await spool.close();
    }
  });
  return handed;
}

Deno.test("LogFollower hands the slots of a control record over, leaving malformed entries out", async () => {
  const handed = await followControl([
    { id: "edge-1", restart_lsn: 5, region: "eu" },
    { id: "edge-2", restart_lsn: 0 },
    "not an object",
    null,
    { id: "../bad", restart_lsn: 1 },
    { id: "edge-3", restart_lsn: -1 },
    { id: "edge-4", restart_lsn: 2.5 },
    { id: "edge-5", restart_lsn: "7" },
    { id: "edge-6", restart_lsn: 3, region: 7 },
    { restart_lsn: 3 },
  ]);
  await waitUntil("the slots to be handed over", () => handed.length > 0);
  assert.deepEqual(handed[0], [
    { id: "edge-1", restart_lsn: 5, region: "eu" },
    { id: "edge-2", restart_lsn: 0 },
  ]);
  // A control record without `slots` (a plain primary's) hands nothing over.
  assert.equal(handed.length, 1);
});

Deno.test("LogFollower hands nothing over when the control records carry no slots", async () => {
  assert.deepEqual(await followControl(undefined), []);
});
