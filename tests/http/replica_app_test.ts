// The replica's HTTP server under the primary's auth rules (SPEC.md 9.7 and 10): with a tokens file,
// `/v1/status`, `/metrics` and `/openapi.json` need admin, record reads need the writer role, and
// `/healthz` and `/readyz` are open; without one every caller is admin.

import assert from "node:assert/strict";
import { Auth } from "../../src/http/auth.ts";
import { createReplicaApp } from "../../src/http/replica_app.ts";
import { silentLogger } from "../../src/core/log.ts";
import { ReplicaRuntime } from "../../src/replica/runtime.ts";
import { testAuth, TOKENS } from "../helpers/app_fixture.ts";
import { withTempDir } from "../helpers/temp.ts";

/** Runs `fn` with a replica app over a runtime that is open but not following any primary. */
async function withReplicaApp(
  auth: Auth,
  fn: (call: (path: string, token?: string, method?: string) => Promise<Response>) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const runtime = await ReplicaRuntime.open({
      dataDir: dir,
      replicaId: "edge-1",
      primaryUrl: "http://127.0.0.1:9",
    });
    try {
      const app = createReplicaApp(runtime, { auth, logger: silentLogger, isReady: () => true });
      await fn(async (path, token, method = "GET") => {
        const headers: Record<string, string> = {};
        if (token !== undefined) headers.authorization = `Bearer ${token}`;
        return await app.request(`http://replica.test${path}`, { method, headers });
      });
    } finally {
      await runtime.stop();
    }
  });
}

/** The status of each caller on `path`: anonymous, bad token, writer, replica, admin. */
async function statuses(
  call: (path: string, token?: string) => Promise<Response>,
  path: string,
): Promise<number[]> {
  const result: number[] = [];
  for (const token of [undefined, "not-a-token", TOKENS.writer, TOKENS.replicaA, TOKENS.admin]) {
    const response = await call(path, token);
    await response.body?.cancel();
    result.push(response.status);
  }
  return result;
}

Deno.test("createReplicaApp() with tokens: /v1/status, /metrics and /openapi.json need admin", async () => {
  await withReplicaApp(testAuth(), async (call) => {
    for (const path of ["/v1/status", "/metrics", "/openapi.json"]) {
      assert.deepEqual(await statuses(call, path), [401, 401, 403, 403, 200], path);
    }
    const status = await (await call("/v1/status", TOKENS.admin)).json();
    assert.equal(status.role, "replica");
    assert.equal(status.replica_id, "edge-1");
  });
});

Deno.test("createReplicaApp() with tokens: record reads need the writer role, as on the primary", async () => {
  await withReplicaApp(testAuth(), async (call) => {
    // 404 not_found: the caller got past auth to an empty store.
    assert.deepEqual(await statuses(call, "/v1/records/users/u1"), [401, 401, 404, 403, 404]);
    const refused = await (await call("/v1/records/users/u1")).json();
    assert.equal(refused.error, "unauthorized");
  });
});

Deno.test("createReplicaApp() with tokens: /healthz and /readyz are open to anyone", async () => {
  await withReplicaApp(testAuth(), async (call) => {
    for (const path of ["/healthz", "/readyz"]) {
      assert.deepEqual(await statuses(call, path), [200, 200, 200, 200, 200], path);
    }
  });
});

Deno.test("createReplicaApp() without tokens: every caller is admin", async () => {
  await withReplicaApp(Auth.disabled(), async (call) => {
    for (const path of ["/v1/status", "/metrics", "/openapi.json"]) {
      const response = await call(path);
      await response.body?.cancel();
      assert.equal(response.status, 200, path);
    }
    assert.equal((await call("/v1/records/users/u1")).status, 404);
  });
});

Deno.test("createReplicaApp(): HEAD is 405 except on /healthz and /readyz, as on the primary", async () => {
  await withReplicaApp(Auth.disabled(), async (call) => {
    assert.equal((await call("/v1/records/users/u1", undefined, "HEAD")).status, 405);
    assert.equal((await call("/healthz", undefined, "HEAD")).status, 200);
  });
});
