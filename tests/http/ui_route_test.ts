// SPEC.md 13.5: GET /ui is one self-contained page (admin; a browser may bring its token once as
// ?token=), GET / points to it and to /openapi.json, and a known path with a wrong method is 405
// with Allow.

import assert from "node:assert/strict";
import { testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";

Deno.test("GET /ui is one page with its style and script inline and nothing fetched from elsewhere", async () => {
  await withApp({}, async ({ call }) => {
    const response = await call("GET", "/ui");
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /^text\/html/);
    const html = await response.text();
    assert.match(html, /<script>/);
    // The SVG namespace is a name, not a fetch; nothing else may point off the page.
    const offPage = html.replaceAll("http://www.w3.org/2000/svg", "");
    assert.doesNotMatch(
      offPage,
      /<script[^>]+src=|<link[^>]+href=|https?:\/\//,
      "no external files",
    );
    assert.match(html, /name="viewport"/, "readable on a phone");
    assert.match(response.headers.get("content-security-policy")!, /default-src 'self'/);
  });
});

Deno.test("GET /ui needs admin, by header or once as ?token=", async () => {
  await withApp({ auth: testAuth() }, async ({ call }) => {
    assert.equal((await call("GET", "/ui")).status, 401);
    assert.equal((await call("GET", "/ui", { token: TOKENS.writer })).status, 403);
    assert.equal((await call("GET", `/ui?token=${TOKENS.writer}`)).status, 403);
    const byQuery = await call("GET", `/ui?token=${TOKENS.admin}`);
    assert.equal(byQuery.status, 200);
    await byQuery.body?.cancel();
    const byHeader = await call("GET", "/ui", { token: TOKENS.admin });
    assert.equal(byHeader.status, 200);
    await byHeader.body?.cancel();
  });
});

Deno.test("GET / points to /ui and /openapi.json", async () => {
  await withApp({}, async ({ call }) => {
    const body = await (await call("GET", "/")).json();
    assert.equal(body.ui, "/ui");
    assert.equal(body.openapi, "/openapi.json");
  });
});

Deno.test("a known path with a wrong method is 405 with Allow; an unknown path stays 404", async () => {
  await withApp({}, async ({ call }) => {
    const wrong = await call("DELETE", "/v1/status");
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "GET");
    assert.equal((await wrong.json()).error, "method_not_allowed");
    const replica = await call("POST", "/v1/replicas/edge-1");
    assert.equal(replica.status, 405);
    assert.equal(replica.headers.get("allow"), "DELETE, PUT");
    await replica.body?.cancel();
    const unknown = await call("GET", "/v1/nothing-here");
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  });
});
