// SPEC.md 13.2, signed segment URLs: `exp` is the start of the next hour plus one hour (the same URL
// all hour, and never less than an hour to live), the signature is the hex HMAC-SHA256 of
// "<path>?kid=<kid>&exp=<exp>", and the keys come from the tokens file, reloaded with the tokens.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { ConfigError } from "../../src/core/errors.ts";
import { Auth } from "../../src/http/auth.ts";
import { signatureExpiry, UrlSigner } from "../../src/http/url_signing.ts";
import { tokenHash } from "../helpers/tokens.ts";
import { withTempDir } from "../helpers/temp.ts";

const KEY = { kid: "k1", key: "k".repeat(32) };
const PATH = "/v1/segments/1/1-64-0123456789abcdef";
const HOUR_S = 3600;

Deno.test("signatureExpiry() is the same all hour, the next hour's start plus one, at least an hour ahead", () => {
  const hourStartS = 1_800_000_000 - (1_800_000_000 % HOUR_S);
  for (const offsetS of [0, 1, 1799, 3599]) {
    const nowMs = (hourStartS + offsetS) * 1000;
    const exp = signatureExpiry(nowMs);
    assert.equal(exp, hourStartS + 2 * HOUR_S, `${offsetS} s into the hour`);
    assert.ok(exp * 1000 - nowMs > HOUR_S * 1000 && exp * 1000 - nowMs <= 2 * HOUR_S * 1000);
  }
});

Deno.test("UrlSigner.sign() appends kid, exp and the hex HMAC-SHA256 of path?kid&exp with the first key", () => {
  const nowMs = 1_800_000_000_000;
  const signer = new UrlSigner([KEY, { kid: "k0", key: "z".repeat(32) }]);
  const exp = signatureExpiry(nowMs);
  const sig = createHmac("sha256", KEY.key).update(`${PATH}?kid=k1&exp=${exp}`).digest("hex");
  assert.equal(signer.sign(PATH, nowMs), `${PATH}?kid=k1&exp=${exp}&sig=${sig}`);
  assert.equal(signer.refusal(PATH, { kid: "k1", exp: String(exp), sig }, nowMs), undefined);
  assert.equal(new UrlSigner([]).sign(PATH, nowMs), PATH, "no key: the URL is unsigned");
});

Deno.test("UrlSigner.refusal() says why a signature does not hold", () => {
  const nowMs = 1_800_000_000_000;
  const signer = new UrlSigner([KEY]);
  const query = new URL(signer.sign(PATH, nowMs), "http://x").searchParams;
  const good = { kid: query.get("kid")!, exp: query.get("exp")!, sig: query.get("sig")! };
  const cases: Array<[Partial<typeof good>, RegExp]> = [
    [{ sig: undefined }, /carries/],
    [{ sig: good.sig.toUpperCase() }, /malformed/],
    [{ exp: "-1" }, /malformed/],
    [{ kid: "k9" }, /unknown key/],
    [{ exp: String(Number(good.exp) + 1) }, /does not match/],
  ];
  for (const [change, reason] of cases) {
    const refusal = signer.refusal(PATH, { ...good, ...change }, nowMs);
    assert.match(refusal ?? "", reason, JSON.stringify(change));
  }
  assert.match(signer.refusal(`${PATH}0`, good, nowMs) ?? "", /does not match/, "another path");
  assert.match(signer.refusal(PATH, good, Number(good.exp) * 1000) ?? "", /expired/);
});

Deno.test("the tokens file's url_signing_keys are checked: kid pattern, key length, each kid once", () => {
  const tokens = [{ sha256: tokenHash("t"), role: "admin" }];
  const bad = [
    [{ kid: "bad kid", key: KEY.key }],
    [{ kid: "k1", key: "short" }],
    [KEY, { ...KEY }],
    [{ ...KEY, extra: 1 }],
  ];
  for (const keys of bad) {
    assert.throws(
      () => Auth.fromJson({ tokens, url_signing_keys: keys }),
      ConfigError,
      JSON.stringify(keys),
    );
  }
  assert.equal(Auth.fromJson({ tokens, url_signing_keys: [KEY] }).urlSigner.size, 1);
  assert.equal(Auth.fromJson({ tokens }).urlSigner.enabled, false);
});

Deno.test("Auth.reload() swaps the URL signing keys with the tokens; a file that does not load keeps both", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    const write = (keys: unknown) =>
      Deno.writeTextFile(
        path,
        JSON.stringify({
          tokens: [{ sha256: tokenHash("t"), role: "admin" }],
          url_signing_keys: keys,
        }),
      );
    await write([KEY]);
    const auth = await Auth.load(path);
    const nowMs = 1_800_000_000_000;
    assert.match(auth.urlSigner.sign(PATH, nowMs), /kid=k1&/);
    await write([{ kid: "k2", key: "y".repeat(40) }, KEY]);
    await auth.reload(path);
    assert.match(auth.urlSigner.sign(PATH, nowMs), /kid=k2&/);
    await write([{ kid: "k3", key: "short" }]);
    await assert.rejects(() => auth.reload(path), ConfigError);
    assert.match(auth.urlSigner.sign(PATH, nowMs), /kid=k2&/, "the keys in use stay");
    assert.equal(auth.urlSigner.size, 2);
  });
});
