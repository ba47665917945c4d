// SPEC.md 9.2 with back-pressure: when the append queue is full a write is refused (503
// overloaded, Retry-After) before its body is read, so bodies in flight stay bounded.

import assert from "node:assert/strict";
import { denoFileSystem } from "../../src/core/files.ts";
import { wrapFileSystem } from "../helpers/wrapped_fs.ts";
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
