// The replica follows the primary with streaming pulls (SPEC.md 13.1): it applies each run as it
// arrives, acks at least every interval even with nothing new, resumes from its last LSN after any
// end, keeps the pull's guarantees (a damaged frame stops it in apply_error with no ack past it),
// and falls back to long-polls when the server does not stream or streams keep breaking. Driven by
// a scripted primary; each check waits for a request or a state, never for time to pass.

import assert from "node:assert/strict";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { concatBytes } from "../../src/core/bytes.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { encodeControlRecord } from "../../src/wal/stream_codec.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import {
  errorResponse,
  framesResponse,
  idlePull,
  type ScriptedPrimary,
  scriptedPrimary,
  type ScriptedRequest,
  streamResponse,
} from "../helpers/scripted_primary.ts";
import { withTempDir } from "../helpers/temp.ts";
import { eventually, settledWithin } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();
const CURRENT_LSN = 4;

function frame(lsn: number): Uint8Array {
  const payload = utf8.encode(
    JSON.stringify({ op: "put", collection: "c", key: `k${lsn}`, value: lsn, ts: 1 }),
  );
  return encodeFrameV3({ term: 1, ownershipEpoch: 0, lsn, timestampMs: 1, payload });
}

const FRAMES = [1, 2, 3, 4].map(frame);

function control(lsn = CURRENT_LSN): Uint8Array {
  return encodeControlRecord({ currentLsn: lsn, commitLsn: lsn, term: 1, timeline: 1 });
}

function isStream(request: ScriptedRequest): boolean {
  return request.query.get("stream") === "1";
}

/** The frames after `since` (of `frames`), as one chunk. */
function after(since: number, frames: readonly Uint8Array[] = FRAMES): Uint8Array {
  const served = frames.slice(since);
  return concatBytes(served, served.reduce((n, f) => n + f.byteLength, 0));
}

/** A runtime on `primary` with short back-offs and ack interval (`extra` overrides them). */
function openRuntime(
  primary: ScriptedPrimary,
  dataDir: string,
  logger: ReturnType<typeof createMemoryLogger>,
  extra: Partial<Parameters<typeof ReplicaRuntime.open>[0]> = { streamAckMs: 20 },
): Promise<ReplicaRuntime> {
  return ReplicaRuntime.open({
    dataDir,
    replicaId: "r1",
    primaryUrl: "http://primary.test",
    client: primary.client,
    logger,
    backoffMsMin: 1,
    backoffMsMax: 5,
    ...extra,
  });
}

async function withRuntime(
  primary: ScriptedPrimary,
  fn: (runtime: ReplicaRuntime, logger: ReturnType<typeof createMemoryLogger>) => Promise<void>,
): Promise<void> {
  const logger = createMemoryLogger();
  await withTempDir(async (dataDir) => {
    const runtime = await openRuntime(primary, dataDir, logger);
    runtime.start();
    try {
      await fn(runtime, logger);
    } finally {
      await runtime.stop();
    }
  });
}

Deno.test("ReplicaRuntime streams by default: each run is applied as it arrives, and acked", async () => {
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: (request) =>
      streamResponse(request, [control(), after(0).slice(), FRAMES[3]!], "open", CURRENT_LSN),
  });
  await withRuntime(primary, async (runtime) => {
    await primary.waitFor("ack", (r) => r.json?.applied_lsn === 4);
    const first = primary.requests.find((r) => r.route === "wal")!;
    assert.ok(isStream(first), "the first request is a stream");
    assert.equal(first.query.get("since_lsn"), "0");
    assert.equal(first.query.get("await_timeout_ms"), null, "a stream is not held");
    assert.equal(runtime.status().state, "healthy");
    assert.equal(runtime.status().primary_current_lsn, 4);
    assert.equal((await runtime.get("c", "k4"))?.value, 4);
    assert.equal(primary.requests.filter((r) => r.route === "wal").length, 1, "one stream");
  });
});

Deno.test("a streaming replica acks at every interval even when nothing new arrives", async () => {
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: (request) => streamResponse(request, [control(), after(0)], "open", CURRENT_LSN),
  });
  await withRuntime(primary, async () => {
    await primary.waitFor("ack", (r) => r.json?.applied_lsn === 4);
    const seen = primary.requests.filter((r) => r.route === "ack").length;
    // Nothing more will arrive on this stream: every further ack is one of the interval's.
    await primary.waitFor("ack", (r) => r.index >= seen + 3);
    const acks = primary.requests.filter((r) => r.route === "ack");
    assert.ok(acks.slice(seen).every((ack) => ack.json?.durable_lsn === 4));
    assert.equal(primary.requests.filter((r) => r.route === "wal").length, 1, "the same stream");
  });
});

Deno.test("stop() ends a quiet stream at once, though the request's abort does not reach the body", async () => {
  // As measured with Deno's fetch: aborting the request leaves a body read that waits where it is.
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: () => {
      const chunks = [control(), after(0)];
      const body = new ReadableStream<Uint8Array>({
        pull: (controller) => {
          const chunk = chunks.shift();
          return chunk === undefined ? new Promise<void>(() => {}) : controller.enqueue(chunk);
        },
      }, { highWaterMark: 0 });
      const headers = framesResponse(new Uint8Array(0), CURRENT_LSN).headers;
      return new Response(body, { headers });
    },
  });
  await withTempDir(async (dataDir) => {
    const runtime = await openRuntime(primary, dataDir, createMemoryLogger());
    runtime.start();
    await primary.waitFor("ack", (r) => r.json?.applied_lsn === 4);
    assert.equal((await settledWithin(runtime.stop())).outcome, "settled");
  });
});

Deno.test("a stream that ends, cleanly or cut mid-frame, is resumed from the last LSN applied", async () => {
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: (request) => {
      const since = Number(request.query.get("since_lsn"));
      if (request.index === 0) {
        return streamResponse(
          request,
          [control(), after(0, FRAMES.slice(0, 1))],
          "end",
          CURRENT_LSN,
        );
      }
      if (request.index === 1) {
        // LSN 2 whole, then the first bytes of LSN 3 and the connection fails.
        return streamResponse(
          request,
          [
            control(),
            concatBytes([FRAMES[1]!, FRAMES[2]!.subarray(0, 9)]),
          ],
          "cut",
          CURRENT_LSN,
        );
      }
      return streamResponse(request, [control(), after(since)], "open", CURRENT_LSN);
    },
  });
  await withRuntime(primary, async (runtime) => {
    const third = await primary.waitFor("wal", (r) => r.index === 2);
    assert.equal(primary.requests.filter((r) => r.route === "wal")[1]!.query.get("since_lsn"), "1");
    assert.equal(third.query.get("since_lsn"), "2", "resumed after the last whole frame");
    assert.ok(isStream(third));
    await eventually("everything applied", () => runtime.appliedLsn() === 4);
    assert.equal(runtime.status().apply_errors_total, 0, "a cut is not damage");
  });
});

Deno.test("a stream acks as soon as it opens, not an interval later: a restarted primary learns the replica's position", async () => {
  const primary = scriptedPrimary({
    currentLsn: 0,
    wal: (request) => streamResponse(request, [control(0)], "open", 0),
  });
  await withTempDir(async (dataDir) => {
    // An hour between interval acks: only the ack of the opening can come within the bound.
    const runtime = await openRuntime(primary, dataDir, createMemoryLogger(), {
      streamAckMs: 3_600_000,
    });
    runtime.start();
    try {
      const ack = await settledWithin(primary.waitFor("ack"));
      assert.equal(ack.outcome, "settled", "acked when the stream opened");
      assert.equal(primary.requests.filter((r) => r.route === "wal").length, 1, "one stream");
    } finally {
      await runtime.stop();
    }
  });
});

Deno.test("a stream that opened resets the backoff and is not broken: a primary that dies again and again is rejoined at once, by streams", async () => {
  // Each round: a stream opens and brings a frame, the primary dies (the stream is cut) and stays
  // down for FAILED_ATTEMPTS requests. Without the reset the backoff would double through every
  // round (past an hour here); with it each round starts again from the minimum. Streams that
  // brought frames are no reason to fall back to long-polls, however soon they were cut.
  const FAILED_ATTEMPTS = 7;
  const ROUND = FAILED_ATTEMPTS + 1;
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: (request) => {
      const since = Number(request.query.get("since_lsn"));
      if (!isStream(request)) return idlePull(request, CURRENT_LSN);
      if (request.index % ROUND !== 0) throw new TypeError("fetch failed (scripted: down)");
      const next = since < FRAMES.length ? [FRAMES[since]!] : [];
      return streamResponse(request, [control(), ...next], "cut", CURRENT_LSN);
    },
  });
  await withTempDir(async (dataDir) => {
    const logger = createMemoryLogger();
    const runtime = await openRuntime(primary, dataDir, logger, {
      backoffMsMin: 1,
      backoffMsMax: 3_600_000,
    });
    runtime.start();
    try {
      const fourth = primary.waitFor("wal", (r) => r.index === 3 * ROUND);
      assert.equal((await settledWithin(fourth)).outcome, "settled", "no backoff grew to minutes");
      const wal = primary.requests.filter((r) => r.route === "wal");
      assert.ok(wal.every(isStream), "every request a stream: no fallback to long-polls");
      await eventually("everything applied", () => runtime.appliedLsn() === 4);
      assert.ok(!logger.lines.some((line) => line.event === "replica.stream_fallback"));
    } finally {
      await runtime.stop();
    }
  });
});

Deno.test("a damaged frame in a stream: the frames before it applied, apply_error, no ack past it", async () => {
  const damaged = FRAMES[2]!.slice();
  damaged[50]! ^= 0x08;
  let healed = false;
  const primary = scriptedPrimary({
    currentLsn: CURRENT_LSN,
    wal: (request) => {
      const since = Number(request.query.get("since_lsn"));
      const frames = healed ? FRAMES : [FRAMES[0]!, FRAMES[1]!, damaged, FRAMES[3]!];
      return streamResponse(request, [control(), after(since, frames)], "open", CURRENT_LSN);
    },
  });
  await withRuntime(primary, async (runtime) => {
    await primary.waitFor("wal", (r) => r.index > 0 && r.query.get("since_lsn") === "2");
    const status = runtime.status();
    assert.equal(status.state, "apply_error");
    assert.equal(status.applied_lsn, 2);
    assert.ok(status.apply_errors_total >= 1);
    assert.equal(await runtime.get("c", "k4"), undefined, "nothing after the damage");
    const acks = primary.requests.filter((r) => r.route === "ack");
    assert.ok(acks.some((ack) => (ack.json?.apply_errors_total as number) >= 1), "reported");
    assert.ok(acks.every((ack) => (ack.json?.applied_lsn as number) <= 2), "no ack past it");
    healed = true;
    await primary.waitFor("ack", (r) => r.json?.applied_lsn === 4);
    await eventually("healthy again", () => runtime.status().state === "healthy");
  });
});

Deno.test("a server that refuses stream=1 (a 400, or a plain pull) gets long-polls instead", async () => {
  for (const refusal of ["400", "plain"] as const) {
    const primary = scriptedPrimary({
      currentLsn: CURRENT_LSN,
      wal: (request) => {
        const since = Number(request.query.get("since_lsn"));
        if (isStream(request) && refusal === "400") {
          return errorResponse(400, "bad_request", "unknown query parameter stream");
        }
        // An older primary ignores stream=1 and answers a plain pull.
        return since >= CURRENT_LSN ? idlePull(request, CURRENT_LSN) : framesResponse(
          after(since) as Uint8Array<ArrayBuffer>,
          CURRENT_LSN,
        );
      },
    });
    await withRuntime(primary, async (runtime, logger) => {
      await primary.waitFor("wal", (r) => r.query.get("since_lsn") === "4");
      const walRequests = primary.requests.filter((r) => r.route === "wal");
      assert.ok(isStream(walRequests[0]!), refusal);
      assert.ok(walRequests.slice(1).every((r) => !isStream(r)), `${refusal}: long-polls after`);
      assert.equal(runtime.appliedLsn(), 4);
      assert.equal(runtime.status().state, "healthy");
      assert.ok(logger.lines.some((line) => line.event === "replica.stream_fallback"));
    });
  }
});

Deno.test("streams that keep breaking (cut at once, or bringing nothing) fall back to long-polls", async () => {
  for (const breakage of ["cut", "silent"] as const) {
    const primary = scriptedPrimary({
      currentLsn: CURRENT_LSN,
      wal: (request) => {
        const since = Number(request.query.get("since_lsn"));
        if (isStream(request)) {
          // A proxy that cuts each stream, or one that holds its bytes back.
          return breakage === "cut"
            ? streamResponse(request, [control()], "cut", CURRENT_LSN)
            : new Promise<Response>(() => {});
        }
        return since >= CURRENT_LSN ? idlePull(request, CURRENT_LSN) : framesResponse(
          after(since) as Uint8Array<ArrayBuffer>,
          CURRENT_LSN,
        );
      },
    });
    await withTempDir(async (dataDir) => {
      const logger = createMemoryLogger();
      const runtime = await openRuntime(primary, dataDir, logger, { streamIdleMs: 30 });
      runtime.start();
      try {
        await primary.waitFor("wal", (r) => !isStream(r));
        const streams = primary.requests.filter((r) => r.route === "wal" && isStream(r));
        assert.equal(streams.length, 3, `${breakage}: three broken streams, then long-polls`);
        await eventually("the long-polls to bring everything", () => runtime.appliedLsn() === 4);
        assert.ok(logger.lines.some((line) => line.event === "replica.stream_fallback"));
      } finally {
        await runtime.stop();
      }
    });
  }
});
