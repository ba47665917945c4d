// SPEC.md 13.4, "Commit LSN": in a cluster an edge (any replica that is not a member) is served
// only records at or below the commit LSN, by pulls (JSON and raw frames, held or not) and by
// streams; members get every durable record. Nothing here is timed: the commit LSN is a value the
// test raises by hand, and each wait is driven by the event that must end it.

import assert from "node:assert/strict";
import fc from "fast-check";
import { concatBytes } from "../../src/core/bytes.ts";
import { STREAM_CONTROL_INTERVAL_MS } from "../../src/core/limits.ts";
import type { Primary } from "../../src/replication/primary.ts";
import type { PullRequest } from "../../src/replication/types.ts";
import { type DecodedFrame, decodeFrameRun } from "../../src/wal/frame.ts";
import type { RawFrames } from "../../src/wal/range_read.ts";
import type { ControlRecord } from "../../src/wal/stream_codec.ts";
import { decodeStreamRun } from "../../src/wal/stream_codec.ts";
import { appendRecords, replicaOf, withPrimary } from "../helpers/primary_fixture.ts";
import { eventually, lsnsThrough, wholeFrames } from "../helpers/stream_tap.ts";

const utf8 = new TextEncoder();
const PAYLOAD = utf8.encode('{"op":"put","collection":"c","key":"k","value":1}');
const PULL = { maxCount: 1000, maxBytes: 1 << 20, awaitTimeoutMs: 0 };
const STREAM = { maxCount: 1000, maxBytes: 1 << 20 };
/** A hold long enough that only the awaited event can end it. */
const HOLD_MS = 30_000;

/** A commit LSN the test moves by hand, and the cluster options that read it. */
function gatedOptions(gate: { lsn: number }) {
  return { primary: { members: new Set(["m1"]), commitLsn: () => gate.lsn } };
}

function lsnsOfRaw(raw: RawFrames): number[] {
  return decodeFrameRun(concatBytes(raw.chunks)).frames.map((frame) => frame.lsn);
}

function lsnsOf(frames: readonly DecodedFrame[]): number[] {
  return frames.map((frame) => frame.lsn);
}

/** Reads a stream body item by item: every LSN received, and every control record. */
class StreamReader {
  readonly lsns: number[] = [];
  readonly controls: ControlRecord[] = [];
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending = new Uint8Array(0);

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  /** Reads chunks until `until()` holds; false when the body ended first. */
  async readUntil(until: () => boolean): Promise<boolean> {
    while (!until()) {
      const { done, value } = await this.#reader.read();
      if (done) return false;
      const bytes = concatBytes([this.#pending, value]);
      const run = decodeStreamRun(bytes);
      assert.notEqual(run.stop?.status, "corrupt");
      for (const item of run.items) {
        if (item.kind === "control") this.controls.push(item.control);
        else this.lsns.push(...item.frames.map((frame) => frame.lsn));
      }
      this.#pending = bytes.slice(run.offset);
    }
    return true;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** Lets every callback already due run (the spool wakes its waiters on the next turn). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A pull and whether it has been answered yet. */
function track<T>(pending: Promise<T>): { pending: Promise<T>; answered: () => boolean } {
  let answered = false;
  pending.then(() => (answered = true), () => (answered = true));
  return { pending, answered: () => answered };
}

Deno.test("pull() and pullRaw() serve an edge records up to the commit LSN, a member every durable one", async () => {
  const gate = { lsn: 3 };
  await withPrimary(gatedOptions(gate), async ({ primary }) => {
    await appendRecords(primary, 5);
    const edge = await primary.pull({ ...PULL, replicaId: "e1", sinceLsn: 0 });
    assert.deepEqual(lsnsOf(edge.frames), [1, 2, 3]);
    assert.equal(edge.currentLsn, 5, "current_lsn stays the durable current LSN");
    const edgeRaw = await primary.pullRaw({ ...PULL, replicaId: "e1", sinceLsn: 1 });
    assert.deepEqual(lsnsOfRaw(edgeRaw.raw), [2, 3]);
    assert.equal(edgeRaw.raw.lastLsn, 3);
    assert.equal(edgeRaw.currentLsn, 5);
    const anonymous = await primary.pullRaw({ ...PULL, sinceLsn: 0 });
    assert.deepEqual(lsnsOfRaw(anonymous.raw), [1, 2, 3], "a pull with no replica id is an edge's");
    const caughtUp = await primary.pullRaw({ ...PULL, replicaId: "e1", sinceLsn: 3 });
    assert.equal(caughtUp.raw.count, 0, "nothing committed after 3 yet");
    assert.deepEqual(lsnsOf((await primary.pull({ ...PULL, replicaId: "m1" })).frames), [
      1,
      2,
      3,
      4,
      5,
    ]);
    const memberRaw = await primary.pullRaw({ ...PULL, replicaId: "m1", sinceLsn: 0 });
    assert.deepEqual(lsnsOfRaw(memberRaw.raw), [1, 2, 3, 4, 5]);
    assert.equal(replicaOf(primary, "e1")?.lastSentLsn, 3, "an edge was sent nothing past 3");
  });
});

Deno.test("without commitLsn (a single primary) nothing is gated, whatever the members", async () => {
  await withPrimary({ primary: { members: new Set(["m1"]) } }, async ({ primary }) => {
    await appendRecords(primary, 4);
    const edge = await primary.pullRaw({ ...PULL, replicaId: "e1", sinceLsn: 0 });
    assert.deepEqual(lsnsOfRaw(edge.raw), [1, 2, 3, 4]);
    assert.equal(primary.streams.commitLsn(), 4, "committed = current");
  });
});

for (const kind of ["JSON", "raw frames"] as const) {
  Deno.test(`a held edge pull (${kind}) outlasts an append and is answered when the commit LSN rises`, async () => {
    const gate = { lsn: 2 };
    await withPrimary(gatedOptions(gate), async ({ primary, spool }) => {
      await appendRecords(primary, 2);
      const request: PullRequest = {
        ...PULL,
        replicaId: "e1",
        sinceLsn: 2,
        awaitTimeoutMs: HOLD_MS,
      };
      const pull = kind === "JSON"
        ? track(primary.pull(request).then((result) => lsnsOf(result.frames)))
        : track(primary.pullRaw(request).then((result) => lsnsOfRaw(result.raw)));
      await eventually("the pull is held", () => spool.stats().waiters === 1);
      await primary.append([PAYLOAD, PAYLOAD]);
      // The append woke the spool's wait: the pull now waits for the commit LSN instead.
      await eventually("the pull left the append wait", () => spool.stats().waiters === 0);
      assert.equal(pull.answered(), false, "appended is not committed");
      primary.commitAdvanced();
      assert.equal(pull.answered(), false, "a wake that does not reach it leaves it held");
      gate.lsn = 3;
      primary.commitAdvanced();
      assert.deepEqual(await pull.pending, [3], "only what is committed, not LSN 4");
    });
  });
}

Deno.test("a held member pull is answered by the append, as without a cluster", async () => {
  const gate = { lsn: 0 };
  await withPrimary(gatedOptions(gate), async ({ primary }) => {
    const pull = primary.pull({ ...PULL, replicaId: "m1", sinceLsn: 0, awaitTimeoutMs: HOLD_MS });
    await primary.append([PAYLOAD]);
    assert.deepEqual(lsnsOf((await pull).frames), [1]);
  });
});

Deno.test("a held edge pull is answered when the hub closes (shutdown or fencing)", async () => {
  const gate = { lsn: 0 };
  await withPrimary(gatedOptions(gate), async ({ primary, spool }) => {
    await appendRecords(primary, 1);
    const pull = track(
      primary.pull({ ...PULL, replicaId: "e1", sinceLsn: 0, awaitTimeoutMs: HOLD_MS }),
    );
    await nextTurn();
    assert.equal(pull.answered(), false, "held: LSN 1 is appended, not committed");
    assert.equal(spool.stats().waiters, 0, "it waits for the commit LSN, not for an append");
    primary.streams.endAll("fenced");
    assert.deepEqual((await pull.pending).frames, [], "answered with nothing, at once");
  });
});

Deno.test("an edge's stream carries frames up to the commit LSN and the rest as it rises, split mid group commit", async () => {
  const gate = { lsn: 2 };
  await withPrimary(gatedOptions(gate), async ({ primary, spool }) => {
    await appendRecords(primary, 5);
    const opened = await primary.openStream({ ...STREAM, replicaId: "e1", sinceLsn: 0 });
    assert.equal(opened.currentLsn, 5);
    const stream = new StreamReader(opened.body);
    await stream.readUntil(() => stream.lsns.length >= 2);
    assert.deepEqual(stream.lsns, [1, 2]);
    assert.deepEqual(stream.controls[0], { currentLsn: 5, commitLsn: 2, term: 1, timeline: 1 });
    gate.lsn = 5;
    primary.commitAdvanced();
    await stream.readUntil(() => stream.lsns.length >= 5);
    assert.deepEqual(stream.lsns, lsnsThrough(5), "the backlog once committed");
    // Caught up with commit = current, a group commit 6..8 lands right after what was sent; the
    // hub's listener (subscribed first) has run once ours runs.
    const delivered = new Promise<void>((resolve) => {
      const unsubscribe = spool.onCommit(() => {
        unsubscribe();
        resolve();
      });
    });
    await primary.append([PAYLOAD, PAYLOAD, PAYLOAD]);
    await delivered;
    assert.equal(replicaOf(primary, "e1")?.lastSentLsn, 5, "nothing past the commit LSN queued");
    gate.lsn = 7;
    primary.commitAdvanced();
    await stream.readUntil(() => stream.lsns.length >= 7);
    assert.deepEqual(stream.lsns, lsnsThrough(7), "the committed prefix of the group commit");
    assert.equal(replicaOf(primary, "e1")?.lastSentLsn, 7, "LSN 8 waits for the commit LSN");
    gate.lsn = 8;
    primary.commitAdvanced();
    await stream.readUntil(() => stream.lsns.length >= 8);
    assert.deepEqual(stream.lsns, lsnsThrough(8), "the rest once committed, never a frame twice");
    await stream.cancel();
  });
});

Deno.test("a member's stream is not gated; every stream's control records carry the commit LSN", async () => {
  const gate = { lsn: 1 };
  await withPrimary(gatedOptions(gate), async ({ primary, clock }) => {
    await appendRecords(primary, 3);
    const member = new StreamReader(
      (await primary.openStream({ ...STREAM, replicaId: "m1", sinceLsn: 0 })).body,
    );
    await member.readUntil(() => member.lsns.length >= 3);
    assert.deepEqual(member.lsns, [1, 2, 3]);
    assert.equal(member.controls[0]?.commitLsn, 1);
    await primary.append([PAYLOAD]);
    await member.readUntil(() => member.lsns.length >= 4);
    assert.deepEqual(member.lsns, [1, 2, 3, 4], "a member's stream gets each group commit live");
    gate.lsn = 4;
    clock.advance(STREAM_CONTROL_INTERVAL_MS);
    primary.streams.tick();
    await member.readUntil(() => member.controls.length >= 2);
    assert.deepEqual(member.controls[1], { currentLsn: 4, commitLsn: 4, term: 1, timeline: 1 });
    await member.cancel();
  });
});

Deno.test("an edge's stream that says it is past the commit LSN waits, then resumes after its start", async () => {
  const gate = { lsn: 1 };
  await withPrimary(gatedOptions(gate), async ({ primary }) => {
    await appendRecords(primary, 4);
    const stream = new StreamReader(
      (await primary.openStream({ ...STREAM, replicaId: "e1", sinceLsn: 2 })).body,
    );
    await primary.append([PAYLOAD]);
    gate.lsn = 4;
    primary.commitAdvanced();
    await stream.readUntil(() => stream.lsns.length >= 2);
    assert.deepEqual(stream.lsns, [3, 4]);
    await stream.cancel();
  });
});

/**
 * One gated connection: reads until caught up with the commit LSN, then lets `step` move things
 * on (a write or a rise of the commit LSN), until `cutAt` bytes or nothing is left to do. Returns
 * the whole frames received before the cut; each was at or below the commit LSN when received.
 */
async function gatedConnection(
  primary: Primary,
  gate: { lsn: number },
  sinceLsn: number,
  cutAt: number,
  step: () => Promise<boolean>,
): Promise<number[]> {
  const opened = await primary.openStream({ ...STREAM, replicaId: "edge", sinceLsn, maxCount: 5 });
  const reader = opened.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let lsns: number[] = [];
  try {
    while (bytes < cutAt) {
      lsns = wholeFrames(chunks, bytes).map((frame) => frame.lsn);
      const last = lsns[lsns.length - 1] ?? sinceLsn;
      assert.ok(last <= gate.lsn, `LSN ${last} was sent above the commit LSN ${gate.lsn}`);
      const queued = replicaOf(primary, "edge")?.lastSentLsn ?? 0;
      assert.ok(queued <= gate.lsn, `LSN ${queued} was queued above the commit LSN ${gate.lsn}`);
      if (last >= gate.lsn) {
        if (await step()) continue;
        break;
      }
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.byteLength;
    }
  } finally {
    await reader.cancel();
  }
  return wholeFrames(chunks, Math.min(bytes, cutAt)).map((frame) => frame.lsn);
}

Deno.test("gated streams cut at random bytes and resumed deliver exactly 1..N, never past the commit LSN", async () => {
  const gate = { lsn: 0 };
  await withPrimary(
    { ...gatedOptions(gate), spool: { tailBytesMax: 4096 } },
    async ({ primary }) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 2500 }), { minLength: 1, maxLength: 6 }),
          fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }),
          fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 1, maxLength: 10 }),
          fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
          async (cuts, batches, rises, writeFirst) => {
            const base = primary.spool.currentLsn();
            gate.lsn = base;
            const expectedLast = base + batches.reduce((a, b) => a + b, 0);
            const writes = [...batches];
            let steps = 0;
            // A write or a rise of the commit LSN (never above what is durable), in random order.
            const step = async (): Promise<boolean> => {
              const current = primary.spool.currentLsn();
              const turn = steps++;
              const write = writes.length > 0 && writeFirst[turn % writeFirst.length]!;
              if (gate.lsn < current && !write) {
                // Past 12, a rise commits everything durable (so later writes land right after it).
                const by = rises[turn % rises.length]!;
                gate.lsn = by > 12 ? current : Math.min(current, gate.lsn + by);
                primary.commitAdvanced();
                return true;
              }
              const size = writes.shift();
              if (size === undefined) return false;
              await primary.append(Array.from({ length: size }, () => PAYLOAD));
              // The group commit reaches the stream before anything else moves.
              await nextTurn();
              return true;
            };
            for (const size of writes.splice(0, Math.ceil(writes.length / 2))) {
              await primary.append(Array.from({ length: size }, () => PAYLOAD));
            }
            const received: number[] = [];
            for (const cutAt of cuts) {
              const since = received[received.length - 1] ?? base;
              received.push(...await gatedConnection(primary, gate, since, cutAt, step));
            }
            while ((received[received.length - 1] ?? base) < expectedLast) {
              const since = received[received.length - 1] ?? base;
              received.push(...await gatedConnection(primary, gate, since, Infinity, step));
            }
            const expected = Array.from({ length: expectedLast - base }, (_, i) => base + 1 + i);
            assert.deepEqual(received, expected);
            assert.equal(primary.streams.size, 0, "every cut connection ended its stream");
          },
        ),
        { numRuns: 60 },
      );
    },
  );
});
