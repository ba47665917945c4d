// Corrupted files at rest, the Deno KV file: SQLite keeps no page checksums, so ferry checks its
// own. A single flipped bit anywhere in a state store must give either an error or every value
// intact, never a wrong value, a missing entry, or a listing that runs on.

import assert from "node:assert/strict";
import { KvState, type StateEntry } from "../../src/state/kv_state.ts";
import { withTempDir } from "../helpers/temp.ts";

const ENTRIES = 300;
const FLIPS = 160;

function valueOf(i: number): unknown {
  if (i % 97 === 0) return "big-" + "x".repeat(150_000) + i; // chunked
  return { i, name: `user ${i}`, tags: ["a", "b", String(i % 7)] };
}

async function build(path: string): Promise<StateEntry[]> {
  const kv = await Deno.openKv(path);
  const state = new KvState(kv);
  const records = Array.from({ length: ENTRIES }, (_, i) => ({
    lsn: i + 1,
    record: {
      op: "put" as const,
      collection: i % 2 ? "odd" : "even",
      key: `k${i}`,
      value: valueOf(i),
      ts: 1,
    },
  }));
  await state.apply(records, (lsn) => ({ applied_lsn: lsn, last_term: 1, last_hash: null }));
  const entries = await Array.fromAsync(state.scan({ verifyCount: true }));
  kv.close();
  return entries;
}

type Outcome = "error" | "intact" | "silently wrong";

async function readAll(path: string, expected: StateEntry[]): Promise<Outcome> {
  let kv: Deno.Kv | undefined;
  try {
    kv = await Deno.openKv(path);
    const state = new KvState(kv);
    const meta = await state.meta();
    const listed = await Array.fromAsync(state.scan({ verifyCount: true }));
    const got = [];
    for (const entry of expected) got.push(await state.get(entry.collection, entry.key));
    const intact = meta.applied_lsn === ENTRIES &&
      JSON.stringify(listed) === JSON.stringify(expected) &&
      JSON.stringify(got) === JSON.stringify(expected);
    return intact ? "intact" : "silently wrong";
  } catch {
    return "error";
  } finally {
    try {
      kv?.close();
    } catch {
      // a store that failed to open has nothing to close
    }
  }
}

Deno.test("a flipped bit anywhere in a state store gives an error or intact data, never wrong data", async () => {
  await withTempDir(async (dir) => {
    const original = `${dir}/state.kv`;
    const expected = await build(original);
    assert.equal(expected.length, ENTRIES);
    const bytes = Deno.readFileSync(original);
    const outcomes: Record<Outcome, number> = { error: 0, intact: 0, "silently wrong": 0 };
    const wrong: number[] = [];
    for (let n = 0; n < FLIPS; n++) {
      // Spread over the whole file, plus a pseudo-random bit in the byte.
      const position = Math.floor(((n + 0.5) / FLIPS) * bytes.byteLength);
      const damaged = bytes.slice();
      damaged[position]! ^= 1 << ((n * 5) % 8);
      const path = `${dir}/flip-${n}.kv`;
      Deno.writeFileSync(path, damaged);
      const outcome = await readAll(path, expected);
      outcomes[outcome] += 1;
      if (outcome === "silently wrong") wrong.push(position);
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(path + suffix).catch(() => undefined);
      }
    }
    assert.deepEqual(
      wrong,
      [],
      `silently wrong data after flips at ${wrong.join(", ")} (${JSON.stringify(outcomes)})`,
    );
    assert.ok(outcomes.error > 0, "some flips were detected");
  });
});
