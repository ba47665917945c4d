// SPEC.md 13.2, sealed segments as immutable, cacheable objects, through the primary's app: the
// listing, the object as stored with its strong ETag and cache headers, 304, 206 and 416, 404 and
// 410, every error `no-store`, and the counters that show what the origin served.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type AppFixture, withApp } from "../helpers/app_fixture.ts";
import { appendRecords } from "../helpers/primary_fixture.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";

interface Listed {
  first_lsn: number;
  last_lsn: number;
  bytes: number;
  sha256: string;
  url: string;
}

/** A primary whose spool sealed a few 16 KiB segments. */
function withSegments(fn: (fixture: AppFixture) => Promise<void>): Promise<void> {
  return withApp({ spool: { segmentBytesMax: 16_384 } }, async (fixture) => {
    await appendRecords(fixture.primary, 1000);
    await fn(fixture);
  });
}

async function list(fixture: AppFixture): Promise<{ timeline: number; segments: Listed[] }> {
  const response = await fixture.call("GET", "/v1/segments");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store", "a listing changes");
  return await response.json();
}

async function assertNoStoreError(response: Response, status: number, code: string) {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal((await response.json()).error, code);
}

Deno.test("GET /v1/segments lists the sealed segments oldest first, each with its size, SHA-256 and URL", async () => {
  await withSegments(async (fixture) => {
    const { timeline, segments } = await list(fixture);
    assert.equal(timeline, 1);
    const sealed = fixture.spool.segments().filter((s) => s.sealed);
    assert.ok(sealed.length >= 3);
    assert.deepEqual(
      segments.map((s) => [s.first_lsn, s.last_lsn, s.bytes]),
      sealed.map((s) => [s.firstLsn, s.lastLsn, s.sizeBytes]),
      "sealed only: the active segment is not listed",
    );
    for (const s of segments) {
      assert.equal(s.url, `/v1/segments/1/${s.first_lsn}-${s.last_lsn}-${s.sha256.slice(0, 16)}`);
    }
  });
});

Deno.test("GET of a listed URL serves the file as stored: its SHA-256 is the ETag and names the URL", async () => {
  await withSegments(async (fixture) => {
    const { segments } = await list(fixture);
    for (const segment of segments) {
      const response = await fixture.call("GET", segment.url);
      assert.equal(response.status, 200);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      assert.equal(sha256, segment.sha256, "content-addressed: the hash in the URL is the bytes'");
      assert.ok(segment.url.endsWith(sha256.slice(0, 16)));
      const path = `${fixture.spool.dir}/${String(segment.first_lsn).padStart(20, "0")}.wal`;
      assert.deepEqual(bytes, Deno.readFileSync(path), "byte for byte as stored");
      assert.equal(response.headers.get("content-type"), "application/x-ferry-frames");
      assert.equal(response.headers.get("content-length"), String(segment.bytes));
      assert.equal(response.headers.get("etag"), `"${segment.sha256}"`);
      assert.equal(response.headers.get("accept-ranges"), "bytes");
      assert.equal(response.headers.get("cache-control"), IMMUTABLE);
    }
  });
});

Deno.test("If-None-Match naming the ETag answers 304 with the cache headers and no body", async () => {
  await withSegments(async (fixture) => {
    const segment = (await list(fixture)).segments[0]!;
    const etag = `"${segment.sha256}"`;
    for (const value of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const response = await fixture.call("GET", segment.url, {
        headers: { "if-none-match": value },
      });
      assert.equal(response.status, 304, value);
      assert.equal(response.headers.get("etag"), etag);
      assert.equal(response.headers.get("cache-control"), IMMUTABLE);
      assert.equal((await response.arrayBuffer()).byteLength, 0);
    }
    const other = await fixture.call("GET", segment.url, { headers: { "if-none-match": '"x"' } });
    assert.equal(other.status, 200);
    await other.body?.cancel();
  });
});

Deno.test("Range gives 206 with Content-Range; past the end 416 with bytes */size and no-store", async () => {
  await withSegments(async (fixture) => {
    const segment = (await list(fixture)).segments[0]!;
    const whole = new Uint8Array(await (await fixture.call("GET", segment.url)).arrayBuffer());
    const size = segment.bytes;
    const cases: Array<[string, number, number]> = [
      ["bytes=0-99", 0, 100],
      ["bytes=100-", 100, size],
      ["bytes=-50", size - 50, size],
      [`bytes=10-${size + 1000}`, 10, size],
    ];
    for (const [range, start, end] of cases) {
      const response = await fixture.call("GET", segment.url, { headers: { range } });
      assert.equal(response.status, 206, range);
      assert.equal(response.headers.get("content-range"), `bytes ${start}-${end - 1}/${size}`);
      assert.equal(response.headers.get("content-length"), String(end - start));
      assert.equal(response.headers.get("cache-control"), IMMUTABLE);
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), whole.subarray(start, end));
    }
    for (const range of [`bytes=${size}-`, "bytes=-0"]) {
      const response = await fixture.call("GET", segment.url, { headers: { range } });
      assert.equal(response.headers.get("content-range"), `bytes */${size}`, range);
      await assertNoStoreError(response, 416, "range_not_satisfiable");
    }
    // Ranges it does not serve (malformed, several, an If-Range of other bytes) get the whole.
    const wholeRanges: Array<Record<string, string>> = [
      { range: "bytes=5-1" },
      { range: "items=0-5" },
      { range: "bytes=0-1,5-6" },
      { range: "bytes=0-9", "if-range": '"not-this-one"' },
    ];
    for (const headers of wholeRanges) {
      const response = await fixture.call("GET", segment.url, { headers });
      assert.equal(response.status, 200, JSON.stringify(headers));
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), whole);
    }
  });
});

Deno.test("an unknown or active segment is 404 and a pruned one 410 wal_removed, both no-store", async () => {
  await withSegments(async (fixture) => {
    const [first, second] = (await list(fixture)).segments as [Listed, Listed];
    const active = fixture.spool.segments().at(-1)!;
    const hash = second.sha256.slice(0, 16);
    const unknown = [
      `/v1/segments/1/${second.first_lsn}-${second.last_lsn}-${"0".repeat(16)}`,
      `/v1/segments/1/${second.first_lsn}-${second.last_lsn - 1}-${hash}`,
      `/v1/segments/2/${second.first_lsn}-${second.last_lsn}-${hash}`,
      `/v1/segments/1/${second.first_lsn}-${second.last_lsn}-${hash.toUpperCase()}`,
      `/v1/segments/1/${second.first_lsn}-${second.last_lsn}`,
      `/v1/segments/1/${active.firstLsn}-${active.lastLsn}-${hash}`,
    ];
    for (const path of unknown) {
      await assertNoStoreError(await fixture.call("GET", path), 404, "not_found");
    }
    await fixture.spool.pruneThrough(first.last_lsn);
    await assertNoStoreError(await fixture.call("GET", first.url), 410, "wal_removed");
    assert.equal((await fixture.call("GET", second.url)).status, 200);
  });
});

Deno.test("the origin counts segment answers by status, segment bytes served, and pull bytes", async () => {
  await withSegments(async (fixture) => {
    const segments = (await list(fixture)).segments;
    for (const segment of segments) await (await fixture.call("GET", segment.url)).arrayBuffer();
    const range = { range: "bytes=0-9" };
    await (await fixture.call("GET", segments[0]!.url, { headers: range })).arrayBuffer();
    const etag = { "if-none-match": `"${segments[0]!.sha256}"` };
    await (await fixture.call("GET", segments[0]!.url, { headers: etag })).arrayBuffer();
    await (await fixture.call("GET", "/v1/segments/1/1-2-0000000000000000")).arrayBuffer();
    const pull = await fixture.call("GET", "/v1/wal?since_lsn=990&max_count=10", {
      headers: { accept: "application/x-ferry-frames" },
    });
    const pulled = (await pull.arrayBuffer()).byteLength;
    const text = await fixture.metrics.render();
    const total = segments.reduce((sum, s) => sum + s.bytes, 0);
    assert.match(
      text,
      new RegExp(`^ferry_segment_requests_total\\{status="200"\\} ${segments.length}$`, "m"),
    );
    assert.match(text, /^ferry_segment_requests_total\{status="206"\} 1$/m);
    assert.match(text, /^ferry_segment_requests_total\{status="304"\} 1$/m);
    assert.match(text, /^ferry_segment_requests_total\{status="404"\} 1$/m);
    assert.match(text, new RegExp(`^ferry_segment_bytes_total ${total + 10}$`, "m"));
    assert.ok(pulled > 0);
    assert.match(text, new RegExp(`^ferry_pull_bytes_total ${pulled}$`, "m"));
  });
});
