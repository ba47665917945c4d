// `/openapi.json` follows the same auth as `/v1/status` (admin) on the primary: the document lists
// every route, which is for operators, not for anyone who can reach the port.

import assert from "node:assert/strict";
import { testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";

Deno.test("primary createApp(): /openapi.json needs admin, like /v1/status", async () => {
  await withApp({ auth: testAuth() }, async ({ call }) => {
    for (const path of ["/v1/status", "/openapi.json"]) {
      const seen: number[] = [];
      for (
        const token of [undefined, "not-a-token", TOKENS.writer, TOKENS.replicaA, TOKENS.admin]
      ) {
        const response = await call("GET", path, { token });
        await response.body?.cancel();
        seen.push(response.status);
      }
      assert.deepEqual(seen, [401, 401, 403, 403, 200], path);
    }
    const doc = await (await call("GET", "/openapi.json", { token: TOKENS.admin })).json();
    assert.ok(doc.paths["/v1/status"], "the admin gets the whole document");
  });
});

Deno.test("primary createApp() without tokens: /openapi.json is served (every caller is admin)", async () => {
  await withApp({}, async ({ call }) => {
    const response = await call("GET", "/openapi.json");
    assert.equal(response.status, 200);
    assert.ok((await response.json()).paths["/v1/records"]);
  });
});
