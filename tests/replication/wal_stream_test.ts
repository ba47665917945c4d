// One stream's queue (SPEC.md 13.1), driven by hand: chunks queued while the server reads nothing
// go over together, in order and at whole frames, at most STREAM_COALESCE_BYTES_MAX at a time; a
// chunk larger than that goes alone, as the very buffer queued; the unsent-bytes cap still counts
// what is queued.

import assert from "node:assert/strict";
import { STREAM_COALESCE_BYTES_MAX } from "../../src/core/limits.ts";
import { type StreamEndReason, WalStream } from "../../src/replication/wal_stream.ts";
import type { GroupCommit } from "../../src/wal/commit_feed.ts";
import { encodeFrameV3 } from "../../src/wal/frame.ts";
import { emptyRawFrames } from "../../src/wal/range_read.ts";
import { StreamTap } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();

/** A group commit of `count` frames after `previousLsn`, each with a value of `valueBytes`. */
function commitAfter(previousLsn: number, count: number, valueBytes: number): GroupCommit {
  const frames = Array.from({ length: count }, (_, i) =>
    encodeFrameV3({
      term: 1,
      ownershipEpoch: 0,
      lsn: previousLsn + 1 + i,
      timestampMs: 0,
      payload: utf8.encode(
        `{"op":"put","collection":"c","key":"k","value":"${"x".repeat(valueBytes)}"}`,
      ),
    }));
  const bytes = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
  let offset = 0;
  for (const frame of frames) {
    bytes.set(frame, offset);
    offset += frame.byteLength;
  }
  return { firstLsn: previousLsn + 1, lastLsn: previousLsn + count, bytes };
}

/** A live stream from LSN 0 over a spool whose current LSN is `current.lsn`. */
function liveStream(current: { lsn: number }, unsentBytesMax: number) {
  const ends: StreamEndReason[] = [];
  const stream = new WalStream({
    id: 1,
    replicaId: "r1",
    startLsn: 0,
    servableLsn: () => current.lsn,
    read: (since) => Promise.resolve(emptyRawFrames(since)),
    control: () => ({ currentLsn: current.lsn, commitLsn: current.lsn, term: 1, timeline: 1 }),
    unsentBytesMax,
    mayServe: () => true,
    onSent: () => {},
    onEnd: (_stream, reason) => ends.push(reason),
    clock: () => 0,
  });
  return { stream, ends };
}

Deno.test("WalStream hands queued chunks over together, in order, at most STREAM_COALESCE_BYTES_MAX at a time", async () => {
  const current = { lsn: 0 };
  const { stream, ends } = liveStream(current, 1 << 30);
  await stream.begin();
  // Nobody reads: a backlog of small group commits, one larger than the bound, then two more.
  const commits: GroupCommit[] = [];
  const commit = (count: number, valueBytes: number) => {
    const next = commitAfter(current.lsn, count, valueBytes);
    current.lsn = next.lastLsn;
    commits.push(next);
    stream.deliver(next);
  };
  for (let i = 0; i < 200; i++) commit(3, 200);
  commit(2, STREAM_COALESCE_BYTES_MAX);
  commit(1, 10);
  commit(2, 10);
  const queued = commits.reduce((n, c) => n + c.bytes.byteLength, 0);
  assert.ok(stream.unsentBytes > queued, "the opening control record is queued too");

  const tap = new StreamTap(stream.body);
  const chunks: Uint8Array[] = [];
  while (tap.read.lsns.length < current.lsn) chunks.push((await tap.chunk())!);
  assert.equal(tap.read.controls, 1);
  assert.deepEqual(tap.read.lsns, Array.from({ length: current.lsn }, (_, i) => i + 1));
  const large = commits[200]!.bytes;
  assert.ok(chunks.includes(large), "the larger chunk goes alone, not copied");
  for (const chunk of chunks) {
    if (chunk !== large) assert.ok(chunk.byteLength <= STREAM_COALESCE_BYTES_MAX);
  }
  // 600 small frames of about 300 bytes went in a handful of chunks, not one each.
  assert.ok(chunks.length < 10, `${chunks.length} chunks`);
  assert.equal(stream.unsentBytes, 0);
  assert.equal(stream.sentBytes, chunks.reduce((n, c) => n + c.byteLength, 0));
  stream.end("shutdown");
  assert.deepEqual(ends, ["shutdown"]);
});

Deno.test("WalStream sends a commit that comes while the server waits at once, alone", async () => {
  const current = { lsn: 0 };
  const { stream } = liveStream(current, 1 << 30);
  await stream.begin();
  const tap = new StreamTap(stream.body);
  await tap.chunk();
  const waiting = tap.chunk();
  const next = commitAfter(0, 2, 10);
  current.lsn = next.lastLsn;
  stream.deliver(next);
  assert.equal(await waiting, next.bytes, "the group commit's own buffer, as the one chunk");
  stream.end("shutdown");
});

Deno.test("WalStream past its unsent-bytes cap ends even when its queue would go over together", async () => {
  const current = { lsn: 0 };
  const { stream, ends } = liveStream(current, 8192);
  await stream.begin();
  for (let i = 0; i < 100 && !stream.ended; i++) {
    const next = commitAfter(current.lsn, 1, 100);
    current.lsn = next.lastLsn;
    stream.deliver(next);
    assert.ok(stream.ended || stream.unsentBytes <= 8192);
  }
  assert.deepEqual(ends, ["unsent_bytes_cap"]);
  const read = await new StreamTap(stream.body).rest();
  assert.deepEqual(read, { lsns: [], controls: 0 }, "what was queued was dropped, not sent");
});
