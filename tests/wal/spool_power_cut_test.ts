// SPEC.md section 3, durability: an acknowledged record is never lost and a half record is never
// returned, whatever moment the power goes. The in-memory file layer cuts the power at a random
// operation and keeps only synced bytes (plus a random prefix of unsynced ones, a torn tail), and
// only synced directory entries.

import assert from "node:assert/strict";
import fc from "fast-check";
import { Spool } from "../../src/wal/spool.ts";
import { MemFs } from "../helpers/mem_fs.ts";
import { seededRandom } from "../helpers/seeded_random.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

interface Scenario {
  writers: number;
  appendsPerWriter: number;
  recordsPerAppend: number;
  payloadBytes: number;
  segmentBytesMax: number;
  tailBytesMax: number;
  cutAfterOps: number[];
  seed: number;
}

function payloadText(tag: string, size: number): string {
  return (tag + ":").padEnd(size, "x");
}

/** Checks the reopened spool against what was acknowledged and what was ever attempted. */
async function verify(
  spool: Spool,
  acknowledged: Map<number, string>,
  attempted: Set<string>,
): Promise<void> {
  assert.equal(spool.oldestLsn(), 1);
  const seen = new Map<number, string>();
  let since = 0;
  while (since < spool.currentLsn()) {
    const frames = await spool.readSince(since, 1000, 1 << 20);
    for (const frame of frames) {
      assert.equal(frame.lsn, since + 1, "records are contiguous");
      const body = text.decode(frame.payload);
      assert.ok(attempted.has(body), `record ${frame.lsn} is one that was written, whole`);
      seen.set(frame.lsn, body);
      since = frame.lsn;
    }
  }
  for (const [lsn, body] of acknowledged) {
    assert.equal(seen.get(lsn), body, `acknowledged LSN ${lsn} survived intact`);
  }
}

async function runCycle(
  spool: Spool,
  scenario: Scenario,
  cycle: number,
  ledger: { acknowledged: Map<number, string>; attempted: Set<string> },
): Promise<void> {
  const writers = Array.from({ length: scenario.writers }, async (_, w) => {
    for (let i = 0; i < scenario.appendsPerWriter; i++) {
      const bodies = Array.from(
        { length: scenario.recordsPerAppend },
        (_, r) => payloadText(`c${cycle}w${w}i${i}r${r}`, scenario.payloadBytes),
      );
      bodies.forEach((body) => ledger.attempted.add(body));
      try {
        const result = await spool.append(bodies.map((body) => utf8.encode(body)));
        bodies.forEach((body, r) => ledger.acknowledged.set(result.firstLsn + r, body));
      } catch {
        return; // the power went: this writer's process is gone
      }
    }
  });
  await Promise.all(writers);
}

async function runScenario(scenario: Scenario): Promise<void> {
  const fs = new MemFs();
  const random = seededRandom(scenario.seed);
  const ledger = { acknowledged: new Map<number, string>(), attempted: new Set<string>() };
  const options = {
    walDir: "/data/wal",
    timeline: 1,
    term: 1,
    fs,
    segmentBytesMax: scenario.segmentBytesMax,
    tailBytesMax: scenario.tailBytesMax,
  };
  for (const [cycle, cutAfterOps] of scenario.cutAfterOps.entries()) {
    const spool = await Spool.open(options);
    await verify(spool, ledger.acknowledged, ledger.attempted);
    fs.cutAfterOps = cutAfterOps;
    await runCycle(spool, scenario, cycle, ledger);
    await spool.close().catch(() => undefined);
    fs.powerCut(random);
  }
  const last = await Spool.open(options);
  await verify(last, ledger.acknowledged, ledger.attempted);
  // The spool takes new records after the last cut.
  const next = await last.append([utf8.encode(payloadText("final", 10))]);
  assert.equal(next.firstLsn, last.currentLsn());
  await last.close();
}

const scenarios: fc.Arbitrary<Scenario> = fc.record({
  writers: fc.integer({ min: 1, max: 12 }),
  appendsPerWriter: fc.integer({ min: 1, max: 25 }),
  recordsPerAppend: fc.integer({ min: 1, max: 4 }),
  payloadBytes: fc.integer({ min: 20, max: 700 }),
  segmentBytesMax: fc.constantFrom(4096, 16_384, 1 << 20),
  tailBytesMax: fc.constantFrom(0, 2048, 1 << 20),
  cutAfterOps: fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 4 }),
  seed: fc.nat(),
});

Deno.test("property: power cuts at any operation lose no acknowledged record and return no half record", async () => {
  await fc.assert(fc.asyncProperty(scenarios, runScenario), { numRuns: 150 });
});

Deno.test("a power cut keeps only synced directory entries: an unsynced new segment vanishes", async () => {
  const fs = new MemFs();
  const options = { walDir: "/data/wal", timeline: 1, term: 1, fs, segmentBytesMax: 4096 };
  const spool = await Spool.open(options);
  const big = new Uint8Array(5000).fill(1);
  await spool.append([big]);
  await spool.append([big]); // rolls to segment 2, made durable before its first frame
  assert.equal(spool.segments().length, 2);
  // A file created but never followed by a directory fsync does not survive.
  (await fs.open("/data/wal/00000001/00000000000000000099.wal", { create: true, write: true }))
    .close();
  fs.powerCut(() => 1);
  const reopened = await Spool.open(options);
  assert.equal(reopened.segments().length, 2);
  assert.equal(reopened.currentLsn(), 2);
  await reopened.close();
});
