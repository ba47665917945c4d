// SPEC.md section 10, tokens: hashed tokens with roles, replica tokens bound to one id, strict
// parsing of the tokens file, and loopback detection for the no-tokens mode.

import assert from "node:assert/strict";
import { Auth, isLoopback } from "../../src/http/auth.ts";
import { tokenHash } from "../helpers/tokens.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { withTempDir } from "../helpers/temp.ts";

const file = {
  tokens: [
    { sha256: tokenHash("w"), role: "writer" },
    { sha256: tokenHash("r"), role: "replica", replica_id: "edge-1" },
  ],
};

Deno.test("Auth resolves a bearer token to its role and replica id", () => {
  const auth = Auth.fromJson(file);
  assert.deepEqual(auth.authenticate("Bearer w"), {
    kind: "principal",
    principal: { role: "writer" },
  });
  assert.deepEqual(auth.authenticate("Bearer r"), {
    kind: "principal",
    principal: { role: "replica", replicaId: "edge-1" },
  });
  assert.deepEqual(auth.authenticate("Bearer nope"), { kind: "invalid" });
  assert.deepEqual(auth.authenticate("Basic dzp4"), { kind: "invalid" });
  assert.deepEqual(auth.authenticate(null), { kind: "anonymous" });
});

Deno.test("Auth.disabled() makes every caller admin", () => {
  assert.deepEqual(Auth.disabled().authenticate(null), {
    kind: "principal",
    principal: { role: "admin" },
  });
});

Deno.test("Auth.fromJson() refuses malformed tokens files with the path of the problem", () => {
  const bad = [
    {},
    { tokens: [{ sha256: "xyz", role: "writer" }] },
    { tokens: [{ sha256: tokenHash("a"), role: "root" }] },
    { tokens: [{ sha256: tokenHash("a"), role: "replica" }] },
    { tokens: [{ sha256: tokenHash("a"), role: "writer", replica_id: "r" }] },
    { tokens: [{ sha256: tokenHash("a"), role: "writer", extra: 1 }] },
  ];
  for (const content of bad) {
    assert.throws(() => Auth.fromJson(content), ConfigError, JSON.stringify(content));
  }
});

Deno.test("Auth.load() reads a tokens file and reports bad JSON as a config error", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(`${dir}/tokens.json`, JSON.stringify(file));
    assert.equal((await Auth.load(`${dir}/tokens.json`)).enabled, true);
    Deno.writeTextFileSync(`${dir}/bad.json`, "{ not json");
    await assert.rejects(() => Auth.load(`${dir}/bad.json`), ConfigError);
  });
});

Deno.test("isLoopback() knows the loopback addresses", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) {
    assert.ok(isLoopback(host), host);
  }
  for (const host of ["0.0.0.0", "10.0.0.1", "example.com", "::"]) {
    assert.ok(!isLoopback(host), host);
  }
});
