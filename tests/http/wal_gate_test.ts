// SPEC.md 9.3 and 13.4 through the app: in a cluster `GET /v1/wal` answers an edge (a replica
// that is not a member) with records up to the commit LSN only, as JSON and as raw frames, holds
// its pull until a record is committed, and answers a member with every durable record.

import assert from "node:assert/strict";
import { decodeFrameRun } from "../../src/wal/frame.ts";
import {
  FRAMES_MEDIA_TYPE,
  HEADER_CURRENT_LSN,
  HEADER_RECORD_COUNT,
} from "../../src/model/wire.ts";
import { type AppFixture, withApp } from "../helpers/app_fixture.ts";
import { appendRecords } from "../helpers/primary_fixture.ts";
import { eventually } from "../helpers/stream_tap.ts";

const PAYLOAD = new TextEncoder().encode('{"op":"put","collection":"c","key":"k","value":1}');

function withGatedApp(
  gate: { lsn: number },
  fn: (fixture: AppFixture) => Promise<void>,
): Promise<void> {
  return withApp({ primary: { members: new Set(["m1"]), commitLsn: () => gate.lsn } }, fn);
}

async function jsonLsns(response: Response): Promise<{ lsns: number[]; current: number }> {
  assert.equal(response.status, 200);
  const body = await response.json();
  return { lsns: body.records.map((r: { lsn: number }) => r.lsn), current: body.current_lsn };
}

Deno.test("GET /v1/wal gives an edge records up to the commit LSN, as JSON and as raw frames", async () => {
  const gate = { lsn: 2 };
  await withGatedApp(gate, async (fixture) => {
    await appendRecords(fixture.primary, 4);
    const edge = await jsonLsns(await fixture.call("GET", "/v1/wal?replica_id=e1&since_lsn=0"));
    assert.deepEqual(edge, { lsns: [1, 2], current: 4 }, "current_lsn is the durable one");
    const raw = await fixture.call("GET", "/v1/wal?replica_id=e1&since_lsn=0", {
      headers: { accept: FRAMES_MEDIA_TYPE },
    });
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get(HEADER_RECORD_COUNT), "2");
    assert.equal(raw.headers.get(HEADER_CURRENT_LSN), "4");
    const frames = decodeFrameRun(new Uint8Array(await raw.arrayBuffer())).frames;
    assert.deepEqual(frames.map((frame) => frame.lsn), [1, 2]);
    const member = await jsonLsns(await fixture.call("GET", "/v1/wal?replica_id=m1&since_lsn=0"));
    assert.deepEqual(member, { lsns: [1, 2, 3, 4], current: 4 });
  });
});

Deno.test("GET /v1/wal holds an edge's pull past appends until the commit LSN rises", async () => {
  const gate = { lsn: 2 };
  await withGatedApp(gate, async (fixture) => {
    await appendRecords(fixture.primary, 2);
    const pending = fixture.call(
      "GET",
      "/v1/wal?replica_id=e1&since_lsn=2&await_timeout_ms=30000",
      {
        headers: { accept: FRAMES_MEDIA_TYPE },
      },
    );
    let answered = false;
    pending.then(() => (answered = true), () => (answered = true));
    await eventually("the pull is held", () => fixture.spool.stats().waiters === 1);
    await fixture.primary.append([PAYLOAD, PAYLOAD]);
    // The append wakes the spool's wait; the pull then waits for the commit LSN instead.
    await eventually("the pull left the append wait", () => fixture.spool.stats().waiters === 0);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(answered, false, "LSNs 3 and 4 are durable, not committed");
    gate.lsn = 4;
    fixture.primary.commitAdvanced();
    const response = await pending;
    assert.equal(response.headers.get(HEADER_RECORD_COUNT), "2");
    const frames = decodeFrameRun(new Uint8Array(await response.arrayBuffer())).frames;
    assert.deepEqual(frames.map((frame) => frame.lsn), [3, 4]);
  });
});
