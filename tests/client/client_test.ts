// FerryClient (src/client/client.ts) against the real app through `app.request()`, and against a
// fake fetch for what the app cannot produce on demand: snapshot streams cut at awkward byte
// boundaries, malformed lines, reads of the materialised state, and pulls with damaged frames.

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { FerryClient } from "../../src/client/client.ts";
import type { SnapshotLine } from "../../src/client/types.ts";
import { FerryHttpError, FerryResponseError, SnapshotFormatError } from "../../src/core/errors.ts";
import { decodeFrame, decodeFrameRun, encodeFrameV3 } from "../../src/wal/frame.ts";
import { decodeFrames, readBody } from "../../src/client/responses.ts";
import { type AppFixture, testAuth, TOKENS, withApp } from "../helpers/app_fixture.ts";
import { SNAPSHOT_LINE_BYTES_MAX } from "../../src/core/limits.ts";
import { replicaOf } from "../helpers/primary_fixture.ts";
import { settledWithin } from "../helpers/stream_tap.ts";

const BASE_URL = "http://ferry.test";
const utf8 = new TextEncoder();

/** A client whose requests go straight into the app (no network). */
function appClient(app: AppFixture["app"], token?: string): FerryClient {
  return new FerryClient(BASE_URL, {
    token,
    fetch: (input, init) => Promise.resolve(app.request(input, init)),
  });
}

/** A fetch that records each request and answers with `respond`. */
function fakeFetch(respond: (request: Request) => Response | Promise<Response>) {
  const requests: Request[] = [];
  const fetchFn: typeof fetch = (input, init) => {
    const request = new Request(input, init);
    requests.push(request);
    return Promise.resolve(respond(request));
  };
  return { fetch: fetchFn, requests };
}

/** A body that hands out `chunks` one per read, and notes whether it was cancelled. */
function chunkedBody(chunks: readonly Uint8Array[]) {
  const state = { cancelled: false, chunksRead: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[state.chunksRead];
      if (chunk === undefined) return controller.close();
      state.chunksRead += 1;
      controller.enqueue(chunk);
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

/** `bytes` cut at each of `cuts` (sorted offsets). */
function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.byteLength]) {
    chunks.push(bytes.slice(start, cut));
    start = cut;
  }
  return chunks;
}

function ndjsonClient(chunks: readonly Uint8Array[]) {
  const body = chunkedBody(chunks);
  const fake = fakeFetch(() =>
    new Response(body.stream, { headers: { "content-type": "application/x-ndjson" } })
  );
  return { client: new FerryClient(BASE_URL, { fetch: fake.fetch }), body, fake };
}

/** Every line the snapshot yields, and the error that ended it, if one did. */
async function drain(
  lines: AsyncGenerator<SnapshotLine>,
): Promise<{ lines: SnapshotLine[]; error?: unknown }> {
  const seen: SnapshotLine[] = [];
  try {
    for await (const line of lines) seen.push(line);
  } catch (error) {
    return { lines: seen, error };
  }
  return { lines: seen };
}

function put(key: string, value: unknown = { n: key }) {
  return { op: "put" as const, collection: "users", key, value };
}

async function rejection(promise: Promise<unknown>): Promise<FerryHttpError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FerryHttpError, `expected FerryHttpError, got ${error}`);
    return error;
  }
  assert.fail("expected a rejection");
}

// ---- against the real app ----

Deno.test("write() then pullJson() and pullFrames() map every field and decode every frame", async () => {
  await withApp({}, async ({ app }) => {
    const client = appClient(app);
    const written = await client.write([
      put("a"),
      put("b"),
      { op: "delete", collection: "users", key: "a" },
    ]);
    assert.equal(written.firstLsn, 1);
    assert.equal(written.lastLsn, 3);
    assert.equal(written.term, 1);
    assert.equal(written.timeline, 1);
    assert.equal(written.commit.policy, "local");
    assert.equal(written.commit.outcome, "not_required");
    assert.deepEqual(written.commit.durableReplicas, []);
    assert.deepEqual(written.commit.regions, []);
    assert.equal(typeof written.commit.waitedMs, "number");

    const json = await client.pullJson({ sinceLsn: 1 });
    assert.deepEqual(json.records.map((r) => r.lsn), [2, 3]);
    assert.equal((json.records[0]!.record as { key: string }).key, "b");
    assert.equal((json.records[1]!.record as { op: string }).op, "delete");
    assert.equal(json.records[0]!.term, 1);
    assert.equal(typeof json.records[0]!.timestampMs, "number");
    assert.deepEqual(
      [json.currentLsn, json.oldestLsn, json.term, json.timeline],
      [3, 1, 1, 1],
    );

    const frames = await client.pullFrames({ sinceLsn: 0 });
    assert.equal(frames.corrupt, undefined);
    assert.deepEqual(frames.frames.map((f) => f.lsn), [1, 2, 3]);
    assert.deepEqual(frames.frames.map((f) => f.version), [3, 3, 3]);
    const keys = frames.frames.map((f) => JSON.parse(new TextDecoder().decode(f.payload)).key);
    assert.deepEqual(keys, ["a", "b", "a"]);
    assert.deepEqual(
      [frames.currentLsn, frames.oldestLsn, frames.term, frames.timeline, frames.startLsn],
      [3, 1, 1, 1, 0],
    );

    const limited = await client.pullFrames({ sinceLsn: 1, maxCount: 1 });
    assert.deepEqual(limited.frames.map((f) => f.lsn), [2]);
    assert.equal(limited.startLsn, 1);
    const empty = await client.pullFrames({ sinceLsn: 3 });
    assert.deepEqual(empty.frames, []);
    assert.equal(empty.corrupt, undefined);
  });
});

Deno.test("register(), ack(), setRebootstrapping() and unregister() drive the replica routes", async () => {
  await withApp({}, async ({ app, primary, slots }) => {
    const client = appClient(app);
    await client.write([put("a"), put("b")]);
    assert.deepEqual(await client.register("r1", { region: "eu", sinceLsn: 0 }), {
      resumeLsn: 0,
      term: 1,
      timeline: 1,
      currentLsn: 2,
    });
    assert.equal(replicaOf(primary, "r1")!.region, "eu");
    assert.deepEqual(await client.ack("r1", { appliedLsn: 2, durableLsn: 1 }), {
      replicaId: "r1",
      appliedLsn: 2,
      durableLsn: 1,
      applyErrorsTotal: 0,
      divergenceTotal: 0,
    });
    assert.equal(slots.get("r1")!.restartLsn, 1);
    const counted = await client.ack("r1", {
      appliedLsn: 2,
      applyErrorsTotal: 3,
      divergenceTotal: 1,
    });
    assert.deepEqual([counted.applyErrorsTotal, counted.divergenceTotal], [3, 1]);
    assert.equal(replicaOf(primary, "r1")!.applyErrorCount, 3);
    assert.equal(replicaOf(primary, "r1")!.divergenceCount, 1);

    await client.setRebootstrapping("r1", true);
    assert.equal(replicaOf(primary, "r1")!.rebootstrapping, true);
    await client.setRebootstrapping("r1", false);
    assert.equal(replicaOf(primary, "r1")!.rebootstrapping, false);

    await client.unregister("r1");
    assert.equal(replicaOf(primary, "r1"), undefined);
    const again = await rejection(client.unregister("r1"));
    assert.equal(again.status, 404);
    assert.equal(again.code, "not_found");
  });
});

Deno.test("topology({ waitEpoch }) is held until a register moves the epoch", async () => {
  await withApp({}, async ({ app }) => {
    const client = appClient(app);
    const before = await client.topology();
    assert.deepEqual(before.replicas, []);
    assert.equal(before.primary.currentLsn, 0);
    assert.equal(before.primary.url, "http://127.0.0.1:8787");
    assert.equal(before.primary.term, 1);
    let settled = false;
    const held = client.topology({ waitEpoch: before.epoch, awaitTimeoutMs: 30_000 })
      .finally(() => settled = true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(settled, false, "the request is held while the epoch stays the same");
    await client.register("r1", { region: "us" });
    const after = await held;
    assert.ok(after.epoch > before.epoch);
    assert.deepEqual(after.replicas, [{
      id: "r1",
      region: "us",
      healthy: true,
      rebootstrapping: false,
      lastAppliedLsn: 0,
      lagLsn: 0,
      lagMs: 0,
    }]);
  });
});

Deno.test("status() returns the status document and health() is true", async () => {
  await withApp({}, async ({ app }) => {
    const client = appClient(app);
    await client.write([put("a")]);
    const status = await client.status();
    assert.equal(status.role, "primary");
    assert.equal(status.current_lsn, 1);
    assert.equal(await client.health(), true);
  });
});

Deno.test("health() is false on an error status and when the server cannot be reached", async () => {
  const down = fakeFetch(() => new Response("draining", { status: 503 }));
  assert.equal(await new FerryClient(BASE_URL, { fetch: down.fetch }).health(), false);
  const unreachable: typeof fetch = () => Promise.reject(new TypeError("connection refused"));
  assert.equal(await new FerryClient(BASE_URL, { fetch: unreachable }).health(), false);
  assert.equal(down.requests[0]!.url, `${BASE_URL}/healthz`);
});

Deno.test("a pull from a pruned position throws FerryHttpError 409 rebootstrap_required with its body", async () => {
  await withApp({ spool: { segmentBytesMax: 4096 } }, async ({ app, spool }) => {
    const client = appClient(app);
    for (let i = 0; i < 3; i++) await client.write([put(`k${i}`, "v".repeat(5000))]);
    await spool.pruneThrough(2);
    for (const pull of [client.pullJson.bind(client), client.pullFrames.bind(client)]) {
      const error = await rejection(pull({ sinceLsn: 0, replicaId: "late" }));
      assert.equal(error.status, 409);
      assert.equal(error.code, "rebootstrap_required");
      assert.equal(error.body.invalidation_reason, "wal-removed");
      assert.equal(error.body.oldest_lsn, 3);
      assert.equal(error.body.snapshot_url, "/v1/snapshot");
    }
  });
});

Deno.test("a 400 surfaces as FerryHttpError bad_request, and nothing is appended", async () => {
  await withApp({}, async ({ app, spool }) => {
    const client = appClient(app);
    const policy = await rejection(client.write([put("a")], { commitPolicy: "all" }));
    assert.equal(policy.status, 400);
    assert.equal(policy.code, "bad_request");
    assert.equal(typeof policy.body.message, "string");
    assert.equal(spool.currentLsn(), 0);
    const query = await rejection(client.pullJson({ sinceLsn: -1 }));
    assert.equal(query.code, "bad_request");
  });
});

Deno.test("a 504 commit_timeout throws FerryHttpError whose body carries the durable LSNs", async () => {
  await withApp({ app: { failOnCommitTimeout: true } }, async ({ app, spool }) => {
    const client = appClient(app);
    const error = await rejection(
      client.write([put("a"), put("b")], { commitPolicy: "ack_n=1", timeoutMs: 10 }),
    );
    assert.equal(error.status, 504);
    assert.equal(error.code, "commit_timeout");
    assert.equal(error.body.first_lsn, 1);
    assert.equal(error.body.last_lsn, 2);
    assert.equal((error.body.commit as { outcome: string }).outcome, "timed_out");
    assert.equal(spool.currentLsn(), 2, "the records are durable all the same");
  });
});

Deno.test("auth: the token goes out as a bearer token and the server's roles apply", async () => {
  await withApp({ auth: testAuth() }, async ({ app }) => {
    const sent: Headers[] = [];
    const recording = (token: string | undefined) =>
      new FerryClient(BASE_URL, {
        token,
        userAgent: "edge-app/2",
        fetch: (input, init) => {
          sent.push(new Headers(init?.headers));
          return Promise.resolve(app.request(input, init));
        },
      });
    const anonymous = await rejection(recording(undefined).write([put("a")]));
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.code, "unauthorized");
    assert.equal(sent[0]!.get("authorization"), null);

    const writer = recording(TOKENS.writer);
    assert.equal((await writer.write([put("a")])).lastLsn, 1);
    assert.equal(sent[1]!.get("authorization"), `Bearer ${TOKENS.writer}`);
    assert.equal(sent[1]!.get("user-agent"), "edge-app/2");

    const replica = recording(TOKENS.replicaA);
    assert.equal((await replica.register("a")).currentLsn, 1);
    const other = await rejection(replica.register("b"));
    assert.equal(other.status, 403);
    assert.equal(other.code, "forbidden");
    assert.equal(
      (await replica.topology()).replicas.length,
      1,
      "authenticated callers see replicas",
    );
  });
});

// ---- against a fake fetch ----

Deno.test("snapshot() parses NDJSON cut at any byte boundary and keeps each entry's raw line", async () => {
  // A key and values with 2-, 3- and 4-byte UTF-8 characters, and an entry with spaces the
  // parser must not normalise away (the CRC covers the bytes as sent).
  const entryTexts = [
    '{"type":"entry","collection":"users","key":"k/é","value":{"name":"Zoë","tags":["漢字","🚀"]},"lsn":3}',
    '{"type": "entry", "collection": "users", "key": "k2",  "value": null, "lsn": 4}',
    '{"type":"entry","collection":"zz","key":"🚀🚀","value":[1,2.5,"x"],"lsn":2}',
  ];
  const crc = entryTexts.reduce((sum, text) => crc32(utf8.encode(`${text}\n`), sum), 0);
  const text = [
    '{"type":"header","start_lsn":4,"term":2,"timeline":1,"format":1}',
    ...entryTexts,
    `{"type":"trailer","end_lsn":5,"count":3,"crc32":${crc}}`,
  ].map((line) => `${line}\n`).join("");
  const bytes = utf8.encode(text);
  const rocket = bytes.indexOf(0xf0); // First byte of the first 4-byte character.
  const cuttings: number[][] = [
    [],
    Array.from({ length: bytes.byteLength - 1 }, (_, i) => i + 1), // One byte per chunk.
    [rocket + 1],
    [rocket + 2],
    [rocket + 3, rocket + 5],
    [bytes.indexOf(0x0a), bytes.indexOf(0x0a) + 1], // A chunk that is only "\n".
  ];
  let seed = 7;
  for (let i = 0; i < 20; i++) {
    const cuts = new Set<number>();
    for (let j = 0; j < 6; j++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      cuts.add(1 + (seed % (bytes.byteLength - 1)));
    }
    cuttings.push([...cuts].sort((a, b) => a - b));
  }
  for (const cuts of cuttings) {
    const { client } = ndjsonClient(splitAt(bytes, cuts));
    const { lines, error } = await drain(client.snapshot("edge-1"));
    assert.equal(error, undefined, `cuts ${cuts}: ${error}`);
    assert.equal(lines.length, 5);
    assert.deepEqual(lines[0], { type: "header", startLsn: 4, term: 2, timeline: 1, format: 1 });
    assert.deepEqual(lines[1], {
      type: "entry",
      collection: "users",
      key: "k/é",
      value: { name: "Zoë", tags: ["漢字", "🚀"] },
      lsn: 3,
      raw: entryTexts[0],
    });
    assert.deepEqual(lines[2], {
      type: "entry",
      collection: "users",
      key: "k2",
      value: null,
      lsn: 4,
      raw: entryTexts[1],
    });
    assert.equal((lines[3] as { key: string }).key, "🚀🚀");
    assert.deepEqual(lines[4], { type: "trailer", endLsn: 5, count: 3, crc32: crc });
    const recomputed = lines.reduce(
      (sum, line) => line.type === "entry" ? crc32(utf8.encode(`${line.raw}\n`), sum) : sum,
      0,
    );
    assert.equal(recomputed, crc, "the raw lines reproduce the trailer's CRC");
  }
});

Deno.test("snapshot() sends replica_id, the after cursor and the NDJSON accept header", async () => {
  const body = '{"type":"header","start_lsn":0,"term":1,"timeline":1,"format":1}\n' +
    '{"type":"trailer","end_lsn":0,"count":0,"crc32":0}\n';
  const { client, fake } = ndjsonClient([utf8.encode(body)]);
  const { lines, error } = await drain(
    client.snapshot("edge 1", { after: { collection: "users", key: "a/b&c" } }),
  );
  assert.equal(error, undefined);
  assert.equal(lines.length, 2);
  const url = new URL(fake.requests[0]!.url);
  assert.equal(url.pathname, "/v1/snapshot");
  assert.equal(url.searchParams.get("replica_id"), "edge 1");
  assert.equal(url.searchParams.get("after"), "users/a/b&c");
  assert.equal(fake.requests[0]!.headers.get("accept"), "application/x-ndjson");
  const plain = ndjsonClient([utf8.encode(body)]);
  await drain(plain.client.snapshot("r"));
  assert.equal(new URL(plain.fake.requests[0]!.url).search, "?replica_id=r");
});

Deno.test("snapshot() throws SnapshotFormatError on a malformed or misplaced line, after the lines before it", async () => {
  const header = '{"type":"header","start_lsn":1,"term":1,"timeline":1,"format":1}';
  const entry = '{"type":"entry","collection":"c","key":"k","value":1,"lsn":1}';
  const trailer = '{"type":"trailer","end_lsn":1,"count":1,"crc32":1}';
  const cases: Array<[string, Uint8Array, number]> = [
    ["not JSON", utf8.encode(`${header}\n{"type":"entry",\n`), 1],
    ["an array", utf8.encode(`${header}\n[1,2]\n`), 1],
    ["an empty line", utf8.encode(`${header}\n\n${trailer}\n`), 1],
    ["unknown type", utf8.encode(`${header}\n{"type":"delta"}\n`), 1],
    [
      "entry without lsn",
      utf8.encode(`${header}\n{"type":"entry","collection":"c","key":"k","value":1}\n`),
      1,
    ],
    [
      "entry with a string lsn",
      utf8.encode(`${header}\n${entry.replace('"lsn":1', '"lsn":"1"')}\n`),
      1,
    ],
    [
      "entry without value",
      utf8.encode(`${header}\n{"type":"entry","collection":"c","key":"k","lsn":1}\n`),
      1,
    ],
    ["negative lsn", utf8.encode(`${header}\n${entry.replace('"lsn":1', '"lsn":-1')}\n`), 1],
    ["unknown format", utf8.encode(`${header.replace('"format":1', '"format":2')}\n`), 0],
    [
      "crc32 beyond u32",
      utf8.encode(`${header}\n${trailer.replace('"crc32":1', '"crc32":4294967296')}\n`),
      1,
    ],
    ["entry before the header", utf8.encode(`${entry}\n${header}\n`), 0],
    ["two headers", utf8.encode(`${header}\n${header}\n`), 1],
    ["a line after the trailer", utf8.encode(`${header}\n${trailer}\n${entry}\n`), 2],
    ["cut before the trailer", utf8.encode(`${header}\n${entry}\n`), 2],
    ["cut inside a line", utf8.encode(`${header}\n${entry}\n{"type":"tra`), 2],
    [
      "invalid UTF-8",
      new Uint8Array([
        ...utf8.encode(`${header}\n{"type":"entry","key":"`),
        0xff,
        0x22,
        0x7d,
        0x0a,
      ]),
      1,
    ],
  ];
  for (const [name, bytes, linesBefore] of cases) {
    const { client } = ndjsonClient(splitAt(bytes, [Math.floor(bytes.byteLength / 2)]));
    const { lines, error } = await drain(client.snapshot("r"));
    assert.ok(error instanceof SnapshotFormatError, `${name}: got ${error}`);
    assert.equal(error.code, "snapshot_format", name);
    assert.equal(lines.length, linesBefore, `${name}: the lines before the bad one are yielded`);
  }
});

Deno.test("snapshot() accepts a line of exactly SNAPSHOT_LINE_BYTES_MAX bytes and refuses one byte more", async () => {
  const prefix = '{"type":"entry","collection":"c","key":"k","value":"';
  const suffix = '","lsn":1}';
  const entryOf = (lineBytes: number) =>
    prefix + "x".repeat(lineBytes - prefix.length - suffix.length) + suffix;
  const header = '{"type":"header","start_lsn":1,"term":1,"timeline":1,"format":1}\n';
  const trailer = '{"type":"trailer","end_lsn":1,"count":1,"crc32":0}\n';
  const fits = utf8.encode(`${header}${entryOf(SNAPSHOT_LINE_BYTES_MAX)}\n${trailer}`);
  const accepted = await drain(ndjsonClient(splitAt(fits, [1000, 3_000_000])).client.snapshot("r"));
  assert.equal(accepted.error, undefined);
  assert.equal((accepted.lines[1] as { raw: string }).raw.length, SNAPSHOT_LINE_BYTES_MAX);

  const over = utf8.encode(`${header}${entryOf(SNAPSHOT_LINE_BYTES_MAX + 1)}\n${trailer}`);
  const refused = await drain(ndjsonClient(splitAt(over, [1000, 3_000_000])).client.snapshot("r"));
  assert.ok(refused.error instanceof SnapshotFormatError, String(refused.error));
  assert.equal(refused.lines.length, 1);
});

Deno.test("snapshot() stops reading an endless line at the limit and cancels the body", async () => {
  const chunkBytes = 64 * 1024;
  const state = { bytesRead: 0, cancelled: false };
  const header = utf8.encode('{"type":"header","start_lsn":1,"term":1,"timeline":1,"format":1}\n');
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(header);
    },
    pull(controller) {
      state.bytesRead += chunkBytes;
      controller.enqueue(new Uint8Array(chunkBytes).fill(0x78));
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  const fake = fakeFetch(() => new Response(stream));
  const { lines, error } = await drain(
    new FerryClient(BASE_URL, { fetch: fake.fetch }).snapshot("r"),
  );
  assert.ok(error instanceof SnapshotFormatError, String(error));
  assert.equal(lines.length, 1);
  assert.ok(state.cancelled, "the body is cancelled");
  assert.ok(state.bytesRead <= SNAPSHOT_LINE_BYTES_MAX + 2 * chunkBytes, `read ${state.bytesRead}`);
});

Deno.test("snapshot(): breaking out of the loop cancels the body", async () => {
  const header = '{"type":"header","start_lsn":1,"term":1,"timeline":1,"format":1}\n';
  const entry = '{"type":"entry","collection":"c","key":"k","value":1,"lsn":1}\n';
  const { client, body } = ndjsonClient([
    utf8.encode(header),
    utf8.encode(entry),
    utf8.encode(entry),
  ]);
  for await (const line of client.snapshot("r")) {
    if (line.type === "header") break;
  }
  assert.equal(body.state.cancelled, true);
  assert.ok(body.state.chunksRead < 3);
});

Deno.test("snapshot(): its signal's abort ends a read that waits on a stalled body, and cancels it", async () => {
  // The body sends its header and half a line, then nothing: only the abort can end the loop,
  // and the half line is not read as a damaged last line. A fake fetch ties the signal to
  // nothing, as a real one's abort does not reach a read already waiting.
  const header = '{"type":"header","start_lsn":1,"term":1,"timeline":1,"format":1}\n';
  const state = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    start: (controller) => controller.enqueue(utf8.encode(`${header}{"type":"entry","coll`)),
    cancel: () => {
      state.cancelled = true;
    },
  });
  const fake = fakeFetch(() =>
    new Response(stream, { headers: { "content-type": "application/x-ndjson" } })
  );
  const client = new FerryClient(BASE_URL, { fetch: fake.fetch });
  const stop = new AbortController();
  const read = (async () => {
    for await (const line of client.snapshot("r", { signal: stop.signal })) {
      if (line.type === "header") stop.abort();
    }
  })();
  const ended = await settledWithin(read);
  assert.ok(ended.outcome === "settled" && ended.result.status === "rejected", "the abort ends it");
  const error = ended.result.reason;
  assert.ok(error instanceof DOMException && error.name === "AbortError", String(error));
  assert.equal(state.cancelled, true, "the body is cancelled");
});

Deno.test("read() maps a record, returns undefined on 404, and throws on 503 with retryAfterMs", async () => {
  const fake = fakeFetch((request) => {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/missing")) {
      return Response.json({ error: "not_found", message: "no such key" }, { status: 404 });
    }
    if (url.searchParams.get("min_lsn") === "99") {
      return Response.json(
        { error: "lsn_not_applied", message: "not yet", applied_lsn: 7, min_lsn: 99 },
        { status: 503, headers: { "retry-after": "2" } },
      );
    }
    return Response.json({
      collection: "users",
      key: "a/b c",
      value: { n: 1 },
      lsn: 5,
      applied_lsn: 9,
    });
  });
  const client = new FerryClient(`${BASE_URL}/`, { fetch: fake.fetch });
  assert.deepEqual(await client.read("users", "a/b c", { minLsn: 5, awaitTimeoutMs: 100 }), {
    collection: "users",
    key: "a/b c",
    value: { n: 1 },
    lsn: 5,
    appliedLsn: 9,
  });
  assert.equal(
    fake.requests[0]!.url,
    `${BASE_URL}/v1/records/users/a%2Fb%20c?min_lsn=5&await_timeout_ms=100`,
  );
  assert.equal(await client.read("users", "missing"), undefined);
  assert.equal(fake.requests[1]!.url, `${BASE_URL}/v1/records/users/missing`);
  const error = await rejection(client.read("users", "k", { minLsn: 99 }));
  assert.equal(error.status, 503);
  assert.equal(error.code, "lsn_not_applied");
  assert.equal(error.retryAfterMs, 2000);
  assert.equal(error.body.applied_lsn, 7);
});

Deno.test("a non-JSON error body becomes code http_<status>; zero-valued params are sent, undefined ones never", async () => {
  const fake = fakeFetch((request) =>
    new URL(request.url).pathname === "/v1/status"
      ? new Response("<html>bad gateway</html>", { status: 502 })
      : Response.json({ records: [], current_lsn: 0, oldest_lsn: 0, term: 1, timeline: 1 })
  );
  const client = new FerryClient(BASE_URL, { fetch: fake.fetch });
  const error = await rejection(client.status());
  assert.equal(error.status, 502);
  assert.equal(error.code, "http_502");
  assert.equal(error.body.error, "http_502");
  assert.equal(error.retryAfterMs, undefined);
  await client.pullJson({});
  await client.pullJson({ sinceLsn: 0, awaitTimeoutMs: 0, replicaId: undefined });
  assert.equal(fake.requests[1]!.url, `${BASE_URL}/v1/wal`);
  assert.equal(fake.requests[2]!.url, `${BASE_URL}/v1/wal?since_lsn=0&await_timeout_ms=0`);
  assert.equal(fake.requests[1]!.headers.get("authorization"), null, "no token, no header");
});

function framesBody(count: number): { bytes: Uint8Array<ArrayBuffer>; lengths: number[] } {
  const frames = Array.from({ length: count }, (_, i) =>
    encodeFrameV3({
      term: 1,
      ownershipEpoch: 0,
      lsn: i + 1,
      timestampMs: 1_800_000_000_000,
      payload: utf8.encode(
        JSON.stringify({ op: "put", collection: "c", key: `k${i}`, value: i, ts: 1 }),
      ),
    }));
  const bytes = new Uint8Array(frames.reduce((sum, f) => sum + f.byteLength, 0));
  let offset = 0;
  for (const frame of frames) {
    bytes.set(frame, offset);
    offset += frame.byteLength;
  }
  return { bytes, lengths: frames.map((f) => f.byteLength) };
}

function framesClient(
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = {},
): FerryClient {
  const fake = fakeFetch(() =>
    new Response(body, {
      headers: {
        "content-type": "application/x-ferry-frames",
        "x-ferry-current-lsn": "3",
        "x-ferry-oldest-lsn": "1",
        "x-ferry-term": "1",
        "x-ferry-timeline": "1",
        "x-ferry-start-lsn": "0",
        "x-ferry-record-count": "3",
        ...headers,
      },
    })
  );
  return new FerryClient(BASE_URL, { fetch: fake.fetch });
}

Deno.test("pullFrames() reports a flipped bit in the second frame and returns only the frame before it", async () => {
  const { bytes, lengths } = framesBody(3);
  const intact = await framesClient(bytes).pullFrames({});
  assert.equal(intact.corrupt, undefined);
  assert.deepEqual(intact.frames.map((f) => f.lsn), [1, 2, 3]);

  const flipped = bytes.slice();
  flipped[lengths[0]! + 45]! ^= 0x04; // A payload byte of frame 2.
  const pull = await framesClient(flipped).pullFrames({});
  assert.deepEqual(pull.frames.map((f) => f.lsn), [1]);
  assert.deepEqual(pull.corrupt, { offset: lengths[0], reason: "crc mismatch" });
  assert.equal(pull.currentLsn, 3);
});

Deno.test("pullFrames() reports a torn last frame, a short body, and refuses a non-frame answer", async () => {
  const { bytes, lengths } = framesBody(3);
  const torn = await framesClient(bytes.subarray(0, bytes.byteLength - 2)).pullFrames({});
  assert.deepEqual(torn.frames.map((f) => f.lsn), [1, 2]);
  assert.equal(torn.corrupt?.offset, lengths[0]! + lengths[1]!);
  assert.match(torn.corrupt?.reason ?? "", /truncated/);

  const twoFrames = bytes.subarray(0, lengths[0]! + lengths[1]!);
  const short = await framesClient(twoFrames).pullFrames({});
  assert.deepEqual(short.frames.map((f) => f.lsn), [1, 2]);
  assert.deepEqual(short.corrupt, {
    offset: twoFrames.byteLength,
    reason: "the body ended after 2 of 3 frames",
  });

  await assert.rejects(
    framesClient(bytes, { "content-type": "application/json" }).pullFrames({}),
    FerryResponseError,
  );
  await assert.rejects(
    framesClient(bytes, { "x-ferry-term": "one" }).pullFrames({}),
    FerryResponseError,
  );
});

Deno.test("pullFrames() over a sealed segment with a flipped payload bit: the primary serves the file's bytes, the client's one-pass check stops at the damaged frame; a JSON pull fails whole", async () => {
  await withApp({ spool: { segmentBytesMax: 4096, tailBytesMax: 0 } }, async ({ app, spool }) => {
    const client = appClient(app);
    for (let i = 0; i < 12; i++) {
      await client.write(Array.from({ length: 5 }, (_, j) => put(`k${i}-${j}`, "x".repeat(200))));
    }
    // Every seek index built by a verifying read, as a primary that has served these before.
    assert.equal((await spool.readSince(0, 100, 1 << 20)).length, 60);
    const sealed = spool.segments()[1]!;
    const path = `${spool.dir}/${String(sealed.firstLsn).padStart(20, "0")}.wal`;
    const bytes = await Deno.readFile(path);
    const damagedLsn = sealed.firstLsn + 2;
    const target = decodeFrameRun(bytes).frames[2]!;
    assert.equal(target.lsn, damagedLsn);
    bytes[target.bytes.byteOffset + 60]! ^= 0x01; // a payload byte: only the CRC can tell
    await Deno.writeFile(path, bytes);

    const since = sealed.firstLsn - 3;
    const pull = await client.pullFrames({ sinceLsn: since, maxCount: 20 });
    assert.deepEqual(pull.frames.map((f) => f.lsn), [since + 1, since + 2, since + 3, since + 4]);
    const offset = pull.frames.reduce((sum, f) => sum + f.byteLength, 0);
    assert.deepEqual(pull.corrupt, { offset, reason: "crc mismatch" });

    const json = await rejection(client.pullJson({ sinceLsn: since, maxCount: 20 }));
    assert.equal(json.status, 500);
    assert.equal(json.code, "wal_corrupt");
  });
});

Deno.test("decodeFrames() (the client's one-pass check) agrees with decodeFrame() frame by frame on damaged bodies", () => {
  const { bytes } = framesBody(6);
  for (let bit = 0; bit < bytes.byteLength * 8; bit += 7) {
    const damaged = bytes.slice();
    damaged[bit >> 3]! ^= 1 << (bit & 7);
    const expected: number[] = [];
    let offset = 0;
    let reason: string | undefined;
    while (offset < damaged.byteLength) {
      const result = decodeFrame(damaged, offset);
      if (result.status === "incomplete") {
        reason = `truncated frame: ${result.bytesNeeded} more bytes needed`;
        break;
      }
      if (result.status === "corrupt") {
        reason = result.reason;
        break;
      }
      expected.push(result.frame.lsn);
      offset += result.frame.byteLength;
    }
    const decoded = decodeFrames(damaged, undefined);
    assert.deepEqual(decoded.frames.map((f) => f.lsn), expected, `bit ${bit}`);
    assert.deepEqual(decoded.corrupt, reason === undefined ? undefined : { offset, reason });
    assert.ok(decoded.corrupt !== undefined, `bit ${bit}: every flipped bit is detected`);
  }
});

Deno.test("readBody() reads a declared length into one buffer, falls back for other streams, and bounds what goes past the declared length", async () => {
  const bytes = utf8.encode("0123456789".repeat(100));
  /** A byte stream (what `fetch` hands out, unlike `new Response(bytes)`), in a few chunks. */
  const byteStream = () => {
    const chunks = splitAt(bytes, [7, 400, 401]);
    return new ReadableStream({
      type: "bytes",
      pull(controller) {
        const chunk = chunks.shift();
        if (chunk === undefined) return controller.close();
        controller.enqueue(chunk);
      },
    });
  };
  const declared = { "content-length": String(bytes.byteLength) };
  const exact = await readBody(new Response(byteStream(), { headers: declared }), 4096);
  assert.deepEqual(exact, bytes);
  const chunks = chunkedBody(splitAt(bytes, [1, 300, 301, 999]));
  const fallback = await readBody(new Response(chunks.stream, { headers: declared }), 4096);
  assert.deepEqual(fallback, bytes, "a stream without a BYOB reader is read chunk by chunk");
  const understated = new Response(byteStream(), { headers: { "content-length": "10" } });
  assert.deepEqual(await readBody(understated, 4096), bytes, "past the declared length too");
  const tooLong = new Response(byteStream(), { headers: { "content-length": "10" } });
  await assert.rejects(readBody(tooLong, 500), FerryResponseError);
  const truncated = new Response(byteStream(), { headers: { "content-length": "10" } });
  assert.deepEqual(await readBody(truncated, 500, { truncate: true }), bytes.subarray(0, 500));
});
