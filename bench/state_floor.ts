/**
 * The floor of the state benchmark: the leanest Deno program that applies the same records into
 * Deno KV. Each atomic commit holds 999 records (each one `set` of the record's JSON text under
 * `["state", collection, key]`) and the applied LSN under one meta key: Deno KV takes at most 1000
 * mutations per commit, and the applied LSN must move with the values it covers, as ferry's does.
 * No frames, no decode, no checks, no worker: what is left is the store's own cost, so ferry's
 * apply rate over this one says how much of the gap to ingest is Deno KV's.
 *
 * Run by `state_bench.ts` in a process of its own: `deno run --unstable-kv
 * --allow-read=<dir> --allow-write=<dir> bench/state_floor.ts <dir> <records> <order>`; prints
 * `{"records", "seconds"}`.
 */

/** How the run's keys are laid out in key order (distinct but for `rewrites`). */
export type KeyOrder = "sequential" | "scattered" | "rewrites";
/** The key orders the state benchmark runs, in order. */
export const KEY_ORDERS: readonly KeyOrder[] = ["sequential", "scattered", "rewrites"];
/** The keys the `rewrites` order writes again and again (scattered, like `scattered`'s). */
export const REWRITTEN_KEYS = 10_000;
/** Characters of padding in each record's value. */
const VALUE_CHARS = 100;
const PAD = "v".repeat(VALUE_CHARS);
/** Deno KV's cap on the mutations of one atomic commit. */
const KV_MUTATIONS_PER_COMMIT_MAX = 1000;
/** Records per commit: the cap less the meta key. */
const RECORDS_PER_COMMIT = KV_MUTATIONS_PER_COMMIT_MAX - 1;

/**
 * Key `index` of the run, distinct for every index below 2^32: rising with the index (new keys
 * land past the existing ones, like time-ordered ids), or scattered over the key space (a
 * multiplicative hash: each commit touches as many B-tree pages of Deno KV's SQLite as keys);
 * `rewrites` cycles through `REWRITTEN_KEYS` scattered keys (updates of keys the state holds).
 */
export function keyOf(index: number, order: KeyOrder): string {
  if (order === "rewrites") return keyOf(index % REWRITTEN_KEYS, "scattered");
  if (order === "sequential") return `user:${String(index).padStart(10, "0")}`;
  return `user:${(Math.imul(index, 0x9e37_79b1) >>> 0).toString(16).padStart(8, "0")}`;
}

/** The value of record `index`, as the benchmark's writers send it. */
export function valueOf(index: number): { i: number; pad: string } {
  return { i: index, pad: PAD };
}

/**
 * Applies `records` records in `order` into a new Deno KV file in `dir`; returns the seconds
 * from the first commit to the last. Needs read and write permission on `dir`.
 */
export async function applyFloor(dir: string, records: number, order: KeyOrder): Promise<number> {
  const kv = await Deno.openKv(`${dir}/floor.kv`);
  try {
    const startMs = performance.now();
    for (let first = 0; first < records; first += RECORDS_PER_COMMIT) {
      const end = Math.min(records, first + RECORDS_PER_COMMIT);
      const commit = kv.atomic();
      for (let i = first; i < end; i++) {
        commit.set(["state", "bench", keyOf(i, order)], JSON.stringify(valueOf(i)));
      }
      commit.set(["state_meta"], { applied_lsn: end });
      const result = await commit.commit();
      if (!result.ok) throw new Error("a commit without checks was refused");
    }
    return (performance.now() - startMs) / 1000;
  } finally {
    kv.close();
  }
}

if (import.meta.main) {
  const [dir, records, order] = Deno.args;
  const seconds = await applyFloor(dir!, Number(records), order as KeyOrder);
  console.log(JSON.stringify({ records: Number(records), seconds }));
}
