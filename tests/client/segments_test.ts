// SPEC.md 13.2 on the client side: the listing comes from the primary with the bearer token; each
// segment from its URL resolved against `segmentsUrl`, with the token only when the URL is not
// signed; a download is used only when its length, SHA-256, every CRC and its LSN range check out.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { concatBytes } from "../../src/core/bytes.ts";
import { checkSegment, SegmentClient, type SegmentRef } from "../../src/client/segments.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";

const utf8 = new TextEncoder();

function segmentOf(firstLsn: number, count: number): { ref: SegmentRef; bytes: Uint8Array } {
  const frames = Array.from({ length: count }, (_, i) =>
    encodeFrameV3({
      term: 1,
      ownershipEpoch: 0,
      lsn: firstLsn + i,
      timestampMs: 1,
      payload: utf8.encode(`{"n":${i}}`),
    }));
  const bytes = concatBytes(frames, frames.reduce((n, f) => n + f.byteLength, 0));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const url = `/v1/segments/1/${firstLsn}-${firstLsn + count - 1}-${sha256.slice(0, 16)}`;
  return {
    ref: { firstLsn, lastLsn: firstLsn + count - 1, bytes: bytes.byteLength, sha256, url },
    bytes,
  };
}

function withSha(ref: SegmentRef, bytes: Uint8Array): SegmentRef {
  return { ...ref, sha256: createHash("sha256").update(bytes).digest("hex") };
}

Deno.test("checkSegment() takes the frames only when length, SHA-256, every CRC and the LSN range check out", async () => {
  const { ref, bytes } = segmentOf(11, 5);
  assert.deepEqual((await checkSegment(ref, bytes)).frames.map((f) => f.lsn), [11, 12, 13, 14, 15]);
  const flipped = bytes.slice();
  flipped[60]! ^= 0x01;
  const other = segmentOf(12, 5);
  const cases: Array<[SegmentRef, Uint8Array, RegExp]> = [
    [ref, bytes.subarray(1), /bytes/],
    [ref, flipped, /SHA-256/],
    [withSha(ref, flipped), flipped, /frame at offset/], // a cache that rehashed damaged bytes
    [withSha({ ...ref, bytes: other.bytes.byteLength }, other.bytes), other.bytes, /LSN 11\.\.15/],
  ];
  for (const [candidate, body, reason] of cases) {
    const checked = await checkSegment(candidate, body);
    assert.deepEqual(checked.frames, [], "nothing of it may be applied");
    assert.match(checked.corrupt?.reason ?? "", reason);
  }
});

Deno.test("SegmentClient lists on the primary with the token, fetches through segmentsUrl, the token only for unsigned URLs", async () => {
  const { ref, bytes } = segmentOf(1, 3);
  const signed = { ...ref, url: `${ref.url}?kid=k1&exp=99&sig=${"0".repeat(64)}` };
  const seen: Array<{ url: string; authorization: string | null }> = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const url = String(input);
    seen.push({ url, authorization: new Headers(init?.headers).get("authorization") });
    if (url.endsWith("/v1/segments")) {
      const body = {
        timeline: 1,
        segments: [ref, signed].map((r) => ({
          first_lsn: r.firstLsn,
          last_lsn: r.lastLsn,
          bytes: r.bytes,
          sha256: r.sha256,
          url: r.url,
        })),
      };
      return Promise.resolve(Response.json(body));
    }
    return Promise.resolve(new Response(bytes as Uint8Array<ArrayBuffer>));
  };
  const client = new SegmentClient({
    primaryUrl: "https://primary.example:8787/",
    segmentsUrl: "https://cdn.example/ferry",
    token: "t0k",
    fetch,
  });
  const listed = await client.list();
  assert.deepEqual(listed, { timeline: 1, segments: [ref, signed] });
  for (const entry of listed.segments) {
    assert.equal((await client.download(entry)).frames.length, 3);
  }
  assert.deepEqual(seen, [
    { url: "https://primary.example:8787/v1/segments", authorization: "Bearer t0k" },
    { url: `https://cdn.example/ferry${ref.url}`, authorization: "Bearer t0k" },
    { url: `https://cdn.example/ferry${signed.url}`, authorization: null },
  ]);
});
