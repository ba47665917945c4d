// "Never a frame twice, never a gap" across reconnects (SPEC.md 13.1), as a property: whatever
// byte each connection is cut at, and however the writes fall between and during connections, a
// reader that keeps the whole frames it got before each cut and reconnects from the last LSN it
// received ends up with exactly the records written, each byte for byte as stored, in LSN order.

import assert from "node:assert/strict";
import fc from "fast-check";
import type { DecodedFrame } from "../../src/wal/frame.ts";
import type { Primary } from "../../src/replication/primary.ts";
import { withPrimary } from "../helpers/primary_fixture.ts";
import { wholeFrames } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();
const STREAM = { replicaId: "prop", maxCount: 7, maxBytes: 1 << 20 };
const BATCH_MS = 3;

/** What one connection received before its cut: the whole frames in the first `cutAt` bytes. */
async function connection(
  primary: Primary,
  sinceLsn: number,
  cutAt: number,
  duringRead: () => Promise<void>,
): Promise<DecodedFrame[]> {
  const opened = await primary.openStream({ ...STREAM, sinceLsn });
  const reader = opened.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let wroteDuring = false;
  try {
    while (bytes < cutAt) {
      // Caught up with nothing more on its way: the cut comes now.
      const frames = wholeFrames(chunks, bytes);
      const last = frames[frames.length - 1]?.lsn ?? sinceLsn;
      if (last >= primary.spool.currentLsn() && wroteDuring) break;
      if (last >= primary.spool.currentLsn()) {
        wroteDuring = true;
        await duringRead();
        continue;
      }
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
  } finally {
    await reader.cancel();
  }
  return wholeFrames(chunks, Math.min(bytes, cutAt));
}

Deno.test("streams cut at random bytes and resumed from the last LSN deliver exactly 1..N", async () => {
  await cutAndResume(0);
});

Deno.test("the same with --stream-batch-ms: batched group commits keep 1..N exactly", async () => {
  await cutAndResume(BATCH_MS);
});

/** The property, on a primary whose streams get group commits at most once per `batchMs`. */
async function cutAndResume(batchMs: number): Promise<void> {
  const options = { spool: { tailBytesMax: 4096 }, primary: { streamBatchMs: batchMs } };
  await withPrimary(options, async ({ primary }) => {
    const written: Uint8Array[] = [];
    const append = async (count: number) => {
      const payloads = Array.from(
        { length: count },
        () =>
          utf8.encode(JSON.stringify({ op: "put", collection: "c", key: `k${written.length}` })),
      );
      written.push(...payloads);
      await primary.append(payloads);
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 2500 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }),
        async (cuts, batches) => {
          const base = primary.spool.currentLsn();
          const expectedLast = base + batches.reduce((a, b) => a + b, 0);
          const pending = [...batches];
          // Half the writes land before the first connection (a backlog), the rest during reads.
          for (const size of pending.splice(0, Math.ceil(pending.length / 2))) await append(size);
          const nextBatch = async () => {
            const size = pending.shift();
            if (size !== undefined) await append(size);
          };
          const received: DecodedFrame[] = [];
          for (const cutAt of cuts) {
            const since = received[received.length - 1]?.lsn ?? base;
            received.push(...await connection(primary, since, cutAt, nextBatch));
          }
          while (pending.length > 0) await nextBatch();
          while ((received[received.length - 1]?.lsn ?? base) < expectedLast) {
            const since = received[received.length - 1]?.lsn ?? base;
            received.push(...await connection(primary, since, Infinity, async () => {}));
          }
          const lsns = received.map((frame) => frame.lsn);
          const expected = Array.from({ length: expectedLast - base }, (_, i) => base + 1 + i);
          assert.deepEqual(lsns, expected);
          for (const frame of received) assert.deepEqual(frame.payload, written[frame.lsn - 1]);
          assert.equal(primary.streams.size, 0, "every cut connection ended its stream");
        },
      ),
      { numRuns: batchMs === 0 ? 60 : 20 },
    );
  });
}
