// SPEC.md 13.2 with tokens configured: a sealed segment is served to a bearer token (`private`: no
// shared cache may keep it) or to a signed URL (`public`: the signature is in the URL, so a cache
// keyed on it serves only its holders); a bad, expired or foreign signature is 403 no-store.
// Every listed key verifies and the first signs (rotation: add, wait, remove).

import assert from "node:assert/strict";
import { Auth } from "../../src/http/auth.ts";
import { signatureExpiry, UrlSigner } from "../../src/http/url_signing.ts";
import { type AppFixture, TOKENS, withApp } from "../helpers/app_fixture.ts";
import { appendRecords } from "../helpers/primary_fixture.ts";
import { tokenHash } from "../helpers/tokens.ts";

const OLD_KEY = { kid: "k-2026-old", key: "old-key-".repeat(5) };
const NEW_KEY = { kid: "k-2026-new", key: "new-key-".repeat(5) };

function authWith(keys: Array<{ kid: string; key: string }> | undefined): Auth {
  return Auth.fromJson({
    tokens: [
      { sha256: tokenHash(TOKENS.admin), role: "admin" },
      { sha256: tokenHash(TOKENS.writer), role: "writer" },
      { sha256: tokenHash(TOKENS.replicaA), role: "replica", replica_id: "a" },
    ],
    ...(keys ? { url_signing_keys: keys } : {}),
  });
}

/** A primary with sealed segments, auth on, and a clock the test sets. */
function withSignedSegments(
  auth: Auth,
  fn: (fixture: AppFixture, clock: { now: number }) => Promise<void>,
): Promise<void> {
  const clock = { now: Date.UTC(2026, 10, 30, 10, 20) };
  return withApp(
    { spool: { segmentBytesMax: 16_384 }, auth, app: { clock: () => clock.now } },
    async (fixture) => {
      await appendRecords(fixture.primary, 1000);
      await fn(fixture, clock);
    },
  );
}

async function listedUrls(fixture: AppFixture, token: string = TOKENS.replicaA): Promise<string[]> {
  const response = await fixture.call("GET", "/v1/segments", { token });
  assert.equal(response.status, 200);
  const body = await response.json() as { segments: Array<{ url: string }> };
  return body.segments.map((s) => s.url);
}

async function assertForbidden(response: Response): Promise<void> {
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal((await response.json()).error, "forbidden");
}

Deno.test("with signing keys the listing signs each URL; the signed URL needs no token and is public", async () => {
  await withSignedSegments(authWith([NEW_KEY]), async (fixture, clock) => {
    const urls = await listedUrls(fixture);
    const exp = signatureExpiry(clock.now);
    assert.equal(exp, Date.UTC(2026, 10, 30, 12, 0) / 1000, "the next hour's start plus one hour");
    for (const url of urls) {
      assert.match(
        url,
        new RegExp(
          `^/v1/segments/1/\\d+-\\d+-[0-9a-f]{16}\\?kid=${NEW_KEY.kid}&exp=${exp}&sig=[0-9a-f]{64}$`,
        ),
      );
      const response = await fixture.call("GET", url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cache-control"), "public, max-age=31536000, immutable");
      await response.arrayBuffer();
    }
    clock.now += 30 * 60_000;
    assert.deepEqual(await listedUrls(fixture), urls, "the same URL all hour: one cache entry");
  });
});

Deno.test("an expired, tampered, foreign-key or unknown-key signature is 403 no-store, whatever the token", async () => {
  await withSignedSegments(authWith([NEW_KEY]), async (fixture, clock) => {
    const [url, other] = await listedUrls(fixture) as [string, string];
    const path = url.slice(0, url.indexOf("?"));
    const foreign = new UrlSigner([{ kid: NEW_KEY.kid, key: "another-key-".repeat(4) }]);
    const unknown = new UrlSigner([{ kid: "k-unknown", key: NEW_KEY.key }]);
    const bad = [
      foreign.sign(path, clock.now),
      unknown.sign(path, clock.now),
      `${path}${other.slice(other.indexOf("?"))}`, // another segment's signature
      url.replace(/exp=\d+/, (m) => `exp=${Number(m.slice(4)) + 3600}`),
      url.replace(/&sig=.*$/, ""),
      url.replace(/sig=./, (m) => `sig=${m.endsWith("0") ? "1" : "0"}`),
    ];
    for (const candidate of bad) {
      await assertForbidden(await fixture.call("GET", candidate));
      await assertForbidden(await fixture.call("GET", candidate, { token: TOKENS.admin }));
    }
    clock.now = (signatureExpiry(clock.now) - 1) * 1000;
    assert.equal((await fixture.call("GET", url)).status, 200, "valid to its last second");
    clock.now += 1000;
    await assertForbidden(await fixture.call("GET", url));
  });
});

Deno.test("rotation: with [new, old] both verify and the new one signs; once old is removed its URLs are 403", async () => {
  const auth = authWith([OLD_KEY]);
  await withSignedSegments(auth, async (fixture) => {
    const byOld = (await listedUrls(fixture))[0]!;
    assert.match(byOld, new RegExp(`kid=${OLD_KEY.kid}&`));
    const dir = await Deno.makeTempDir({ prefix: "ferry-tokens-" });
    const file = `${dir}/tokens.json`;
    const write = (keys: unknown[]) =>
      Deno.writeTextFileSync(
        file,
        JSON.stringify({
          tokens: [{ sha256: tokenHash(TOKENS.replicaA), role: "replica", replica_id: "a" }],
          url_signing_keys: keys,
        }),
      );
    try {
      write([NEW_KEY, OLD_KEY]);
      await auth.reload(file);
      const byNew = (await listedUrls(fixture))[0]!;
      assert.match(byNew, new RegExp(`kid=${NEW_KEY.kid}&`), "the first key signs");
      for (const url of [byOld, byNew]) assert.equal((await fixture.call("GET", url)).status, 200);
      write([NEW_KEY]);
      await auth.reload(file);
      await assertForbidden(await fixture.call("GET", byOld));
      assert.equal((await fixture.call("GET", byNew)).status, 200);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("a bearer token gets the segment as private; without token or signature 401, a writer 403", async () => {
  await withSignedSegments(authWith(undefined), async (fixture) => {
    const urls = await listedUrls(fixture, TOKENS.admin);
    assert.ok(urls.every((url) => !url.includes("?")), "no keys: the listing's URLs are unsigned");
    for (const token of [TOKENS.replicaA, TOKENS.admin]) {
      const response = await fixture.call("GET", urls[0]!, { token });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cache-control"), "private, max-age=31536000, immutable");
      await response.arrayBuffer();
    }
    const anonymous = await fixture.call("GET", urls[0]!);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("cache-control"), "no-store");
    await anonymous.body?.cancel();
    await assertForbidden(await fixture.call("GET", urls[0]!, { token: TOKENS.writer }));
    await assertForbidden(await fixture.call("GET", "/v1/segments", { token: TOKENS.writer }));
    const signed = new UrlSigner([NEW_KEY]).sign(urls[0]!, Date.now());
    await assertForbidden(await fixture.call("GET", signed, { token: TOKENS.replicaA }));
  });
});
