// Who writes the primary's materialised state: the apply worker (its own handle on the KV file)
// or, where it cannot run, the primary's thread. Both must leave the same state, key by key, with
// the same meta; a worker that stops hands over to the primary's thread without losing a record.

import assert from "node:assert/strict";
import { joinPath } from "../../src/core/files.ts";
import type { ApplyFrame } from "../../src/state/apply_frames.ts";
import { StateApplier } from "../../src/state/applier.ts";
import { KvState } from "../../src/state/kv_state.ts";
import {
  ApplyWorkerGoneError,
  InProcessWriter,
  workerRefusal,
  WorkerWriter,
} from "../../src/state/state_writer.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import { withTempDir } from "../helpers/temp.ts";

const utf8 = new TextEncoder();
const WAIT_BOUND_MS = 10_000;
const BROKEN_WORKER = new URL("../fixtures/broken_apply_worker.ts", import.meta.url);

function put(key: string, value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify({ op: "put", collection: "c", key, value, ts: 1 }));
}

/** Puts, overwrites, deletes, a large (chunked) value and one legacy payload, LSNs 1..n. */
function mixedFrames(): ApplyFrame[] {
  const payloads = [
    put("a", 1),
    put("b", { nested: [1, 2] }),
    put("a", 2),
    utf8.encode(JSON.stringify({ op: "delete", collection: "c", key: "b", ts: 1 })),
    put("big", "x".repeat(200_000)),
    utf8.encode("not a record"),
    put("c", null),
  ];
  return payloads.map((payload, i) => ({ lsn: i + 1, term: 1 + Math.floor(i / 4), payload }));
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
    for (const mode of ["worker", "in_process"] as const) {
      const path = joinPath(dir, `${mode}.kv`);
      const kv = await Deno.openKv(path);
      const writer = mode === "worker" ? new WorkerWriter(path) : new InProcessWriter(kv);
      const committed: number[] = [];
      const frames = mixedFrames();
      const skipped = await writer.apply(frames.slice(0, 4), (lsn) => committed.push(lsn));
      skipped.push(...await writer.apply(frames.slice(4), (lsn) => committed.push(lsn)));
      await writer.close();
      kv.close();
      assert.equal(writer.mode, mode);
      assert.deepEqual(skipped, [{ lsn: 6, reason: "payload is not UTF-8 JSON" }]);
      assert.deepEqual(committed, [...committed].sort((a, b) => a - b), "commits come in order");
      assert.equal(committed.at(-1), 7, "the last commit names the last LSN");
      results.push(await stateOf(path));
    }
    assert.deepEqual(results[0], results[1]);
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
      const state = await StateApplier.open({ spool, kv, kvPath, workerModule, logger });
      state.start();
      try {
        for (let i = 1; i <= 20; i++) await spool.append([put(`k${i}`, i)]);
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
      } finally {
        await state.stop();
      }
      const meta = await new KvState(kv).meta();
      assert.deepEqual([meta.applied_lsn, meta.entries], [20, 20]);
    });
  }
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
