// Who writes the primary's materialised state: the apply worker (its own handle on the KV file)
// or, where it cannot run, the primary's thread. Both must leave the same state, key by key, with
// the same meta; a worker that stops hands over to the primary's thread without losing a record.

import assert from "node:assert/strict";
import { getPriority } from "node:os";
import { STATE_APPLY_NICE_STEPS, STATE_APPLY_YIELD_LAG_MS } from "../../src/core/limits.ts";
import { joinPath } from "../../src/core/files.ts";
import type { ApplyFrame } from "../../src/state/apply_frames.ts";
import { StateApplier } from "../../src/state/applier.ts";
import { KvState } from "../../src/state/kv_state.ts";
import {
  ApplyWorkerGoneError,
  InProcessWriter,
  type StateWriter,
  workerRefusal,
  WorkerWriter,
} from "../../src/state/state_writer.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { withTempDir } from "../helpers/temp.ts";
import { waitUntil } from "../helpers/process.ts";
import { encodeFrameV3, frameV3ByteLength } from "../../src/wal/frame.ts";
import type { RawFrames } from "../../src/wal/range_read.ts";
import { Spool } from "../../src/wal/spool.ts";
import { segmentFileName } from "../../src/wal/segment.ts";
import { putPayload, withApplier } from "../helpers/state_fixture.ts";

const utf8 = new TextEncoder();
const WAIT_BOUND_MS = 10_000;
const BROKEN_WORKER = new URL("../fixtures/broken_apply_worker.ts", import.meta.url);
const STUCK_WORKER = new URL("../fixtures/stuck_apply_worker.ts", import.meta.url);
/** Far longer than `STATE_STOP_WAIT_MS`: a stop that has not ended by then waits for ever. */
const STOP_BOUND_MS = 10_000;

/** Puts, overwrites, deletes, a large (chunked) value and one legacy payload, LSNs 1..n. */
function mixedFrames(): ApplyFrame[] {
  const payloads = [
    putPayload("a", 1),
    putPayload("b", { nested: [1, 2] }),
    putPayload("a", 2),
    utf8.encode(JSON.stringify({ op: "delete", collection: "c", key: "b", ts: 1 })),
    putPayload("big", "x".repeat(200_000)),
    utf8.encode("not a record"),
    putPayload("c", null),
  ];
  return payloads.map((payload, i) => ({ lsn: i + 1, term: 1 + Math.floor(i / 4), payload }));
}

/** `frames` as the spool stores them (v3 frames, one chunk each), for `applyRaw`. */
function storedFrames(frames: readonly ApplyFrame[]): RawFrames {
  const chunks = frames.map((f) =>
    encodeFrameV3({
      term: f.term,
      ownershipEpoch: 0,
      lsn: f.lsn,
      timestampMs: 1,
      payload: f.payload,
    })
  );
  const byteLength = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  return { chunks, count: frames.length, byteLength, lastLsn: frames[frames.length - 1]!.lsn };
}

async function stateOf(path: string) {
  const kv = await Deno.openKv(path);
  try {
    const state = new KvState(kv);
    return {
      meta: await state.meta(),
      entries: await Array.fromAsync(state.scan({ verifyCount: true })),
    };
  } finally {
    kv.close();
  }
}

Deno.test("the apply worker and the primary's thread leave the same state and meta from the same frames", async () => {
  await withTempDir(async (dir) => {
    const results = [];
    for (const way of ["worker", "worker_raw", "in_process"] as const) {
      const path = joinPath(dir, `${way}.kv`);
      const kv = await Deno.openKv(path);
      const writer: StateWriter = way === "in_process"
        ? new InProcessWriter(kv)
        : new WorkerWriter(path);
      const committed: number[] = [];
      const onCommitted = (lsn: number) => committed.push(lsn);
      const frames = mixedFrames();
      const skipped = [];
      for (const [from, to] of [[0, 4], [4, frames.length]] as const) {
        skipped.push(
          ...way === "worker_raw"
            ? await writer.applyRaw!(storedFrames(frames.slice(from, to)), from, onCommitted)
            : await writer.apply(frames.slice(from, to), onCommitted),
        );
      }
      await writer.close();
      kv.close();
      assert.equal(writer.mode, way === "in_process" ? "in_process" : "worker");
      assert.deepEqual(skipped, [{ lsn: 6, reason: "payload is not UTF-8 JSON" }]);
      assert.deepEqual(committed, [...committed].sort((a, b) => a - b), "commits come in order");
      assert.equal(committed.at(-1), 7, "the last commit names the last LSN");
      results.push(await stateOf(path));
    }
    assert.deepEqual(results[0], results[1]);
    assert.deepEqual(results[0], results[2]);
    const [worker] = results;
    assert.deepEqual(worker!.meta, { applied_lsn: 7, last_term: 2, last_hash: null, entries: 3 });
    assert.deepEqual(worker!.entries.map((e) => [e.key, e.lsn]), [["a", 3], ["big", 5], ["c", 7]]);
  });
});

Deno.test("a closed worker, one that fails as it loads, or one that cannot open the file, answers ApplyWorkerGoneError", async () => {
  await withTempDir(async (dir) => {
    const path = joinPath(dir, "ferry.kv");
    const closed = new WorkerWriter(path);
    await closed.apply(mixedFrames().slice(0, 1), () => {});
    await closed.close();
    await assert.rejects(closed.apply(mixedFrames().slice(1, 2), () => {}), ApplyWorkerGoneError);
    const broken = new WorkerWriter(path, BROKEN_WORKER);
    await assert.rejects(broken.apply(mixedFrames(), () => {}), ApplyWorkerGoneError);
    await broken.close();
    const unopenable = new WorkerWriter(joinPath(dir, "missing", "ferry.kv"));
    await assert.rejects(unopenable.apply(mixedFrames(), () => {}), /could not open/);
    await assert.rejects(unopenable.apply(mixedFrames(), () => {}), ApplyWorkerGoneError);
    await unopenable.close();
  });
});

Deno.test("StateApplier: the worker applies when it may; when it stops, the primary's thread goes on", async () => {
  for (const workerModule of [undefined, BROKEN_WORKER]) {
    await withPrimary({}, async ({ spool, kv, dir }) => {
      const logger = createMemoryLogger();
      const kvPath = joinPath(dir, "ferry.kv");
      await withApplier({ spool, kv, kvPath, workerModule, logger }, async (state) => {
        for (let i = 1; i <= 20; i++) await spool.append([putPayload(`k${i}`, i)]);
        assert.ok(await state.waitApplied(20, { timeoutMs: WAIT_BOUND_MS }));
        assert.equal((await state.get("c", "k20"))?.value, 20);
        const modes = logger.lines.filter((l) => l.event === "state.apply_mode");
        if (workerModule === undefined) {
          assert.equal(state.mode, "worker");
          assert.deepEqual(modes.map((l) => l.mode), ["worker"]);
        } else {
          assert.equal(state.mode, "in_process");
          assert.ok(logger.lines.some((l) => l.event === "state.apply_worker_failed"));
          assert.deepEqual(modes.map((l) => l.mode), ["worker", "in_process"]);
        }
      });
      const meta = await new KvState(kv).meta();
      assert.deepEqual([meta.applied_lsn, meta.entries], [20, 20]);
    });
  }
});

Deno.test("StateApplier: the worker applies below the process's priority; past STATE_APPLY_YIELD_LAG_MS behind it gives way to one at the process's priority until the state reaches the head", async () => {
  await withPrimary({}, async ({ spool, kv, dir, clock: spoolClock }) => {
    const logger = createMemoryLogger();
    let aheadMs = 0;
    // The spool stamps records by its clock; the applier's runs `aheadMs` ahead of it.
    const clock = () => spoolClock.read() + aheadMs;
    const kvPath = joinPath(dir, "ferry.kv");
    const lowered = Math.min(19, getPriority(0) + STATE_APPLY_NICE_STEPS);
    const events = () =>
      logger.lines
        .filter((l) => l.event.startsWith("state.apply_") && l.event !== "state.apply_mode")
        .map((l) => l.event === "state.apply_priority" ? `nice ${l.nice}` : l.event);
    await withApplier({ spool, kv, kvPath, logger, clock }, async (state) => {
      const writeAndApply = async (lsn: number) => {
        await spool.append([putPayload(`k${lsn}`, lsn)]);
        assert.ok(await state.waitApplied(lsn, { timeoutMs: WAIT_BOUND_MS }));
      };
      await writeAndApply(1);
      assert.deepEqual(events(), [`nice ${lowered}`]);
      assert.deepEqual(state.applyStatus(), {
        mode: "worker",
        priority: "background",
        lag_ms: 0,
        resting: false,
      });
      // The next record looks older than the bound: the apply stops yielding.
      aheadMs = STATE_APPLY_YIELD_LAG_MS + 1000;
      await writeAndApply(2);
      await waitUntil(
        "the apply to reach the head",
        () => events().includes("state.apply_caught_up"),
      );
      assert.deepEqual(state.applyStatus(), {
        mode: null,
        priority: null,
        lag_ms: 0,
        resting: false,
      });
      aheadMs = 0;
      await writeAndApply(3);
      assert.deepEqual(events(), [
        `nice ${lowered}`,
        "state.apply_keeps_up",
        `nice ${getPriority(0)}`,
        "state.apply_caught_up",
        `nice ${lowered}`,
      ]);
      const keepsUp = logger.lines.find((l) => l.event === "state.apply_keeps_up")!;
      assert.ok((keepsUp.lag_ms as number) > STATE_APPLY_YIELD_LAG_MS);
      assert.equal(keepsUp.applied_lsn, 1);
    });
    const meta = await new KvState(kv).meta();
    assert.deepEqual([meta.applied_lsn, meta.entries], [3, 3]);
  });
});

Deno.test("StateApplier: a stop does not wait for a worker that never answers; it ends it after STATE_STOP_WAIT_MS and falls back to nothing", async () => {
  await withPrimary({}, async ({ spool, kv, dir }) => {
    const logger = createMemoryLogger();
    const kvPath = joinPath(dir, "ferry.kv");
    const state = await StateApplier.open({
      spool,
      kv,
      kvPath,
      logger,
      workerModule: STUCK_WORKER,
    });
    state.start();
    await spool.append([putPayload("k1", 1)]);
    await waitUntil("the apply to be under way", () => state.mode === "worker");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<"hung">((resolve) => {
      timer = setTimeout(() => resolve("hung"), STOP_BOUND_MS);
    });
    const outcome = await Promise.race([state.stop().then(() => "stopped" as const), bound]);
    clearTimeout(timer);
    assert.equal(outcome, "stopped");
    const events = logger.lines.map((l) => l.event);
    assert.ok(events.includes("state.apply_worker_ended"), events.join(" "));
    assert.ok(!events.includes("state.apply_worker_failed"), "no fallback while stopping");
    assert.equal(state.mode, "worker", "no in-process writer was made");
    assert.equal(state.appliedLsn(), 0);
  });
});

Deno.test("workerRefusal: under -A the worker may run", () => {
  assert.equal(workerRefusal(), undefined);
});

Deno.test("a writer closed while its worker still opens the file closes cleanly", async () => {
  await withTempDir(async (dir) => {
    const writer = new WorkerWriter(joinPath(dir, "ferry.kv"));
    await writer.close();
    await assert.rejects(writer.apply(mixedFrames(), () => {}), ApplyWorkerGoneError);
  });
});

Deno.test("StateApplier: frames the worker refuses are read again decoded, so a damaged segment is reported and the damaged record never applied", async () => {
  await withTempDir(async (dir) => {
    const walDir = joinPath(dir, "wal");
    const options = { walDir, timeline: 1, term: 1, segmentBytesMax: 4096 };
    let spool = await Spool.open(options);
    for (let i = 1; i <= 100; i++) {
      await spool.append([putPayload(`k${String(i).padStart(3, "0")}`, i)]);
    }
    const frameBytes = frameV3ByteLength(putPayload("k001", 1).byteLength);
    const [sealed] = spool.segments();
    assert.ok(sealed!.lastLsn >= 10, "LSN 10 is in a sealed segment (never scanned on open)");
    await spool.close();
    // A flipped payload byte in LSN 10: the raw read serves it, the worker's CRC check refuses it.
    const path = joinPath(spool.dir, segmentFileName(sealed!.firstLsn));
    const file = await Deno.open(path, { read: true, write: true });
    const at = 9 * frameBytes + frameBytes - 10;
    const byte = new Uint8Array(1);
    await file.seek(at, Deno.SeekMode.Start);
    await file.read(byte);
    await file.seek(at, Deno.SeekMode.Start);
    await file.write(new Uint8Array([byte[0]! ^ 0x20]));
    file.close();
    spool = await Spool.open(options);
    const kvPath = joinPath(dir, "ferry.kv");
    const kv = await Deno.openKv(kvPath);
    const logger = createMemoryLogger();
    const state = await StateApplier.open({ spool, kv, kvPath, logger });
    state.start();
    try {
      const failed = () => logger.lines.some((l) => l.event === "state.apply_failed");
      for (let waited = 0; !failed() && waited < WAIT_BOUND_MS; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(state.mode, "worker");
      assert.ok(logger.lines.some((l) => l.event === "state.raw_frames_rejected"));
      const failure = logger.lines.find((l) => l.event === "state.apply_failed")!;
      assert.match(JSON.stringify(failure), /WalCorruptionError|corrupt/i);
      // The decoded read refuses the whole batch that holds it, as it always did.
      assert.ok(state.appliedLsn() < 10, "the damaged record is never applied");
    } finally {
      await state.stop();
      await spool.close();
      kv.close();
    }
  });
});
