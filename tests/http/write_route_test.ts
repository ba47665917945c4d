// SPEC.md 9.2 and 13.5 through `app.request()`: `POST /v1/records` as NDJSON (one change record
// per line, the options in the query) with the limits and answers of a JSON write; any other
// media type is 415 naming the two it takes; the route keeps its order of checks (role and queue
// before the body) and is documented in /openapi.json with both media types.

import assert from "node:assert/strict";
import { put, testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";

const NDJSON = { "content-type": "application/x-ndjson" };

function ndjson(...records: unknown[]): string {
  return records.map((record) => JSON.stringify(record)).join("\n") + "\n";
}

async function errorOf(response: Response, status: number): Promise<Record<string, unknown>> {
  const text = await response.text();
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(typeof body.error, "string");
  assert.equal(typeof body.message, "string");
  return body;
}

Deno.test("POST /v1/records as NDJSON appends each line as a record, like the same JSON write", async () => {
  await withApp({}, async ({ call, spool }) => {
    const records = [put("a"), { op: "delete", collection: "users", key: "b" }, put("c", [1])];
    const response = await call("POST", "/v1/records?commit_policy=local&timeout_ms=100", {
      body: ndjson(...records).replaceAll("\n", "\r\n"),
      headers: NDJSON,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(response.headers.get("x-ferry-lsn"), "3");
    const body = await response.json();
    assert.equal(body.first_lsn, 1);
    assert.equal(body.last_lsn, 3);
    assert.equal(body.commit.policy, "local");
    const json = await call("POST", "/v1/records", { json: { records } });
    assert.equal((await json.json()).last_lsn, 6);
    const frames = await spool.readSince(0, 10, 1 << 20);
    const stored = frames.map((frame) => {
      const { ts: _ts, ...record } = JSON.parse(new TextDecoder().decode(frame.payload));
      return record;
    });
    assert.deepEqual(stored.slice(0, 3), stored.slice(3), "NDJSON and JSON store the same");
    assert.deepEqual(stored.slice(0, 3), records);
  });
});

Deno.test("POST /v1/records as NDJSON: the query carries the commit policy and its timeout", async () => {
  await withApp({}, async ({ call }) => {
    const response = await call("POST", "/v1/records?commit_policy=ack_n%3D1&timeout_ms=5", {
      body: ndjson(put("a")),
      headers: NDJSON,
    });
    const body = await response.json();
    assert.equal(body.commit.policy, "ack_n=1");
    assert.equal(body.commit.outcome, "timed_out", "no replica acked within 5 ms");
  });
});

Deno.test("POST /v1/records as NDJSON: bad input is 4xx and nothing is appended", async () => {
  await withApp({
    app: { limits: { requestBytesMax: 4096, recordBytesMax: 512, requestRecordsMax: 3 } },
  }, async ({ call, spool }) => {
    const cases: Array<[string, string, string, number]> = [
      ["a line that is not JSON", ndjson(put("a")) + "{not json\n", "", 400],
      [
        "a bad record on line 2",
        ndjson(put("a"), { op: "put", collection: "c", key: "k" }),
        "",
        400,
      ],
      ["no record", "\n\n", "", 400],
      ["too many lines", ndjson(put("a"), put("b"), put("c"), put("d")), "", 400],
      ["a record too large", ndjson(put("a", "x".repeat(600))), "", 413],
      ["a body too large", ndjson(put("a", "y".repeat(5000))), "", 413],
      ["an unknown policy", ndjson(put("a")), "?commit_policy=all", 400],
      ["a negative timeout", ndjson(put("a")), "?timeout_ms=-1", 400],
      ["a timeout too long", ndjson(put("a")), "?timeout_ms=600001", 400],
    ];
    for (const [name, body, query, status] of cases) {
      const response = await call("POST", `/v1/records${query}`, { body, headers: NDJSON });
      await errorOf(response, status).catch((error) => {
        throw new Error(`${name}: ${error.message}`);
      });
      assert.equal(spool.currentLsn(), 0, `${name} appended nothing`);
    }
    const refused = await call("POST", "/v1/records", {
      body: ndjson(put("a"), { ...put("b"), extra: 1 }),
      headers: NDJSON,
    });
    assert.match(String((await errorOf(refused, 400)).message), /line 2/);
  });
});

Deno.test("POST /v1/records: a body neither JSON nor NDJSON is 415 naming both, before it is read", async () => {
  await withApp({}, async ({ call, spool }) => {
    for (const type of ["text/plain", "application/jsonx", "application/json; charset=latin1"]) {
      const response = await call("POST", "/v1/records", {
        body: JSON.stringify({ records: [put("k")] }),
        headers: { "content-type": type },
      });
      const body = await errorOf(response, 415);
      assert.equal(body.error, "unsupported_media_type");
      assert.match(String(body.message), /application\/json/);
      assert.match(String(body.message), /application\/x-ndjson/);
    }
    const missing = await call("POST", "/v1/records", { body: "{not json" });
    assert.equal((await errorOf(missing, 415)).error, "unsupported_media_type", "415, not 400");
    assert.equal(spool.currentLsn(), 0);
  });
});

Deno.test("POST /v1/records as NDJSON: the role is checked before the body is read", async () => {
  await withApp({ auth: testAuth() }, async ({ call, spool }) => {
    const huge = "x".repeat(5 << 20);
    assert.equal((await call("POST", "/v1/records", { body: huge, headers: NDJSON })).status, 401);
    const replica = await call("POST", "/v1/records", {
      body: "{not json",
      headers: NDJSON,
      token: TOKENS.replicaA,
    });
    assert.equal(replica.status, 403);
    await replica.body?.cancel();
    const writer = await call("POST", "/v1/records", {
      body: ndjson(put("a")),
      headers: NDJSON,
      token: TOKENS.writer,
    });
    assert.equal(writer.status, 200);
    await writer.body?.cancel();
    assert.equal(spool.currentLsn(), 1);
  });
});

Deno.test("POST /v1/records: each answer is counted under its route pattern", async () => {
  await withApp({}, async ({ call, metrics }) => {
    await (await call("POST", "/v1/records", { json: { records: [put("a")] } })).text();
    await (await call("POST", "/v1/records", { json: { records: [] } })).text();
    await (await call("POST", "/v1/records", { json: { records: [put("b")] } })).text();
    const text = await metrics.render();
    assert.match(text, /^ferry_http_requests_total\{route="\/v1\/records",status="200"\} 2$/m);
    assert.match(text, /^ferry_http_requests_total\{route="\/v1\/records",status="400"\} 1$/m);
  });
});

Deno.test("/openapi.json documents POST /v1/records with both media types and the query", async () => {
  await withApp({}, async ({ call }) => {
    const doc = await (await call("GET", "/openapi.json")).json();
    const post = doc.paths["/v1/records"].post;
    assert.deepEqual(Object.keys(post.requestBody.content).sort(), [
      "application/json",
      "application/x-ndjson",
    ]);
    const params = post.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`);
    assert.deepEqual(params.sort(), ["query:commit_policy", "query:timeout_ms"]);
    assert.ok(post.responses["415"], "415 is documented");
    assert.match(post.description, /x-ndjson/);
  });
});
