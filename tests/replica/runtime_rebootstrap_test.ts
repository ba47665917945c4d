// A re-bootstrap that fails does not end the replica: it is logged, shown in the status, backed
// off and started over with a fresh snapshot, until one completes. The status shows what the
// primary said of its current LSN during the re-bootstrap, not the last pull's value. Each test
// drives a runtime against a scripted primary and checks the runtime at the moment a request
// arrives (its answer held), so nothing here depends on how long anything takes.

import assert from "node:assert/strict";
import { denoFileSystem, type FileSystem } from "../../src/core/files.ts";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { createMemoryLogger } from "../helpers/memory_logger.ts";
import {
  deferred,
  idlePull,
  rebootstrapResponse,
  type ScriptedEntry,
  type ScriptedPrimary,
  scriptedPrimary,
  type ScriptedRequest,
  snapshotLines,
  snapshotResponse,
} from "../helpers/scripted_primary.ts";
import { withTempDir } from "../helpers/temp.ts";

/** Where the scripted snapshots start, and what they hold. */
const START_LSN = 60;
const ENTRIES: ScriptedEntry[] = [
  { collection: "c", key: "a", value: 1, lsn: 10 },
  { collection: "c", key: "b", value: 2, lsn: 20 },
];

/** Pulls from before the snapshot's start are answered 409; from it on, nothing new. */
function walAfterPrune(oldestLsn: number) {
  return (request: ScriptedRequest) =>
    Number(request.query.get("since_lsn")) < START_LSN
      ? rebootstrapResponse("wal-removed", oldestLsn)
      : idlePull(request, START_LSN);
}

/** The answer to `request` once `gate` opens. */
async function heldUntil(gate: Promise<void>, answer: () => Response): Promise<Response> {
  await gate;
  return answer();
}

/** Runs `fn` against a started runtime (short backoffs, three snapshot attempts), then stops it. */
async function withRuntime(
  primary: ScriptedPrimary,
  fn: (runtime: ReplicaRuntime) => Promise<void>,
  options: { fs?: FileSystem; logger?: ReturnType<typeof createMemoryLogger> } = {},
): Promise<void> {
  await withTempDir(async (dataDir) => {
    const logger = options.logger ?? createMemoryLogger();
    const runtime = await ReplicaRuntime.open({
      dataDir,
      replicaId: "r1",
      primaryUrl: "http://primary.test",
      client: primary.client,
      logger,
      fs: options.fs,
      snapshotAttemptsMax: 3,
      backoffMsMin: 1,
      backoffMsMax: 20,
    });
    runtime.start();
    try {
      await fn(runtime);
    } finally {
      await runtime.stop();
    }
  });
}

/** Waits until the runtime pulls from the snapshot's start and is held there: it is healthy. */
async function assertRebootstrapped(primary: ScriptedPrimary, runtime: ReplicaRuntime) {
  await primary.waitFor(
    "wal",
    (r) =>
      Number(r.query.get("since_lsn")) === START_LSN && Number(r.query.get("await_timeout_ms")) > 0,
  );
  const status = runtime.status();
  assert.equal(status.state, "healthy");
  assert.equal(status.applied_lsn, START_LSN);
  assert.equal(status.rebootstraps_total, 1, "one re-bootstrap, however many attempts");
  assert.equal((await runtime.get("c", "b"))?.value, 2);
}

Deno.test("ReplicaRuntime: a resumed snapshot answered 409 starts the re-bootstrap over, and it completes", async () => {
  const gate = deferred();
  const logger = createMemoryLogger();
  const primary = scriptedPrimary({
    currentLsn: 0,
    wal: walAfterPrune(1),
    snapshot: (request) => {
      const lines = snapshotLines(START_LSN, ENTRIES);
      if (request.index === 0) return snapshotResponse(request, lines.slice(0, 2), "cut");
      // The resume after the cut finds the slot pin gone (dropped while the stream was cut).
      if (request.index === 1) return rebootstrapResponse("slot-missing", 1);
      return heldUntil(gate.promise, () => snapshotResponse(request, lines));
    },
  });
  await withRuntime(primary, async (runtime) => {
    await primary.waitFor("snapshot", (r) => r.index === 2);
    assert.equal(
      primary.requests.filter((r) => r.route === "snapshot")[1]?.query.get("after"),
      "c/a",
    );
    assert.equal(
      primary.requests.filter((r) => r.route === "snapshot")[2]?.query.get("after"),
      null,
    );
    const status = runtime.status();
    assert.equal(status.state, "rebootstrapping");
    assert.match(status.last_error ?? "", /rebootstrap_required/);
    const failed = logger.lines.filter((line) => line.event === "replica.rebootstrap_failed");
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.code, "rebootstrap_required");
    gate.resolve();
    await assertRebootstrapped(primary, runtime);
  }, { logger });
});

Deno.test("ReplicaRuntime: when every snapshot attempt fails, the replica backs off and starts over until one completes", async () => {
  const gate = deferred();
  const logger = createMemoryLogger();
  const failures = () => logger.lines.filter((line) => line.event === "replica.rebootstrap_failed");
  const primary = scriptedPrimary({
    currentLsn: 0,
    wal: walAfterPrune(1),
    snapshot: (request) => {
      // The primary stays unreachable until the replica has given up on two whole attempts.
      if (failures().length < 2) throw new TypeError("connection refused (scripted)");
      return heldUntil(
        gate.promise,
        () => snapshotResponse(request, snapshotLines(START_LSN, ENTRIES)),
      );
    },
  });
  await withRuntime(primary, async (runtime) => {
    // Three attempts per snapshot (the runtime's option): requests 0 to 5 failed, 6 is held.
    const held = await primary.waitFor("snapshot", () => failures().length >= 2);
    assert.equal(held.index, 6);
    const status = runtime.status();
    assert.equal(status.state, "rebootstrapping");
    assert.match(status.last_error ?? "", /connection refused/);
    assert.equal(status.applied_lsn, 0, "the old store is still the live one");
    assert.deepEqual(failures().map((line) => line.attempt), [1, 2]);
    gate.resolve();
    await assertRebootstrapped(primary, runtime);
  }, { logger });
});

Deno.test("ReplicaRuntime: a full disk while writing CURRENT fails the attempt, the old store stays live, the next attempt swaps", async () => {
  const inner = denoFileSystem();
  let fullDisks = 1;
  const fs: FileSystem = {
    ...inner,
    rename(from, to) {
      if (to.endsWith("CURRENT") && fullDisks-- > 0) {
        const error = Object.assign(new Error("No space left on device (os error 28)"), {
          code: "ENOSPC",
        });
        return Promise.reject(error);
      }
      return inner.rename(from, to);
    },
  };
  const gate = deferred();
  const primary = scriptedPrimary({
    currentLsn: 0,
    wal: walAfterPrune(1),
    snapshot: (request) => {
      const answer = () => snapshotResponse(request, snapshotLines(START_LSN, ENTRIES));
      return request.index === 0 ? answer() : heldUntil(gate.promise, answer);
    },
  });
  await withRuntime(primary, async (runtime) => {
    await primary.waitFor("snapshot", (r) => r.index === 1);
    const status = runtime.status();
    assert.equal(status.state, "rebootstrapping");
    assert.match(status.last_error ?? "", /No space left/);
    assert.equal(status.applied_lsn, 0);
    gate.resolve();
    await assertRebootstrapped(primary, runtime);
  }, { fs });
});

Deno.test("ReplicaRuntime.status() shows the primary's current LSN during a re-bootstrap, not the last pull's", async () => {
  const gate = deferred();
  const lines = snapshotLines(1000, ENTRIES);
  const primary = scriptedPrimary({
    currentLsn: 10,
    wal: (request) =>
      // The first pull finds the primary at 10; by the next one it is far ahead and has pruned.
      request.index === 0 ? idlePull(request, 10) : rebootstrapResponse("wal-removed", 951),
    snapshot: (request) =>
      request.index === 0
        ? heldUntil(gate.promise, () => snapshotResponse(request, lines.slice(0, 2), "cut"))
        : new Promise(() => {}), // The resumed snapshot stays unanswered until the replica stops.
  });
  await withRuntime(primary, async (runtime) => {
    await primary.waitFor("wal", (r) => r.index === 1);
    await primary.waitFor("snapshot", (r) => r.index === 0);
    assert.equal(runtime.status().state, "rebootstrapping");
    // The 409 says LSN 951 is the oldest the primary retains: it holds at least 950.
    assert.equal(runtime.status().primary_current_lsn, 950);
    gate.resolve();
    await primary.waitFor("snapshot", (r) => r.index === 1);
    // The snapshot's header says the primary had applied 1000 when the snapshot began.
    assert.equal(runtime.status().state, "rebootstrapping");
    assert.equal(runtime.status().primary_current_lsn, 1000);
  });
});
