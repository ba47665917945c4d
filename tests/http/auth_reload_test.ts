// SIGHUP's tokens reload (SPEC.md 13.6): `Auth.reload()` swaps in the tokens of a file that loads,
// and keeps the tokens in use when the file is missing or does not parse, saying why.

import assert from "node:assert/strict";
import { Auth } from "../../src/http/auth.ts";
import { ConfigError } from "../../src/core/errors.ts";
import { tokenHash } from "../helpers/tokens.ts";
import { withTempDir } from "../helpers/temp.ts";

function tokensJson(token: string): string {
  return JSON.stringify({ tokens: [{ sha256: tokenHash(token), role: "writer" }] });
}

Deno.test("Auth.reload() swaps in the new tokens: the new one works, the old one does not", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    await Deno.writeTextFile(path, tokensJson("old"));
    const auth = await Auth.load(path);
    await Deno.writeTextFile(path, tokensJson("new"));
    assert.equal(await auth.reload(path), 1);
    assert.equal(auth.authenticate("Bearer new").kind, "principal");
    assert.equal(auth.authenticate("Bearer old").kind, "invalid");
  });
});

Deno.test("Auth.reload() of a file that does not load keeps the tokens in use", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    await Deno.writeTextFile(path, tokensJson("good"));
    const auth = await Auth.load(path);
    for (const content of ["{ not json", JSON.stringify({ tokens: [{ role: "writer" }] })]) {
      await Deno.writeTextFile(path, content);
      await assert.rejects(() => auth.reload(path), ConfigError);
      assert.equal(auth.authenticate("Bearer good").kind, "principal", content);
    }
    await Deno.remove(path);
    await assert.rejects(() => auth.reload(path), ConfigError, "a missing file");
    assert.equal(auth.authenticate("Bearer good").kind, "principal");
  });
});

Deno.test("Auth.load() of a missing or directory path is a ConfigError naming it", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(() => Auth.load(`${dir}/absent.json`), ConfigError, "absent.json");
    await assert.rejects(() => Auth.load(dir), ConfigError, dir);
  });
});
