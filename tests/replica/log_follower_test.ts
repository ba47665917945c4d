// The log follower of a replica that keeps the log (SPEC.md 13.3): frames go into its own spool
// byte for byte before the ack says durable; a frame of a lower term than one kept is refused
// (receivers fence, 13.4); a 409 `rebootstrap_required` stops it. Driven by a scripted primary
// (long-polls: it answers `stream=1` with a plain pull); each check waits for a request.

import assert from "node:assert/strict";
import { concatBytes } from "../../src/core/bytes.ts";
import { joinPath } from "../../src/core/files.ts";
import { LogFollower } from "../../src/replica/log_follower.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { Spool } from "../../src/wal/spool.ts";
import {
  framesResponse,
  idlePull,
  rebootstrapResponse,
  scriptedPrimary,
  type ScriptedRequest,
  streamResponse,
} from "../helpers/scripted_primary.ts";
import { settledWithin } from "../helpers/stream_tap.ts";
import { encodeControlRecord } from "../../src/wal/stream_codec.ts";
import { withTempDir } from "../helpers/temp.ts";
import { waitUntil } from "../helpers/process.ts";

const utf8 = new TextEncoder();

function frame(lsn: number, term: number): Uint8Array {
  const payload = utf8.encode(
    JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value: lsn, ts: 1 }),
  );
  return encodeFrameV3({ term, ownershipEpoch: 0, lsn, timestampMs: 1000 + lsn, payload });
}

function body(frames: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return concatBytes(frames, frames.reduce((n, f) => n + f.byteLength, 0)) as Uint8Array<
    ArrayBuffer
  >;
}

/** Serves `frames` (LSN 1..n) after `since_lsn`, then holds. */
function serving(frames: Uint8Array[]) {
  return (request: ScriptedRequest) => {
    const since = Number(request.query.get("since_lsn"));
    return since >= frames.length
      ? idlePull(request, frames.length)
      : framesResponse(body(frames.slice(since)), frames.length);
  };
}

async function withFollower(
  wal: (request: ScriptedRequest) => Response | Promise<Response>,
  fn: (
    parts: { follower: LogFollower; spool: Spool; primary: ReturnType<typeof scriptedPrimary> },
  ) => Promise<void>,
  backoffMsMax = 5,
): Promise<void> {
  await withTempDir(async (dir) => {
    const primary = scriptedPrimary({ currentLsn: 0, wal });
    const spool = await Spool.open({ walDir: joinPath(dir, "wal"), timeline: 1, term: 1 });
    const follower = new LogFollower({
      client: primary.client,
      replicaId: "relay-1",
      upstreamUrl: "http://primary.test",
      spool,
      appliedLsn: () => 0,
      backoffMsMin: 1,
      backoffMsMax,
    }, 0);
    follower.start();
    try {
      await fn({ follower, spool, primary });
    } finally {
      await follower.stop();
      await spool.close();
    }
  });
}

Deno.test("LogFollower keeps the upstream's frames byte for byte, durable before its ack says so", async () => {
  const frames = [1, 2, 3, 4, 5].map((lsn) => frame(lsn, lsn < 3 ? 1 : 2));
  await withFollower(serving(frames), async ({ follower, spool, primary }) => {
    const ack = await primary.waitFor("ack", (r) => r.json?.durable_lsn === 5);
    assert.equal(ack.json?.applied_lsn, 0, "applied is the state's, not the log's");
    assert.equal(spool.currentLsn(), 5);
    const raw = await spool.readRawSince(0, 10, 1 << 20);
    assert.deepEqual(concatBytes(raw.chunks, raw.byteLength), body(frames));
    assert.equal(follower.term, 2);
    assert.equal(follower.status().state, "healthy");
  });
});

Deno.test("LogFollower: a stream that opened resets the backoff and is not broken, so an upstream that dies again and again is rejoined at once", async () => {
  // As the replica runtime's test: without the reset the backoff doubles through every round.
  const frames = [1, 2, 3, 4].map((lsn) => frame(lsn, 1));
  const FAILED_ATTEMPTS = 7;
  const ROUND = FAILED_ATTEMPTS + 1;
  const control = encodeControlRecord({ currentLsn: 4, commitLsn: 4, term: 1, timeline: 1 });
  const wal = (request: ScriptedRequest) => {
    if (request.query.get("stream") !== "1") return serving(frames)(request);
    if (request.index % ROUND !== 0) throw new TypeError("fetch failed (scripted: down)");
    const since = Number(request.query.get("since_lsn"));
    const next = since < frames.length ? [frames[since]!] : [];
    return streamResponse(request, [control, ...next], "cut", frames.length);
  };
  await withFollower(wal, async ({ spool, primary }) => {
    const fourth = primary.waitFor("wal", (r) => r.index === 3 * ROUND);
    assert.equal((await settledWithin(fourth)).outcome, "settled", "no backoff grew to minutes");
    const polls = primary.requests.filter((r) => r.route === "wal" && !r.query.get("stream"));
    assert.equal(polls.length, 0, "streams all along: no fallback to long-polls");
    await waitUntil("the log to hold everything", () => spool.currentLsn() === 4);
  }, 3_600_000);
});

Deno.test("LogFollower refuses a frame whose term is lower than one it kept (stale_term)", async () => {
  const frames = [frame(1, 1), frame(2, 3), frame(3, 2), frame(4, 3)];
  await withFollower(serving(frames), async ({ follower, spool, primary }) => {
    await primary.waitFor("ack", (r) => r.json?.durable_lsn === 2);
    // It asks again from LSN 2 with its term, and keeps refusing LSN 3.
    await primary.waitFor("wal", (r) => r.index >= 3);
    assert.equal(spool.currentLsn(), 2);
    assert.equal(follower.status().state, "stale_term");
    assert.match(follower.status().last_error ?? "", /frame 3 has term 2/);
  });
});

Deno.test("LogFollower fences an upstream whose term is older than one it saw (stale_term)", async () => {
  await withTempDir(async (dir) => {
    const primary = scriptedPrimary({ currentLsn: 0, wal: serving([frame(1, 1)]) });
    const spool = await Spool.open({ walDir: joinPath(dir, "wal"), timeline: 1, term: 1 });
    const follower = new LogFollower({
      client: primary.client,
      replicaId: "standby-1",
      upstreamUrl: "http://old-leader.test",
      spool,
      appliedLsn: () => 0,
      backoffMsMin: 1,
      backoffMsMax: 5,
    }, 0);
    follower.seeTerm(2); // an election for term 2 was seen; the upstream registers at term 1
    follower.start();
    try {
      await waitUntil("the stale upstream to be refused", () => follower.state === "stale_term");
      assert.match(follower.status().last_error ?? "", /upstream is at term 1, older than 2/);
      assert.equal(primary.requests.filter((r) => r.route === "wal").length, 0, "nothing pulled");
      assert.equal(spool.currentLsn(), 0);
    } finally {
      await follower.stop();
      await spool.close();
    }
  });
});

Deno.test("LogFollower stops following on 409 rebootstrap_required and keeps its log", async () => {
  const frames = [frame(1, 1), frame(2, 1)];
  const wal = (request: ScriptedRequest) =>
    Number(request.query.get("since_lsn")) >= 2
      ? rebootstrapResponse("wal-removed", 10)
      : serving(frames)(request);
  await withFollower(wal, async ({ follower, spool, primary }) => {
    await primary.waitFor("wal", (r) => Number(r.query.get("since_lsn")) === 2);
    await waitUntil(
      "the 409 to stop the follower",
      () => follower.state === "rebootstrap_required",
    );
    await follower.stop();
    assert.equal(follower.status().state, "rebootstrap_required");
    assert.equal(spool.currentLsn(), 2);
    const after = primary.requests.filter((r) =>
      r.route === "wal" && r.query.get("since_lsn") === "2"
    );
    assert.equal(after.length, 1, "no pull after the 409");
  });
});
