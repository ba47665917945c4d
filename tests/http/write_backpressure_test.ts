// SPEC.md 9.2 with back-pressure: when the append queue is full a write is refused (503
// overloaded, Retry-After) before its body is read, so bodies in flight stay bounded. And while
// the primary's state has not applied more WAL than its bound, a write waits for it first.

import assert from "node:assert/strict";
import { denoFileSystem } from "../../src/core/files.ts";
import { wrapFileSystem } from "../helpers/wrapped_fs.ts";
import { silentLogger } from "../../src/core/log.ts";
import { BacklogGate } from "../../src/state/backlog_gate.ts";
import type { StateApplier } from "../../src/state/applier.ts";
import type { Spool } from "../../src/wal/spool.ts";
import { put, withApp } from "../helpers/app_fixture.ts";

/** A file system whose fdatasync waits while the gate is shut (the disk is busy). */
function gatedFileSystem() {
  const real = denoFileSystem();
  const state = { syncsHeld: 0 };
  let gate: Promise<void> | undefined;
  let release = () => {};
  const fs = wrapFileSystem(real, (handle) => ({
    syncData: async () => {
      if (gate) {
        state.syncsHeld += 1;
        await gate;
        state.syncsHeld -= 1;
      }
      await handle.syncData();
    },
  }));
  return {
    fs,
    state,
    shut: () => (gate = new Promise((resolve) => (release = resolve))),
    open: () => {
      release();
      gate = undefined;
    },
  };
}

Deno.test("POST /v1/records is refused before its body is read while the append queue is full", async () => {
  const disk = gatedFileSystem();
  await withApp({ spool: { fs: disk.fs, queueBytesMax: 4096 } }, async ({ call, spool }) => {
    disk.shut();
    const first = call("POST", "/v1/records", { json: { records: [put("a")] } });
    while (disk.state.syncsHeld === 0) {
      await new Promise((resolve) => setTimeout(resolve, 5)); // until the commit sits in fdatasync
    }
    const filler = call("POST", "/v1/records", {
      json: { records: [put("b", "x".repeat(3000))] },
    });
    while (spool.stats().queuedBytes === 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const body = "this is not JSON ".repeat(100);
    const refused = await call("POST", "/v1/records", {
      body,
      headers: { "content-type": "application/json", "content-length": String(body.length) },
    });
    assert.equal(refused.status, 503, "refused before the body is parsed (else it would be 400)");
    assert.equal((await refused.json()).error, "overloaded");
    assert.equal(refused.headers.get("retry-after"), "1");
    disk.open();
    assert.equal((await first).status, 200);
    assert.equal((await filler).status, 200);
  });
});

/** A gate over the app's own spool and state, built once they exist. */
function stateGate(options: { bytesMax: number; holdMs: number }) {
  let gate: BacklogGate | undefined;
  return {
    writeGate: (request: Request) => gate!.pass(request),
    build: (spool: Spool, state: StateApplier) => {
      gate = new BacklogGate({
        segments: () => spool.segments(),
        retainedBytes: () => spool.retainedBytes(),
        state,
        logger: silentLogger,
        ...options,
      });
      return gate;
    },
  };
}

const records = (prefix: string) =>
  Array.from({ length: 1000 }, (_, i) => put(`${prefix}${i}`, "x".repeat(100)));

Deno.test("past the state's backlog bound a write waits until the state has applied the writes before it", async () => {
  // A bound below one segment: each write waits for the state to reach the head first.
  const holder = stateGate({ bytesMax: 1, holdMs: 60_000 });
  await withApp({ app: { writeGate: holder.writeGate } }, async ({ call, spool, state }) => {
    holder.build(spool, state);
    let previousLastLsn = 0;
    for (const prefix of ["a", "b", "c"]) {
      const response = await call("POST", "/v1/records", { json: { records: records(prefix) } });
      assert.equal(response.status, 200);
      assert.ok(state.appliedLsn() >= previousLastLsn, "applied before this write was taken");
      previousLastLsn = (await response.json()).last_lsn;
    }
  });
});

Deno.test("a write held in vain is refused before its body is read, and nothing is appended", async () => {
  const holder = stateGate({ bytesMax: 1, holdMs: 1 });
  await withApp({ app: { writeGate: holder.writeGate } }, async ({ call, spool, state }) => {
    holder.build(spool, state);
    await state.stop(); // the state applies nothing more
    const first = await call("POST", "/v1/records", { json: { records: [put("a")] } });
    assert.equal(first.status, 200, "the spool held nothing the state had not applied");
    const head = spool.currentLsn();
    const body = "this is not JSON ".repeat(100);
    const refused = await call("POST", "/v1/records", {
      body,
      headers: { "content-type": "application/json" },
    });
    assert.equal(refused.status, 503, "refused before the body is parsed (else it would be 400)");
    const answer = await refused.json();
    assert.equal(answer.error, "overloaded");
    assert.match(answer.message, /materialised state/);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal(spool.currentLsn(), head);
  });
});
